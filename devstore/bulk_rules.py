"""Shopify's rules for the query of a bulk operation, checked on the real Admin schema.

``bulk_query_errors(query)`` answers with the ``userErrors`` a live store returns from
``bulkOperationRunQuery`` for that query (empty when Shopify would accept it). It needs no
running store: the app's tests call it on every bulk query the app sends.

The rules, their messages and their order come from live-store recordings
(``reference/captures/2026-04/bulk-operations/bulk-operation-run-query-validators.json`` and
``-user-error-codes.json``) and https://shopify.dev/docs/api/usage/bulk-operations/queries:

- the query must be at most 65,535 bytes, parse (``Invalid bulk query: syntax error, ...``) and
  hold only ``query`` operations; each of these stops the checks there;
- it must be valid against the real schema (``Invalid bulk query: <graphql-ruby's message>``, the
  first of devstore.conformance's errors);
- then every rule that applies is reported, in this order: a top-level ``node``/``nodes``,
  ``nodes`` instead of ``edges { node }`` on a connection, a connection inside a list field,
  connections nested deeper than 2, more than 5 connections, a nested connection whose parent
  ``node`` lacks an unaliased ``id``, and no connection at all.

Whether a field is a connection or a list is read from the real schema's types, so the rules
hold for fields devstore does not serve. The recordings pin each message and the order of the
top-level ``node`` and no-connection errors; the order of the other combinations is ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    TokenKind,
    get_named_type,
    parse,
)
from graphql.language.lexer import Lexer

from devstore.conformance import real_schema, validation_errors

MAX_CONNECTIONS = 5
MAX_NESTING = 2
MAX_QUERY_BYTES = 65_535  # recorded: bulk-operation-storage-byte-limit.json

def _invalid(message: str) -> dict[str, Any]:
    return {"field": ["query"], "message": message, "code": "INVALID"}


def bulk_query_errors(query: str) -> list[dict[str, Any]]:
    """The userErrors Shopify returns from ``bulkOperationRunQuery(query: ...)``; [] if it is valid.

    Each error is ``{"field": ["query"], "message": ..., "code": "INVALID"}``, in Shopify's order.
    """
    size = len(query.encode())
    if size > MAX_QUERY_BYTES:
        return [_invalid(f"Query is too large ({size} bytes; maximum is {MAX_QUERY_BYTES} bytes)")]
    try:
        document = parse(query)
    except GraphQLSyntaxError as exc:
        return [_invalid(f"Invalid bulk query: {ruby_syntax_message(query, exc)}")]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if any(op.operation.value != "query" for op in operations):
        return [_invalid("Invalid operation type. Only `query` operations are supported.")]
    schema = real_schema()
    errors = validation_errors(document, schema)
    if errors:
        return [_invalid(f"Invalid bulk query: {errors[0]['message']}")]
    return [_invalid(message) for message in _shape_errors(schema, document, operations)]


# ---------------------------------------------------------------------------------------------
# Messages in graphql-ruby's words (Shopify's server is Ruby)

_RUBY_TOKENS = {
    TokenKind.BANG: "BANG",
    TokenKind.DOLLAR: "VAR_SIGN",
    TokenKind.AMP: "AMP",
    TokenKind.PAREN_L: "LPAREN",
    TokenKind.PAREN_R: "RPAREN",
    TokenKind.SPREAD: "ELLIPSIS",
    TokenKind.COLON: "COLON",
    TokenKind.EQUALS: "EQUALS",
    TokenKind.AT: "DIR_SIGN",
    TokenKind.BRACKET_L: "LBRACKET",
    TokenKind.BRACKET_R: "RBRACKET",
    TokenKind.BRACE_L: "LCURLY",
    TokenKind.PIPE: "PIPE",
    TokenKind.BRACE_R: "RCURLY",
    TokenKind.NAME: "IDENTIFIER",
    TokenKind.INT: "INT",
    TokenKind.FLOAT: "FLOAT",
    TokenKind.STRING: "STRING",
    TokenKind.BLOCK_STRING: "STRING",
}


def ruby_syntax_message(text: str, exc: GraphQLSyntaxError) -> str:
    """graphql-ruby's parse error: ``syntax error, unexpected end of file at [1, 16]``.

    At the end of the input Ruby names the position of the last token read (recorded: no
    position when there is no token at all); elsewhere the unexpected token and its position.
    """
    lexer = Lexer(Source(text))
    last = None
    try:
        token = lexer.advance()
        while token.kind != TokenKind.EOF:
            if exc.positions and token.start >= list(exc.positions)[0]:
                kind = _RUBY_TOKENS.get(token.kind, token.kind.name)
                value = token.value if token.value is not None else token.kind.value
                return f'syntax error, unexpected {kind} ("{value}") at [{token.line}, {token.column}]'
            last = token
            token = lexer.advance()
    except GraphQLSyntaxError:
        pass  # a lexing error: report at the last good token, like the end of input
    if last is None:
        return "syntax error, unexpected end of file"
    return f"syntax error, unexpected end of file at [{last.line}, {last.column}]"


# ---------------------------------------------------------------------------------------------
# The shape rules


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    connections: int = 0
    max_depth: int = 0
    in_list: bool = False
    nodes_selected: list[str] = field(default_factory=list)
    without_id: list[str] = field(default_factory=list)


def _is_connection(gql_field: GraphQLField) -> bool:
    named = get_named_type(gql_field.type)
    return (
        isinstance(named, GraphQLObjectType)
        and named.name.endswith("Connection")
        and "edges" in named.fields
        and "pageInfo" in named.fields
    )


def _is_list(gql_field: GraphQLField) -> bool:
    inner = gql_field.type.of_type if isinstance(gql_field.type, GraphQLNonNull) else gql_field.type
    return isinstance(inner, GraphQLList)


def _fields(
    walk: _Walk, selection_set: SelectionSetNode | None, parent: Any
) -> list[tuple[FieldNode, Any]]:
    """(field node, the type it was selected on), through inline fragments and spreads."""
    out: list[tuple[FieldNode, Any]] = []
    if selection_set is None:
        return out
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            out.append((sel, parent))
        elif isinstance(sel, InlineFragmentNode):
            on = walk.schema.type_map[sel.type_condition.name.value] if sel.type_condition else parent
            out.extend(_fields(walk, sel.selection_set, on))
        elif isinstance(sel, FragmentSpreadNode):
            frag = walk.fragments.get(sel.name.value)
            if frag is not None:
                out.extend(_fields(walk, frag.selection_set, walk.schema.type_map[frag.type_condition.name.value]))
    return out


def _field_def(parent: Any, name: str) -> GraphQLField | None:
    if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
        return parent.fields.get(name)
    return None  # unions select only __typename outside fragments


def _visit(walk: _Walk, selection_set: SelectionSetNode | None, parent: Any, depth: int, in_list: bool) -> None:
    for node, on in _fields(walk, selection_set, parent):
        gql_field = _field_def(on, node.name.value)
        if gql_field is None:
            continue  # __typename
        named = get_named_type(gql_field.type)
        if _is_connection(gql_field):
            _connection(walk, node, gql_field, depth + 1, in_list)
        elif isinstance(named, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)):
            _visit(walk, node.selection_set, named, depth, in_list or _is_list(gql_field))


def _connection(walk: _Walk, node: FieldNode, gql_field: GraphQLField, depth: int, in_list: bool) -> None:
    walk.connections += 1
    walk.max_depth = max(walk.max_depth, depth)
    walk.in_list = walk.in_list or in_list
    conn_type: Any = get_named_type(gql_field.type)  # an object type: _is_connection checked it
    name = node.name.value
    for sub, _ in _fields(walk, node.selection_set, conn_type):
        if sub.name.value == "nodes":
            if name not in walk.nodes_selected:
                walk.nodes_selected.append(name)
            _node(walk, name, sub.selection_set, get_named_type(conn_type.fields["nodes"].type), depth, in_list)
        elif sub.name.value == "edges":
            edge_type: Any = get_named_type(conn_type.fields["edges"].type)
            for edge_field, _ in _fields(walk, sub.selection_set, edge_type):
                if edge_field.name.value == "node":
                    node_type = get_named_type(edge_type.fields["node"].type)
                    _node(walk, name, edge_field.selection_set, node_type, depth, in_list)


def _node(
    walk: _Walk, conn_name: str, selection_set: SelectionSetNode | None, node_type: Any, depth: int, in_list: bool
) -> None:
    """A connection's node: the parent of any connection nested in it, so it must select ``id``."""
    children = _Walk(walk.schema, walk.fragments)
    _visit(children, selection_set, node_type, depth, in_list)
    if children.connections and not any(
        f.name.value == "id" and f.alias is None for f, _ in _fields(walk, selection_set, node_type)
    ):
        walk.without_id.append(conn_name)
    walk.connections += children.connections
    walk.max_depth = max(walk.max_depth, children.max_depth)
    walk.in_list = walk.in_list or children.in_list
    walk.nodes_selected.extend(n for n in children.nodes_selected if n not in walk.nodes_selected)
    walk.without_id.extend(n for n in children.without_id if n not in walk.without_id)


