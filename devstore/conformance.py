"""Shopify's real Admin GraphQL schema as a checker: validation errors and requested cost as Shopify gives them.

Needs no devstore server and no database, so the app's own tests can guard every document
they send:

- ``real_schema()``: the 2026-07 Admin schema from ``reference/admin-2026-07.graphql`` (a live
  introspection), built once per process on first use (about 1 s) and shared by threads.
- ``schema_errors(query)``: what Shopify answers a document it refuses, as a list of
  graphql-ruby shaped errors (``message``, ``locations``, ``path``, ``extensions.code``);
  empty when Shopify would run it.
- ``requested_cost(query, variables, operation_name)``: the ``requestedQueryCost`` Shopify
  reports for it (``devstore.throttle.CostCalculator`` on the real schema).

Shopify runs graphql-ruby; graphql-core finds the same faults and this module rewrites its
messages into graphql-ruby's wording and codes (undefinedField, argumentNotAccepted,
missingRequiredArguments, argumentLiteralsIncompatible, variableMismatch, variableNotUsed,
variableNotDefined, variableRequiresValidType, selectionMismatch, ...). Parse errors read
``Parse error on "}" (RCURLY) at [1, 18]`` as graphql-ruby's parser words them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import orjson
from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    ObjectFieldNode,
    OperationDefinitionNode,
    Undefined,
    VariableDefinitionNode,
    build_ast_schema,
    get_named_type,
    get_nullable_type,
    is_input_type,
    is_leaf_type,
    parse,
    print_ast,
    type_from_ast,
    validate,
)
from graphql.language import Node as AstNode
from graphql.utilities.validate_input_value import validate_input_value

REAL_SCHEMA_PATH = Path(__file__).with_name("reference") / "admin-2026-07.graphql"

_lock = threading.Lock()
_schema: GraphQLSchema | None = None

# Descriptions are most of the SDL's 3.8 MB and play no part in validation or cost: dropping
# them before parsing halves the load. Block strings are only ever descriptions; a one-line
# string alone on its line is an argument's description (default values follow an `=`).
_BLOCK_DESCRIPTION = re.compile(r'"""[\s\S]*?"""')
_LINE_DESCRIPTION = re.compile(r'^[ \t]*"(?:[^"\\\n]|\\.)*"[ \t]*$', re.M)


def real_schema() -> GraphQLSchema:
    """Shopify's Admin schema (2026-07), built on first use and then shared."""
    global _schema
    if _schema is not None:
        return _schema
    with _lock:
        if _schema is None:
            sdl = REAL_SCHEMA_PATH.read_text(encoding="utf-8")
            sdl = _LINE_DESCRIPTION.sub("", _BLOCK_DESCRIPTION.sub("", sdl))
            schema = build_ast_schema(parse(sdl, no_location=True), assume_valid_sdl=True)
            # graphql-core's schema check rejects Shopify's own schema (deprecated fields whose
            # interface implementations differ); Shopify serves it, so documents are validated
            # against it as it is.
            schema._validation_errors = []  # noqa: SLF001
            _schema = schema
    return _schema


