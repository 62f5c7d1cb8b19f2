"""Calculated query cost and the leaky bucket, per app and shop, as the Admin GraphQL API applies them.

https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits : scalars and enums cost 0,
objects 1, interfaces and unions their dearest possible type, connections 2 plus ``first``/``last``
times the cost of one node, mutations 10; the requested cost is taken up front, the difference
to the actual cost (what the response really held) is given back; a single query may not
request more than 1,000 points. Where live-store recordings disagree with those rules the
recording wins (``COUNT_COST``, ``MUTATION_COSTS``, unsized lists), see ``CostCalculator``.
Buckets by plan: Standard 2,000 points restoring 100/s, Advanced 4,000 / 200,
Plus 20,000 / 1,000, Enterprise 40,000 / 2,000. The ``throttle_bucket_size`` and
``throttle_restore_rate`` faults override them per shop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

MAX_SINGLE_QUERY_COST = 1000
MUTATION_COST = 10
# Recorded on a live store (captures/2025-01/customers/customers-count.json): each count
# field is 10 points, where the published rules would charge 1 for the Count object.
COUNT_COST = 10
# Recorded per-mutation costs that differ from the published 10 (captures/2026-04/bulk-operations:
# every stagedUploadsCreate is 11, bulkOperationRunQuery and the rest are 10).
MUTATION_COSTS = {"stagedUploadsCreate": 11}

PLAN_LIMITS: dict[str, tuple[float, float]] = {
    # plan (lower-case) -> (bucket size, restore rate per second)
    "basic": (2000.0, 100.0),
    "standard": (2000.0, 100.0),
    "shopify": (2000.0, 100.0),
    "grow": (2000.0, 100.0),
    "development": (2000.0, 100.0),
    "advanced": (4000.0, 200.0),
    "advanced shopify": (4000.0, 200.0),
    "plus": (20000.0, 1000.0),
    "shopify plus": (20000.0, 1000.0),
    "enterprise": (40000.0, 2000.0),
}


def plan_limits(plan: str, faults: Mapping[str, Any]) -> tuple[float, float]:
    size, rate = PLAN_LIMITS.get(plan.strip().lower(), (2000.0, 100.0))
    if faults.get("throttle_bucket_size") is not None:
        size = float(faults["throttle_bucket_size"])
    if faults.get("throttle_restore_rate") is not None:
        rate = float(faults["throttle_restore_rate"])
    return size, rate


@dataclass
class Bucket:
    available: float
    updated: float


class Throttle:
    """Leaky buckets keyed by app id, for one shop."""

    def __init__(self, limits: Callable[[], tuple[float, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def _refill(self, app_id: str) -> tuple[Bucket, float, float]:
        size, rate = self._limits()
        now = self._clock()
        bucket = self._buckets.get(app_id)
        if bucket is None:
            bucket = self._buckets[app_id] = Bucket(available=size, updated=now)
        bucket.available = min(size, bucket.available + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket, size, rate

    def take(self, app_id: str, cost: int) -> tuple[bool, dict[str, float]]:
        """Take ``cost`` points if the bucket covers them; returns (ok, throttleStatus)."""
        with self._lock:
            bucket, size, rate = self._refill(app_id)
            ok = bucket.available >= cost
            if ok:
                bucket.available -= cost
            return ok, self._status(bucket, size, rate)

    def give_back(self, app_id: str, points: int) -> dict[str, float]:
        with self._lock:
            bucket, size, rate = self._refill(app_id)
            bucket.available = min(size, bucket.available + max(points, 0))
            return self._status(bucket, size, rate)

    def status(self, app_id: str) -> dict[str, float]:
        with self._lock:
            bucket, size, rate = self._refill(app_id)
            return self._status(bucket, size, rate)

    @staticmethod
    def _status(bucket: Bucket, size: float, rate: float) -> dict[str, float]:
        return {"maximumAvailable": size, "currentlyAvailable": int(bucket.available), "restoreRate": rate}


# ---------------------------------------------------------------------------------------------
# Cost


class CostCalculator:
    """Requested cost from the document; actual cost from the document plus the response data.

    Built on the real Admin schema (``devstore.conformance.real_schema``) so a field's type is
    Shopify's: an interface or union costs the most expensive of its possible types (requested)
    or the returned type (actual, when the data names it), a ``Count`` costs 10 (recorded: three
    ``customersCount`` are 30 points), a connection 2 plus ``first``/``last`` times one node,
    ``pageInfo`` nothing, a list of objects one object unless ``first``/``last`` size it (recorded:
    ``nodes(ids:)`` is 1 for four ids), a mutation 10 per root field whatever it selects
    (recorded: ``bulkOperationRunQuery`` is 10; ``stagedUploadsCreate`` 11).
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = dict(variables or {})

    def operation_cost(self, operation: OperationDefinitionNode, data: Any = None, *, actual: bool = False) -> int:
        if operation.operation == OperationType.MUTATION:
            fields = self._collect(operation.selection_set, None)
            return sum(MUTATION_COSTS.get(f.name.value, MUTATION_COST) for f in fields)
        root = self.schema.query_type
        if root is None:
            return 0
        return self._selection_cost(operation.selection_set, root, data, actual)

    def _applies(self, condition: str | None, type_name: str | None) -> bool:
        if type_name is None or condition is None or condition == type_name:
            return True
        cond = self.schema.get_type(condition)
        obj = self.schema.get_type(type_name)
        if isinstance(cond, (GraphQLInterfaceType, GraphQLUnionType)) and isinstance(obj, GraphQLObjectType):
            return self.schema.is_sub_type(cond, obj)
        return False

    def _collect(self, selection_set: SelectionSetNode | None, type_name: str | None) -> list[FieldNode]:
        out: list[FieldNode] = []
        if selection_set is None:
            return out
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                cond = sel.type_condition.name.value if sel.type_condition else None
                if self._applies(cond, type_name):
                    out.extend(self._collect(sel.selection_set, type_name))
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is not None and self._applies(frag.type_condition.name.value, type_name):
                    out.extend(self._collect(frag.selection_set, type_name))
        return out

    def _arg(self, field: FieldNode, name: str) -> Any:
        for arg in field.arguments or ():
            if arg.name.value == name:
                return value_from_ast_untyped(arg.value, self.variables)
        return None

    def _object_cost(self, selection_set: SelectionSetNode | None, named: Any, value: Any, actual: bool) -> int:
        """What the selections under one object cost (the object's own point not included)."""
        if isinstance(named, GraphQLObjectType):
            return self._selection_cost(selection_set, named, value, actual)
        if not isinstance(named, (GraphQLInterfaceType, GraphQLUnionType)):
            return 0
        if actual and isinstance(value, dict) and isinstance(value.get("__typename"), str):
            returned = self.schema.get_type(value["__typename"])
            if isinstance(returned, GraphQLObjectType):
                return self._selection_cost(selection_set, returned, value, actual)
        # Requested (or a returned type the data does not name): the most expensive possibility.
        return max(
            (self._selection_cost(selection_set, t, value, actual) for t in self.schema.get_possible_types(named)),
            default=0,
        )

    def _selection_cost(self, selection_set: SelectionSetNode | None, parent: Any, data: Any, actual: bool) -> int:
        if selection_set is None or not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for field in self._collect(selection_set, parent.name):
            name = field.name.value
            if name.startswith("__") or name not in parent.fields:
                continue
            fdef = parent.fields[name]
            named = get_named_type(fdef.type)
            if is_leaf_type(named) or name == "pageInfo":
                continue
            key = field.alias.value if field.alias else name
            value = data.get(key) if (actual and isinstance(data, dict)) else None
            if actual and value is None:
                continue
            if named.name == "Count":
                total += COUNT_COST
            elif named.name.endswith("Connection") and isinstance(named, GraphQLObjectType):
                total += 2 + self._connection_cost(field, named, value, actual)
            elif _is_list(fdef.type):
                # A list is not sized by the ids it is given (recorded: nodes(ids:) with four ids,
                # three found, costs 1 requested and 1 actual), only by first/last where it takes them.
                sized = self._arg(field, "first") or self._arg(field, "last")
                if actual:
                    costs = [1 + self._object_cost(field.selection_set, named, item, True)
                             for item in (value or []) if item is not None]
                    total += sum(costs) if sized else max(costs, default=0)
                else:
                    total += int(sized or 1) * (1 + self._object_cost(field.selection_set, named, None, False))
            else:
                total += 1 + self._object_cost(field.selection_set, named, value, actual)
        return total

    def _connection_cost(self, field: FieldNode, conn_type: GraphQLObjectType, value: Any, actual: bool) -> int:
        edge_fields = conn_type.fields
        size = int(self._arg(field, "first") or self._arg(field, "last") or 0)
        best = 0
        for sub in self._collect(field.selection_set, conn_type.name):
            sub_name = sub.name.value
            key = sub.alias.value if sub.alias else sub_name
            items = (value.get(key) or []) if (actual and isinstance(value, dict)) else []
            if sub_name == "nodes" and "nodes" in edge_fields:
                node_type = get_named_type(edge_fields["nodes"].type)
                if actual:
                    cost = sum(1 + self._object_cost(sub.selection_set, node_type, item, True) for item in items)
                else:
                    cost = size * (1 + self._object_cost(sub.selection_set, node_type, None, False))
                best = max(best, cost)
            elif sub_name == "edges" and "edges" in edge_fields:
                edge_type = get_named_type(edge_fields["edges"].type)
                if not isinstance(edge_type, GraphQLObjectType) or "node" not in edge_type.fields:
                    continue
                node_type = get_named_type(edge_type.fields["node"].type)
                node_fields = [f for f in self._collect(sub.selection_set, edge_type.name) if f.name.value == "node"]
                if actual:
                    cost = 0
                    for item in items:
                        for nf in node_fields:
                            node_key = nf.alias.value if nf.alias else "node"
                            node_value = item.get(node_key) if isinstance(item, dict) else None
                            cost += 1 + self._object_cost(nf.selection_set, node_type, node_value, True)
                else:
                    per = sum(1 + self._object_cost(nf.selection_set, node_type, None, False) for nf in node_fields)
                    cost = size * per
                best = max(best, cost)
        return best


def _is_list(t: Any) -> bool:
    while isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)