def _shape_errors(
    schema: GraphQLSchema, document: DocumentNode, operations: list[OperationDefinitionNode]
) -> list[str]:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(schema, fragments)
    root = schema.query_type
    messages: list[str] = []
    top_level = [node.name.value for op in operations for node, _ in _fields(walk, op.selection_set, root)]
    for name in ("node", "nodes"):
        if name in top_level:
            messages.append(f"Bulk queries cannot contain a top level `{name}` field.")
    for op in operations:
        _visit(walk, op.selection_set, root, 0, False)
    if walk.nodes_selected:
        names = ", ".join(f"'{n}'" for n in walk.nodes_selected)
        messages.append(
            "All connection fields in a bulk query must select their contents using 'edges' > 'node', "
            f"e.g: '{walk.nodes_selected[0]} {{ edges {{ node {{'. Selecting via 'nodes' is not supported. "
            f"Invalid connection fields: {names}."
        )
    if walk.in_list:
        messages.append("Queries that contain a connection field within a list field are not currently supported.")
    if walk.max_depth > MAX_NESTING:
        messages.append(
            f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_NESTING}."
        )
    if walk.connections > MAX_CONNECTIONS:
        messages.append(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections.")
    if walk.without_id:
        messages.append(
            "The parent 'node' field for a nested connection must select the 'id' field without an alias "
            "and must be of 'ID' return type. Connection fields without 'id': "
            f"{', '.join(walk.without_id)}."
        )
    if walk.connections == 0:
        messages.append("Bulk queries must contain at least one connection.")
    return messages


# ---------------------------------------------------------------------------------------------
# The mutation of a bulk mutation operation

MAX_MUTATION_CONNECTIONS = 1
# Recorded: bulkOperationRunMutation inside a bulk mutation is refused. The other bulk and
# staged-upload roots are refused by the same reasoning (an operation cannot start operations);
# that part is not recorded.
DISALLOWED_MUTATIONS = frozenset(
    {"bulkOperationRunMutation", "bulkOperationRunQuery", "bulkOperationCancel", "stagedUploadsCreate"}
)


def _mutation_error(message: str, code: str | None, field_path: list[str] | None) -> dict[str, Any]:
    return {"field": field_path, "message": message, "code": code}


def bulk_mutation_errors(mutation: str) -> list[dict[str, Any]]:
    """The userErrors Shopify returns from ``bulkOperationRunMutation`` for the mutation alone.

    Recorded (bulk-operation-run-mutation-validators.json, -user-errors.json,
    -connection-validators.json, bulk-operation-storage-byte-limit.json): too large (field
    ``["query"]``), unparseable and not a mutation (``INVALID_MUTATION``, no field), more than one
    top-level field, a disallowed root, more than one connection (field ``["mutation"]``, no code).
    Only the first that applies is reported. The staged file's checks come after these.
    """
    size = len(mutation.encode())
    if size > MAX_QUERY_BYTES:
        return [_mutation_error(f"is too large ({size} bytes; maximum is {MAX_QUERY_BYTES} bytes)",
                                "INVALID_MUTATION", ["query"])]
    try:
        document = parse(mutation)
    except GraphQLSyntaxError as exc:
        return [_mutation_error(f"Failed to parse the mutation - {ruby_syntax_message(mutation, exc)}",
                                "INVALID_MUTATION", None)]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if any(op.operation.value != "mutation" for op in operations):
        return [_mutation_error("Invalid operation type. Only `mutation` operations are supported.",
                                "INVALID_MUTATION", None)]
    schema = real_schema()
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(schema, fragments)
    roots = [node.name.value for op in operations for node, _ in _fields(walk, op.selection_set, schema.mutation_type)]
    if len(roots) != 1:
        return [_mutation_error("You must specify a single top level mutation.", None, ["mutation"])]
    if roots[0] in DISALLOWED_MUTATIONS:
        return [_mutation_error("You must use an allowed mutation name.", None, ["mutation"])]
    for op in operations:
        _visit(walk, op.selection_set, schema.mutation_type, 0, False)
    if walk.connections > MAX_MUTATION_CONNECTIONS:
        return [_mutation_error("Bulk mutations cannot contain more than 1 connection.", None, ["mutation"])]
    return []