def schema_errors(query: str, schema: GraphQLSchema | None = None) -> list[dict[str, Any]]:
    """Shopify's errors for a document (graphql-ruby's shapes), or [] when it is valid."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return [parse_error(exc, query)]
    return validation_errors(document, schema or real_schema())


def requested_cost(query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None) -> int:
    """``requestedQueryCost`` of a valid document on the real schema (ValueError if it has no such operation)."""
    from devstore.throttle import CostCalculator

    document = parse(query)
    operation = select_operation(document, operation_name)
    if operation is None:
        raise ValueError(f"no operation {operation_name!r}" if operation_name else "no single operation")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return CostCalculator(real_schema(), fragments, variables).operation_cost(operation)


def select_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return operations[0] if len(operations) == 1 else None


# ---------------------------------------------------------------------------------------------
# Parse errors

_PUNCTUATION = {
    "{": "LCURLY", "}": "RCURLY", "(": "LPAREN", ")": "RPAREN", "[": "LBRACKET", "]": "RBRACKET",
    ":": "COLON", "=": "EQUALS", "!": "BANG", "$": "VAR_SIGN", "@": "DIR_SIGN", "|": "PIPE", "&": "AMP",
    ".": "ELLIPSIS",
}
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z][_0-9A-Za-z]*|\.\.\.|.')


def parse_error(exc: GraphQLError, source: str) -> dict[str, Any]:
    """graphql-ruby's parse error: ``Parse error on "x" (KIND) at [line, column]``."""
    if not exc.locations:
        return {"message": "Unexpected end of document", "locations": []}
    line, column = exc.locations[0].line, exc.locations[0].column
    lines = source.split("\n")
    rest = lines[line - 1][column - 1 :] if line - 1 < len(lines) else ""
    if not rest.strip() and line >= len(lines):
        return {"message": "Unexpected end of document", "locations": []}
    match = _TOKEN.match(rest)
    token = match.group(0) if match else rest[:1]
    if token.startswith('"'):
        kind = "STRING"
    elif token[:1].isdigit() or token[:1] == "-":
        kind = "FLOAT" if "." in token or "e" in token.lower() else "INT"
    elif token[:1].isalpha() or token[:1] == "_":
        kind = "IDENTIFIER"
    else:
        kind = _PUNCTUATION.get(token[:1], "UNKNOWN_CHAR")
    shown = token.strip('"') if kind == "STRING" else token
    return {
        "message": f'Parse error on "{shown}" ({kind}) at [{line}, {column}]',
        "locations": [{"line": line, "column": column}],
    }


# ---------------------------------------------------------------------------------------------
# Validation errors in graphql-ruby's words


class _Tree:
    """Parents and graphql-ruby paths of a document's nodes, built once per refused document."""

    def __init__(self, document: DocumentNode) -> None:
        self.parent: dict[int, AstNode] = {}
        self.trail: dict[int, list[str]] = {}
        self._walk(document, None, [])

    def _walk(self, node: AstNode, parent: AstNode | None, trail: list[str]) -> None:
        if isinstance(node, OperationDefinitionNode):
            trail = [node.operation.value + (f" {node.name.value}" if node.name else "")]
        elif isinstance(node, FragmentDefinitionNode):
            trail = [f"fragment {node.name.value}"]
        elif isinstance(node, FieldNode):
            trail = [*trail, node.alias.value if node.alias else node.name.value]
        elif isinstance(node, (ArgumentNode, ObjectFieldNode)):
            trail = [*trail, node.name.value]
        if parent is not None:
            self.parent[id(node)] = parent
        self.trail[id(node)] = trail
        for key in node.keys:
            child = getattr(node, key, None)
            for c in child if isinstance(child, (list, tuple)) else [child]:
                if isinstance(c, AstNode):
                    self._walk(c, node, trail)

    def path(self, node: AstNode) -> list[str]:
        return list(self.trail.get(id(node), []))

    def up(self, node: AstNode, kind: type | tuple[type, ...]) -> Any:
        """The nearest enclosing node of a kind (the node itself included)."""
        current: AstNode | None = node
        while current is not None and not isinstance(current, kind):
            current = self.parent.get(id(current))
        return current

    def top_argument(self, node: AstNode) -> tuple[ArgumentNode | None, AstNode | None]:
        """The field or directive argument a value sits in, and that field or directive."""
        arg = None
        current: AstNode | None = node
        while current is not None and not isinstance(current, (FieldNode, DirectiveNode)):
            if isinstance(current, ArgumentNode):
                arg = current
            current = self.parent.get(id(current))
        return arg, current


def _operation_label(operation: OperationDefinitionNode | None) -> str:
    if operation is None or operation.name is None:
        return f"anonymous {operation.operation.value if operation else 'query'}"
    return operation.name.value


def _locations(error: GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]


def _base(error: GraphQLError, tree: _Tree, node: AstNode | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message, "locations": _locations(error)}
    target = node if node is not None else (error.nodes[0] if error.nodes else None)
    if target is not None:
        out["path"] = tree.path(target)
    return out


def _parent_label(tree: _Tree, owner: AstNode | None) -> tuple[str, str]:
    if isinstance(owner, DirectiveNode):
        return "Directive", owner.name.value
    if isinstance(owner, FieldNode):
        return "Field", owner.name.value
    return "Field", ""


def ruby_error(error: GraphQLError, document: DocumentNode, schema: GraphQLSchema | None = None) -> dict[str, Any]:
    """One graphql-core validation error in graphql-ruby's message, path and extensions."""
    return _translate(error, _Tree(document), schema)


def validation_errors(document: DocumentNode, schema: GraphQLSchema | None = None) -> list[dict[str, Any]]:
    """Validate on ``schema`` (the real one by default); errors in graphql-ruby's shapes, in order."""
    schema = schema or real_schema()
    errors = validate(schema, document)
    if not errors:
        return []
    tree = _Tree(document)
    out: list[dict[str, Any]] = []
    missing: dict[int, dict[str, Any]] = {}
    for error in errors:
        translated = _translate(error, tree, schema)
        ext = translated.get("extensions") or {}
        # graphql-ruby names every missing argument of a field in one error.
        if ext.get("code") == "missingRequiredArguments" and error.nodes:
            key = id(error.nodes[0])
            if key in missing:
                first = missing[key]
                first["extensions"]["arguments"] += f", {ext['arguments']}"
                first["message"] = (
                    f"{first['extensions']['className']} '{first['extensions']['name']}' is missing required "
                    f"arguments: {first['extensions']['arguments']}"
                )
                continue
            missing[key] = translated
        # graphql-ruby reports a bad argument once, however many of its values are wrong.
        if translated not in out:
            out.append(translated)
    return out


def _translate(error: GraphQLError, tree: _Tree, schema: GraphQLSchema | None) -> dict[str, Any]:
    message = error.message
    node = error.nodes[0] if error.nodes else None
    out = _base(error, tree)

    m = re.match(r"Cannot query field '(\w+)' on type '(\w+)'", message)
    if m:
        out["message"] = f"Field '{m.group(1)}' doesn't exist on type '{m.group(2)}'"
        out["extensions"] = {"code": "undefinedField", "typeName": m.group(2), "fieldName": m.group(1)}
        return out
    m = re.match(r"Unknown argument '(\w+)' on (field|directive) '@?(?:\w+\.)?(\w+)'", message)
    if m:
        kind = "Field" if m.group(2) == "field" else "Directive"
        out["message"] = f"{kind} '{m.group(3)}' doesn't accept argument '{m.group(1)}'"
        out["extensions"] = {
            "code": "argumentNotAccepted", "name": m.group(3), "typeName": kind, "argumentName": m.group(1),
        }
        return out
    m = re.match(r"Argument '@?(?:\w+\.)?(\w+)\((\w+):\)' of type '(.+)' is required", message)
    if m:
        kind = "Directive" if message.startswith("Argument '@") else "Field"
        out["message"] = f"{kind} '{m.group(1)}' is missing required arguments: {m.group(2)}"
        out["extensions"] = {
            "code": "missingRequiredArguments", "className": kind, "name": m.group(1), "arguments": m.group(2),
        }
        return out
    m = re.match(r"Unknown type '(\w+)'", message)
    if m:
        var_def = tree.up(node, VariableDefinitionNode) if node is not None else None
        if var_def is not None:
            out["message"] = f"{m.group(1)} isn't a defined input type (on ${var_def.variable.name.value})"
            out["path"] = tree.path(var_def)
            out["extensions"] = {
                "code": "variableRequiresValidType",
                "typeName": m.group(1),
                "variableName": var_def.variable.name.value,
            }
        else:
            out["message"] = f"No such type {m.group(1)}, so it can't be a fragment condition"
            out["extensions"] = {"code": "undefinedType", "typeName": m.group(1)}
        return out
    m = re.match(r"Variable '\$(\w+)' is never used", message)
    if m:
        operation = tree.up(node, OperationDefinitionNode) if node is not None else None
        out["message"] = f"Variable ${m.group(1)} is declared by {_operation_label(operation)} but not used"
        out["path"] = tree.path(operation) if operation is not None else []
        out["extensions"] = {"code": "variableNotUsed", "variableName": m.group(1)}
        return out
    m = re.match(r"Variable '\$(\w+)' is not defined", message)
    if m:
        operation = error.nodes[-1] if error.nodes and isinstance(error.nodes[-1], OperationDefinitionNode) else None
        if operation is None and node is not None:
            operation = tree.up(node, OperationDefinitionNode)
        out["message"] = f"Variable ${m.group(1)} is used by {_operation_label(operation)} but not declared"
        out["path"] = tree.path(node) if node is not None else []
        out["extensions"] = {"code": "variableNotDefined", "variableName": m.group(1)}
        return out
    m = re.match(r"Variable '\$(\w+)' of type '(.+)' used in position expecting type '(.+)'\.", message)
    if m:
        usage = error.nodes[-1] if error.nodes else None
        arg, _owner = tree.top_argument(usage) if usage is not None else (None, None)
        arg_name = arg.name.value if arg is not None else ""
        given, expected = m.group(2), m.group(3)
        kind = "Nullability" if given.rstrip("!") == expected.rstrip("!") else "Type"
        out["message"] = f"{kind} mismatch on variable ${m.group(1)} and argument {arg_name} ({given} / {expected})"
        out["path"] = tree.path(arg) if arg is not None else out.get("path", [])
        out["extensions"] = {
            "code": "variableMismatch", "variableName": m.group(1), "typeName": given,
            "argumentName": arg_name, "errorMessage": f"{kind} mismatch",
        }
        return out
    m = re.match(r"Field '(\w+)' of type '(.+)' must have a selection of subfields", message)
    if m:
        out["message"] = (
            f"Field must have selections (field '{m.group(1)}' returns {m.group(2).strip('[]!')} but has no "
            f"selections. Did you mean '{m.group(1)} {{ ... }}'?)"
        )
        out["extensions"] = {
            "code": "selectionMismatch", "nodeName": f"field '{m.group(1)}'", "typeName": m.group(2).strip("[]!"),
        }
        return out
    m = re.match(r"Field '(\w+)' must not have a selection since type '(.+)' has no subfields", message)
    if m:
        selected = ""
        field_node = tree.up(node, FieldNode) if node is not None else None
        if field_node is not None and field_node.selection_set is not None:
            names = [s.name.value for s in field_node.selection_set.selections if isinstance(s, FieldNode)]
            selected = f" [{', '.join(names)}]"
        out["message"] = (
            f"Selections can't be made on scalars (field '{m.group(1)}' returns {m.group(2).strip('[]!')} "
            f"but has selections{selected})"
        )
        out["extensions"] = {
            "code": "selectionMismatch", "nodeName": f"field '{m.group(1)}'", "typeName": m.group(2).strip("[]!"),
        }
        return out
    m = re.match(r"Unknown fragment '(\w+)'", message)
    if m:
        out["message"] = f"Fragment {m.group(1)} was used, but not defined"
        out["extensions"] = {"code": "useAndDefineFragment", "fragmentName": m.group(1)}
        return out
    m = re.match(r"Fragment '(\w+)' is never used", message)
    if m:
        out["message"] = f"Fragment {m.group(1)} was defined, but not used"
        out["extensions"] = {"code": "useAndDefineFragment", "fragmentName": m.group(1)}
        return out
    m = re.match(r"Unknown directive '@(\w+)'", message)
    if m:
        out["message"] = f"Directive @{m.group(1)} is not defined"
        out["extensions"] = {"code": "undefinedDirective", "directiveName": m.group(1)}
        return out
    m = re.match(r"There can be only one argument named '(\w+)'", message)
    if m:
        out["message"] = f'There can be only one argument named "{m.group(1)}"'
        out["extensions"] = {"code": "argumentNotUnique", "name": m.group(1)}
        return out
    m = re.match(r"There can be only one operation named '(\w+)'", message)
    if m:
        out["message"] = f'Operation name "{m.group(1)}" must be unique'
        out["extensions"] = {"code": "operationNotUnique", "operationName": m.group(1)}
        return out
    m = re.match(r"Fields '(\w+)' conflict because", message)
    if m:
        out["message"] = f"Field '{m.group(1)}' has a field conflict: {message}"
        out["extensions"] = {"code": "fieldConflict", "field": m.group(1)}
        return out
    if node is not None and not isinstance(node, (FieldNode, OperationDefinitionNode, FragmentDefinitionNode)):
        # ValuesOfCorrectTypeRule reports the offending value; graphql-ruby reports the argument
        # it sits in, printing the whole literal, or the input object's unknown or missing field.
        arg, owner = tree.top_argument(node)
        if arg is not None:
            kind, owner_name = _parent_label(tree, owner)
            m = re.match(r"Expected value of type '(\w+)!?' not to include unknown field '(\w+)'", message)
            if m:
                out["message"] = f"InputObject '{m.group(1)}' doesn't accept argument '{m.group(2)}'"
                out["path"] = tree.path(node)
                out["extensions"] = {
                    "code": "argumentNotAccepted", "name": m.group(1), "typeName": "InputObject",
                    "argumentName": m.group(2),
                }
                return out
            m = re.match(r"Expected value of type '(\w+)!?' to include required field '(\w+)'", message)
            if m:
                out["message"] = f"Argument '{m.group(2)}' on InputObject '{m.group(1)}' is required."
                out["path"] = tree.path(node)
                out["extensions"] = {
                    "code": "missingRequiredInputObjectAttribute", "argumentName": m.group(2),
                    "inputObjectType": m.group(1),
                }
                return out
            expected = _argument_type(schema, tree, arg, owner)
            out["message"] = (
                f"Argument '{arg.name.value}' on {kind} '{owner_name}' has an invalid value "
                f"({print_ast(arg.value)}). Expected type '{expected}'."
            )
            out["path"] = tree.path(arg)
            out["extensions"] = {
                "code": "argumentLiteralsIncompatible", "typeName": kind, "argumentName": arg.name.value,
            }
            return out
    out["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED"}
    return out


def _argument_type(schema: GraphQLSchema | None, tree: _Tree, arg: ArgumentNode, owner: AstNode | None) -> str:
    """The declared type of a field argument, found by walking the document's path on the schema."""
    if schema is None or not isinstance(owner, FieldNode):
        return "?"
    fields: list[FieldNode] = []
    current: AstNode | None = owner
    while current is not None and not isinstance(current, (OperationDefinitionNode, FragmentDefinitionNode)):
        if isinstance(current, FieldNode):
            fields.append(current)
        current = tree.parent.get(id(current))
    if isinstance(current, OperationDefinitionNode):
        parent: Any = schema.get_root_type(current.operation)
    elif isinstance(current, FragmentDefinitionNode):
        parent = schema.get_type(current.type_condition.name.value)
    else:
        return "?"
    for field_node in reversed(fields):
        inline = _inline_condition(tree, field_node)
        if inline is not None:
            parent = schema.get_type(inline) or parent
        defs = getattr(parent, "fields", None)
        if not defs or field_node.name.value not in defs:
            return "?"
        fdef = defs[field_node.name.value]
        if field_node is owner:
            a = fdef.args.get(arg.name.value)
            return str(a.type) if a is not None else "?"
        parent = get_named_type(fdef.type)
    return "?"


def _inline_condition(tree: _Tree, field_node: FieldNode) -> str | None:
    from graphql import InlineFragmentNode, SelectionSetNode

    selection_set = tree.parent.get(id(field_node))
    if not isinstance(selection_set, SelectionSetNode):
        return None
    holder = tree.parent.get(id(selection_set))
    if isinstance(holder, InlineFragmentNode) and holder.type_condition is not None:
        return holder.type_condition.name.value
    return None


def variable_errors(
    operation: OperationDefinitionNode, variables: Mapping[str, Any], schema: GraphQLSchema | None = None
) -> list[dict[str, Any]]:
    """Shopify's INVALID_VARIABLE answers to variable values that do not fit their declared types.

    graphql-ruby lists each problem with its path inside the value and names the nested ones in
    the message ("... was provided invalid value for 0.resource (Expected "BANANA" to be one
    of: ...)", media-staged-uploads-create-validation.json). An ``ID`` variable must hold a
    global id, else "Invalid global id '<value>'" (bulk-operation-status-catalog-cancel.json).
    """
    schema = schema or real_schema()
    out: list[dict[str, Any]] = []
    for var_def in operation.variable_definitions or ():
        name = var_def.variable.name.value
        var_type = type_from_ast(schema, var_def.type)
        if not is_input_type(var_type):
            continue  # refused by validation already (variableRequiresValidType)
        provided = name in variables
        if not provided and (var_def.default_value is not None or not isinstance(var_type, GraphQLNonNull)):
            continue
        value = variables.get(name)

        found = _input_problems(value if provided else Undefined, cast("GraphQLInputType", var_type))
        problems = [_problem(e.message, var_type, path, value) for e, path in found]
        if not problems and get_named_type(var_type).name == "ID":
            values = value if isinstance(value, list) else [value]
            bad = next((v for v in values if isinstance(v, str) and not v.startswith("gid://")), None)
            if bad is not None:
                explanation = f"Invalid global id '{bad}'"
                problems.append({"path": [], "explanation": explanation, "message": explanation})
        if problems:
            out.append(_invalid_variable(var_def, value, problems))
    return out


def _input_problems(value: Any, input_type: GraphQLInputType) -> list[tuple[GraphQLError, list[str | int]]]:
    found: list[tuple[GraphQLError, list[str | int]]] = []
    validate_input_value(value, input_type, lambda error, path: found.append((error, list(path))))
    return found


def _invalid_variable(var_def: VariableDefinitionNode, value: Any, problems: list[dict[str, Any]]) -> dict[str, Any]:
    location = var_def.loc.source.get_location(var_def.loc.start) if var_def.loc else None
    message = f"Variable ${var_def.variable.name.value} of type {print_ast(var_def.type)} was provided invalid value"
    nested = [f"{'.'.join(str(p) for p in problem['path'])} ({problem['explanation']})"
              for problem in problems if problem["path"]]
    if nested:
        message += f" for {', '.join(nested)}"
    return {
        "message": message,
        "locations": [{"line": location.line, "column": location.column}] if location else [],
        "extensions": {"code": "INVALID_VARIABLE", "value": value, "problems": problems},
    }


def _type_at(var_type: Any, path: list[str | int]) -> Any:
    """The input type found at a path inside a variable's value."""
    current = var_type
    for step in path:
        current = get_nullable_type(current)
        if isinstance(current, GraphQLList):
            current = current.of_type
        elif isinstance(current, GraphQLInputObjectType) and isinstance(step, str) and step in current.fields:
            current = current.fields[step].type
        else:
            return None
    return current


def _problem(message: str, var_type: Any, path: list[str | int], value: Any) -> dict[str, Any]:
    """One graphql-ruby problem (its path and explanation) from graphql-core's message."""
    m = re.search(r"not to include unknown field '(\w+)'", message)
    if m:
        named = get_named_type(_type_at(var_type, path))
        return {"path": [*path, m.group(1)], "explanation": f"Field is not defined on {named.name}"}
    return {"path": path, "explanation": _explanation(message, var_type, path, value)}


def _explanation(message: str, var_type: Any, path: list[str | int], value: Any) -> str:
    """graphql-ruby's explanation of one problem, from graphql-core's message."""
    target = _type_at(var_type, path)
    here: Any = value
    for step in path:
        if isinstance(here, list) and isinstance(step, int) and step < len(here):
            here = here[step]
        else:
            here = here.get(step) if isinstance(here, dict) else None
    if "non-null" in message or "not to be null" in message or "non-nullable" in message:
        return "Expected value to not be null"
    named = get_named_type(target) if target is not None else None
    if isinstance(named, GraphQLEnumType):
        return f'Expected "{here}" to be one of: {", ".join(named.values)}'
    if named is not None and is_leaf_type(named):
        shown = orjson.dumps(here).decode() if not isinstance(here, (list, dict)) else here
        return f"Could not coerce value {shown} to {named.name}"
    return message