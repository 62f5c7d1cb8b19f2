"""Bulk query operations: bulkOperationRunQuery, status progression, and the JSONL result file.

As on Shopify (https://shopify.dev/docs/api/usage/bulk-operations/queries, API 2026-01+):
up to five bulk query operations at once per app and shop; the query must have a connection
at the top (``orders``/``customers``, not ``node``/``nodes``), at most five connections, nested
two levels deep at most; the result is JSONL, one object per line, nested connections become
their own lines carrying ``__parentId``, listed after their parent but not directly after it
(``groupObjects`` defaults to false). Results stay downloadable for seven days through a
signed URL on devstore's own base. Faults: ``bulk_fail`` (FAILED, partial data),
``bulk_expire`` (seconds until the URL expires and the operation reads EXPIRED),
``bulk_delay`` (seconds spent in CREATED/RUNNING before writing).

The export is a compiled projection of the selection set over SQLite rows (not graphql-core
per node) so 1,000,000 orders are written in seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    validate,
)

from devstore import search
from devstore.graphql_api import (
    SCHEMA,
    Ctx,
    Page,
    _cursor_decode,
    _cursor_encode,
    _ruby_error,
    connection,
    customer_filters,
    order_filters,
)
from devstore.store import (
    CUSTOMER_COLUMNS,
    ORDER_COLUMNS,
    REFUND_COLUMNS,
    iso_local,
    iso_utc,
    money_graphql,
    presentment_amount,
    split_tags,
)

if TYPE_CHECKING:
    from devstore.store import ShopStore

MAX_CONCURRENT = 5
MAX_CONNECTIONS = 5
MAX_NESTING = 2
RESULT_TTL_S = 7 * 86_400
ACTIVE = frozenset({"CREATED", "RUNNING", "CANCELING"})
CHILD_DEFER = 3  # parents written before a parent's children: they follow it, not directly

_op_ids = itertools.count(4_412_000_001)
_op_ids_lock = threading.Lock()
_stores: weakref.WeakValueDictionary[int, ShopStore] = weakref.WeakValueDictionary()


def store_for_operation(op_id: int | str) -> ShopStore | None:
    """The shop that owns a bulk operation (for routing /bulk/<id>.jsonl without a Host)."""
    try:
        return _stores.get(_numeric(op_id))
    except ValueError:
        return None


def _numeric(op_id: int | str) -> int:
    text = str(op_id).rsplit("/", 1)[-1].removesuffix(".jsonl")
    return int(text)


@dataclass
class BulkOp:
    id: int
    app_id: str
    query: str
    group_objects: bool
    created_at: int
    status: str = "CREATED"
    type: str = "QUERY"
    error_code: str | None = None
    completed_at: int | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    path: str | None = None
    partial: bool = False
    url_expires: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.id}"


class BulkRegistry:
    def __init__(self) -> None:
        self.ops: dict[int, BulkOp] = {}
        self.lock = threading.Lock()


def _registry(store: ShopStore) -> BulkRegistry:
    with store._lock:
        reg = store._api_state.get("bulk")
        if reg is None:
            reg = store._api_state["bulk"] = BulkRegistry()
        return reg  # type: ignore[no-any-return]


def _expired(store: ShopStore, op: BulkOp) -> bool:
    return op.url_expires is not None and store.now() >= op.url_expires and op.status in {"COMPLETED", "FAILED"}


def signed_url(store: ShopStore, op: BulkOp) -> str | None:
    if op.path is None or op.url_expires is None:
        return None
    expires = op.url_expires
    sig = _signature(store, op.id, expires)
    return f"{store.base_url.rstrip('/')}/bulk/{op.id}.jsonl?shop={store.domain}&expires={expires}&signature={sig}"


def _signature(store: ShopStore, op_id: int, expires: int) -> str:
    msg = f"{store.domain}:{op_id}:{expires}".encode()
    return hmac.new(store.url_secret, msg, hashlib.sha256).hexdigest()


class BulkOperationObj:
    TYPE_NAME = "BulkOperation"

    def __init__(self, store: ShopStore, op: BulkOp) -> None:
        expired = _expired(store, op)
        self.id = op.gid
        self.status = "EXPIRED" if expired else op.status
        self.errorCode = op.error_code
        self.createdAt = iso_utc(op.created_at)
        self.completedAt = iso_utc(op.completed_at)
        self.objectCount = str(op.object_count)
        self.rootObjectCount = str(op.root_object_count)
        self.fileSize = str(op.file_size) if op.file_size is not None and op.status == "COMPLETED" else None
        url = None if expired else signed_url(store, op)
        self.url = url if op.status == "COMPLETED" else None
        self.partialDataUrl = url if op.status == "FAILED" and op.partial else None
        self.query = op.query
        self.type = op.type


def bulk_operation_get(*, ctx: Ctx, op_id: int) -> BulkOperationObj | None:
    reg = _registry(ctx.store)
    op = reg.ops.get(op_id)
    if op is None or op.app_id != ctx.app_id:
        return None
    return BulkOperationObj(ctx.store, op)


def bulk_operation_current(*, ctx: Ctx, op_type: str) -> BulkOperationObj | None:
    reg = _registry(ctx.store)
    ops = [o for o in reg.ops.values() if o.app_id == ctx.app_id and o.type == op_type]
    if not ops:
        return None
    return BulkOperationObj(ctx.store, max(ops, key=lambda o: o.id))


def bulk_operations_connection(*, ctx: Ctx, args: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    reg = _registry(ctx.store)
    ops = [o for o in reg.ops.values() if o.app_id == ctx.app_id]
    groups = search.search_parse(args.get("query"))
    if groups:

        def matches(op: BulkOp) -> bool:
            status = "EXPIRED" if _expired(ctx.store, op) else op.status
            for group in groups:
                ok = True
                for term in group:
                    value = term.value.upper()
                    hit = True
                    if term.field == "status":
                        hit = status == value
                    elif term.field == "operation_type":
                        hit = op.type == value
                    elif term.field == "id":
                        hit = str(op.id) == term.value.rsplit("/", 1)[-1]
                    if term.negated:
                        hit = not hit
                    ok = ok and hit
                if ok:
                    return True
            return False

        ops = [o for o in ops if matches(o)]
    key_name = args.get("sortKey") or "CREATED_AT"
    sort_key: Callable[[BulkOp], Any] = {
        "CREATED_AT": lambda o: (o.created_at, o.id),
        "ID": lambda o: (o.id, o.id),
        "COMPLETED_AT": lambda o: (o.completed_at or 0, o.id),
    }.get(key_name, lambda o: (o.id, o.id))
    reverse = bool(args.get("reverse"))
    ops.sort(key=sort_key, reverse=reverse)
    if args.get("after"):
        last_id, _ = _cursor_decode(args["after"])
        idx = next((i for i, o in enumerate(ops) if o.id == last_id), -1)
        ops = ops[idx + 1 :]
    size = args.get("first") or args.get("last") or 50
    window = ops[:size] if args.get("last") is None else ops[-size:]
    page = Page(
        rows=[],
        cursors=[_cursor_encode(o.id, str(o.id)) for o in window],
        has_next=len(ops) > len(window),
        has_previous=bool(args.get("after")),
    )
    return connection(page, [BulkOperationObj(ctx.store, o) for o in window])


def _user_error(message: str, code: str | None = "INVALID", field_path: list[str] | None = None) -> dict[str, Any]:
    return {
        "bulkOperation": None,
        "userErrors": [
            {"code": code, "field": field_path if field_path is not None else ["query"], "message": message}
        ],
    }


def bulk_operation_run_query(*, ctx: Ctx, query: str, group_objects: bool) -> dict[str, Any]:
    store = ctx.store
    try:
        document = parse(query)
    except GraphQLError as exc:
        return _user_error(f"Invalid bulk query: {exc.message}")
    errors = validate(SCHEMA, document)
    if errors:
        return _user_error(f"Invalid bulk query: {_ruby_error(errors[0], document)['message']}")
    try:
        plan = compile_plan(document, ctx)
    except BulkQueryError as exc:
        return _user_error(str(exc))
    reg = _registry(store)
    with reg.lock:
        running = [o for o in reg.ops.values() if o.app_id == ctx.app_id and o.type == "QUERY" and o.status in ACTIVE]
        if len(running) >= MAX_CONCURRENT:
            return _user_error(
                f"A maximum of {MAX_CONCURRENT} bulk query operations can run at the same time per shop. "
                "Bulk operations limit reached. Please try again later.",
                code="LIMIT_REACHED",
                field_path=None,
            )
        with _op_ids_lock:
            op_id = next(_op_ids)
        op = BulkOp(id=op_id, app_id=ctx.app_id, query=query, group_objects=group_objects, created_at=store.now())
        reg.ops[op_id] = op
        _stores[op_id] = store
    created = BulkOperationObj(store, op)
    thread = threading.Thread(target=_run, args=(store, op, plan), name=f"bulk-{op_id}", daemon=True)
    thread.start()
    return {"bulkOperation": created, "userErrors": []}


def bulk_operation_cancel(*, ctx: Ctx, op_id: int) -> dict[str, Any]:
    reg = _registry(ctx.store)
    op = reg.ops.get(op_id)
    if op is None or op.app_id != ctx.app_id:
        return {"bulkOperation": None, "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}]}
    with reg.lock:
        if op.status not in ACTIVE:
            return {
                "bulkOperation": BulkOperationObj(ctx.store, op),
                "userErrors": [
                    {
                        "field": None,
                        "message": f"A bulk operation cannot be canceled when it is {op.status.lower()}",
                    }
                ],
            }
        op.status = "CANCELING"
        op.cancel.set()
    return {"bulkOperation": BulkOperationObj(ctx.store, op), "userErrors": []}


def bulk_wait(store: ShopStore, op_id: int | str, timeout: float = 60.0) -> BulkOp:
    """Block until an operation finishes (tests and the benchmark)."""
    op = _registry(store).ops[_numeric(op_id)]
    op.done.wait(timeout)
    return op


# ---------------------------------------------------------------------------------------------
# Running


def _run(store: ShopStore, op: BulkOp, plan: Plan) -> None:
    try:
        delay = float(store.faults.get("bulk_delay") or 0)
        if delay:
            op.cancel.wait(delay / 2)
        with _registry(store).lock:
            if op.cancel.is_set():
                _finish(store, op, "CANCELED")
                return
            op.status = "RUNNING"
        if delay:
            op.cancel.wait(delay / 2)
        op.path = os.path.join(store.tmp_dir, f"bulk-{op.id}.jsonl")
        fail = bool(store.faults.get("bulk_fail"))
        limit = None
        if fail:
            limit = max(plan.estimate(store) // 2, 0)
        written = _write(store, op, plan, limit)
        if op.cancel.is_set():
            _finish(store, op, "CANCELED")
            return
        op.file_size = written
        if fail:
            op.error_code = "INTERNAL_SERVER_ERROR"
            op.partial = op.object_count > 0
            _finish(store, op, "FAILED")
            return
        _finish(store, op, "COMPLETED")
    except Exception:  # noqa: BLE001 - a crashed export must read FAILED, as on Shopify
        op.error_code = "INTERNAL_SERVER_ERROR"
        _finish(store, op, "FAILED")


def _finish(store: ShopStore, op: BulkOp, status: str) -> None:
    now = store.now()
    op.status = status
    op.completed_at = now
    expire_fault = store.faults.get("bulk_expire")
    if expire_fault not in (None, False):
        ttl = 0 if expire_fault is True else int(float(expire_fault))
    else:
        ttl = RESULT_TTL_S
    op.url_expires = now + ttl
    op.done.set()
    store.emit(
        "bulk_operations/finish",
        {
            "admin_graphql_api_id": op.gid,
            "completed_at": iso_local(op.completed_at, store.tz),
            "created_at": iso_local(op.created_at, store.tz),
            "error_code": op.error_code.lower() if op.error_code else None,
            "status": status.lower(),
            "type": op.type.lower(),
        },
    )


def bulk_result_stream(
    *, store: ShopStore, op_id: str | int, expires: str | int | None, signature: str | None
) -> tuple[int, dict[str, str], Iterable[bytes]]:
    xml = {"Content-Type": "application/xml; charset=UTF-8"}

    def error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Iterable[bytes]]:
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        return status, xml, [body.encode()]

    try:
        num = _numeric(op_id)
        exp = int(str(expires))
    except (TypeError, ValueError):
        return error(400, "InvalidArgument", "Missing or malformed expires/signature.")
    op = _registry(store).ops.get(num)
    if op is None or op.path is None or not signature:
        return error(404, "NoSuchKey", "The specified key does not exist.")
    if not hmac.compare_digest(_signature(store, num, exp), str(signature)) or exp != op.url_expires:
        return error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
    if store.now() >= exp:
        return error(400, "ExpiredToken", "The provided token has expired. Request signature expired.")
    size = os.path.getsize(op.path)

    def chunks() -> Iterator[bytes]:
        with open(op.path, "rb") as fh:  # type: ignore[arg-type]
            while True:
                block = fh.read(256 * 1024)
                if not block:
                    return
                yield block

    return 200, {"Content-Type": "application/jsonl", "Content-Length": str(size)}, chunks()


# ---------------------------------------------------------------------------------------------
# The compiled projection


class BulkQueryError(ValueError):
    pass


Getter = Callable[[Any], Any]


@dataclass
class ChildConn:
    """A nested connection: its nodes become lines with __parentId."""

    key: str
    source: Callable[[Any], list[Any]]  # parent source -> child sources
    project: Callable[[Any, list[bytes]], dict[str, Any]]
    parent_id: Callable[[Any], str]


@dataclass
class Plan:
    root: str  # "orders" or "customers"
    where: list[str]
    params: list[Any]
    order_by: str
    project: Callable[[Any, list[bytes]], dict[str, Any]]
    needs_refunds: bool
    store: ShopStore

    def estimate(self, store: ShopStore) -> int:
        table = "orders" if self.root == "orders" else "customers"
        cond = " AND ".join(self.where) or "1"
        db = store.new_reader()
        try:
            return int(db.execute(f"SELECT count(*) FROM {table} WHERE {cond}", self.params).fetchone()[0])  # noqa: S608
        finally:
            db.close()


OI = {c: i for i, c in enumerate(ORDER_COLUMNS)}
CI = {c: i for i, c in enumerate(CUSTOMER_COLUMNS)}
RI = {c: i for i, c in enumerate(REFUND_COLUMNS)}


class Compiler:
    def __init__(self, ctx: Ctx, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.fragments = fragments
        self.connections = 0
        self.needs_refunds = False

    def fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        out: list[FieldNode] = []
        if selection_set is None:
            return out
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                out.extend(self.fields(sel.selection_set))
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    out.extend(self.fields(frag.selection_set))
        return out

    # Sources: Order -> (row tuple, refunds list); Refund -> (refund tuple, order row);
    # Customer -> row tuple (or an id-only stub); money -> (amount, currency).

    def money_v2(self, sel: SelectionSetNode | None) -> Callable[[int, str], dict[str, Any]]:
        keys = [(f.alias.value if f.alias else f.name.value, f.name.value) for f in self.fields(sel)]

        def build(amount: int, currency: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, name in keys:
                if name == "amount":
                    out[key] = money_graphql(amount, currency)
                elif name == "currencyCode":
                    out[key] = currency
                elif name == "__typename":
                    out[key] = "MoneyV2"
            return out

        return build

    def money_bag(self, sel: SelectionSetNode | None) -> Callable[[int, str, float], dict[str, Any]]:
        shop_currency = self.store.currency
        parts = []
        for f in self.fields(sel):
            key = f.alias.value if f.alias else f.name.value
            parts.append((key, f.name.value, self.money_v2(f.selection_set)))

        def build(amount: int, pres_currency: str, rate: float) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, name, mv in parts:
                if name == "shopMoney":
                    out[key] = mv(amount, shop_currency)
                elif name == "presentmentMoney":
                    out[key] = mv(presentment_amount(amount, rate, shop_currency, pres_currency), pres_currency)
            return out

        return build

    def order(self, sel: SelectionSetNode | None, depth: int) -> Callable[[Any, list[bytes]], dict[str, Any]]:
        getters: list[tuple[str, Getter]] = []
        children: list[ChildConn] = []
        store = self.store
        o = OI
        ctx = self.ctx
        for f in self.fields(sel):
            key = f.alias.value if f.alias else f.name.value
            name = f.name.value
            g: Getter | None = None
            if name == "id":
                g = lambda s: f"gid://shopify/Order/{s[0][0]}"  # noqa: E731
            elif name == "legacyResourceId":
                g = lambda s: str(s[0][0])  # noqa: E731
            elif name == "name":
                g = lambda s: f"#{s[0][o['number']]}"  # noqa: E731
            elif name in ("createdAt", "processedAt", "updatedAt", "cancelledAt"):
                col = o[
                    {
                        "createdAt": "created_at",
                        "processedAt": "processed_at",
                        "updatedAt": "updated_at",
                        "cancelledAt": "cancelled_at",
                    }[name]
                ]
                g = (lambda c: lambda s: iso_utc(s[0][c]))(col)
            elif name == "test":
                g = lambda s: bool(s[0][o["test"]])  # noqa: E731
            elif name == "displayFinancialStatus":
                g = lambda s: s[0][o["financial_status"]].upper()  # noqa: E731
            elif name == "cancelReason":
                g = lambda s: (s[0][o["cancel_reason"]] or "").upper() or None  # noqa: E731
            elif name == "currencyCode":
                g = lambda s: store.currency  # noqa: E731
            elif name == "presentmentCurrencyCode":
                g = lambda s: s[0][o["presentment_currency"]]  # noqa: E731
            elif name in ("closed",):
                g = lambda s: False  # noqa: E731
            elif name in ("confirmed",):
                g = lambda s: True  # noqa: E731
            elif name in ("closedAt", "note", "phone"):
                g = lambda s: None  # noqa: E731
            elif name == "email":
                allowed = ctx.protected("email")
                g = (lambda s: s[0][o["email"]]) if allowed else (lambda s: None)
            elif name == "tags":
                g = lambda s: split_tags(s[0][o["tags"]])  # noqa: E731
            elif name.endswith("Set"):
                bag = self.money_bag(f.selection_set)
                amount_of: Callable[[tuple[Any, ...]], int] = {
                    "subtotalPriceSet": lambda r: r[o["subtotal"]],
                    "currentSubtotalPriceSet": lambda r: r[o["subtotal"]] - r[o["refunded_subtotal"]],
                    "totalPriceSet": lambda r: r[o["total"]],
                    "currentTotalPriceSet": lambda r: r[o["total"]] - r[o["refunded"]],
                    "totalRefundedSet": lambda r: r[o["refunded"]],
                    "totalShippingPriceSet": lambda r: r[o["shipping"]],
                }[name]
                g = (lambda b, a, pc, rt: lambda s: b(a(s[0]), s[0][pc], s[0][rt]))(
                    bag, amount_of, o["presentment_currency"], o["rate"]
                )
            elif name == "customer":
                proj = self.customer(f.selection_set, depth, stub=True)
                g = (lambda p, ci: lambda s: None if s[0][ci] is None else p(("stub", s[0][ci]), []))(
                    proj, o["customer_id"]
                )
            elif name == "refunds":
                self.needs_refunds = True
                proj_r, kids = self.refund(f.selection_set, depth)
                children.extend(kids)
                g = (lambda p: lambda s: [p((r, s[0]), []) for r in s[1]])(proj_r)
                if kids:
                    # Child lines of inline refunds: collected through the refund projection.
                    g = self._refunds_with_children(proj_r, kids)
            elif name == "__typename":
                g = lambda s: "Order"  # noqa: E731
            else:
                raise BulkQueryError(f"Field '{name}' on Order is not supported in devstore bulk queries.")
            getters.append((key, g))

        def project(src: Any, lines: list[bytes]) -> dict[str, Any]:
            return {k: fn(src) if fn is not None else None for k, fn in getters}

        refund_children = [c for c in children]

        def project_with_children(src: Any, lines: list[bytes]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, fn in getters:
                value = fn(src)
                if isinstance(value, _WithLines):
                    lines.extend(value.lines)
                    value = value.value
                out[k] = value
            return out

        return project_with_children if refund_children else project

    def _refunds_with_children(self, proj_r: Callable[..., dict[str, Any]], kids: list[ChildConn]) -> Getter:
        def get(s: Any) -> _WithLines:
            lines: list[bytes] = []
            items = []
            for r in s[1]:
                src = (r, s[0])
                items.append(proj_r(src, lines))
                for kid in kids:
                    pid = kid.parent_id(src)
                    for child in kid.source(src):
                        obj = kid.project(child, lines)
                        obj["__parentId"] = pid
                        lines.append(orjson.dumps(obj))
            return _WithLines(items, lines)

        return get

    def refund(self, sel: SelectionSetNode | None, depth: int) -> tuple[Callable[..., dict[str, Any]], list[ChildConn]]:
        getters: list[tuple[str, Getter]] = []
        kids: list[ChildConn] = []
        r_ = RI
        o = OI
        for f in self.fields(sel):
            key = f.alias.value if f.alias else f.name.value
            name = f.name.value
            g: Getter
            if name == "id":
                g = lambda s: f"gid://shopify/Refund/{s[0][0]}"  # noqa: E731
            elif name == "legacyResourceId":
                g = lambda s: str(s[0][0])  # noqa: E731
            elif name in ("createdAt", "updatedAt"):
                g = lambda s: iso_utc(s[0][r_["created_at"]])  # noqa: E731
            elif name == "note":
                g = lambda s: s[0][r_["note"]]  # noqa: E731
            elif name == "totalRefundedSet":
                bag = self.money_bag(f.selection_set)
                g = (lambda b: lambda s: b(s[0][r_["amount"]], s[1][o["presentment_currency"]], s[1][o["rate"]]))(bag)
            elif name == "order":
                g = lambda s: {"id": f"gid://shopify/Order/{s[1][0]}"}  # noqa: E731
            elif name == "refundLineItems":
                self._connection(depth + 1)
                line_proj = self.refund_line_item(f.selection_set)
                kids.append(
                    ChildConn(
                        key=key,
                        source=lambda s: [s] if s[0][r_["subtotal"]] > 0 else [],
                        project=line_proj,
                        parent_id=lambda s: f"gid://shopify/Refund/{s[0][0]}",
                    )
                )
                continue
            elif name == "__typename":
                g = lambda s: "Refund"  # noqa: E731
            else:
                raise BulkQueryError(f"Field '{name}' on Refund is not supported in devstore bulk queries.")
            getters.append((key, g))

        def project(src: Any, lines: list[bytes]) -> dict[str, Any]:
            return {k: fn(src) for k, fn in getters}

        return project, kids

    def refund_line_item(self, conn_sel: SelectionSetNode | None) -> Callable[[Any, list[bytes]], dict[str, Any]]:
        node_sel = self._node_selection(conn_sel)
        getters: list[tuple[str, Getter]] = []
        r_ = RI
        o = OI
        for f in self.fields(node_sel):
            key = f.alias.value if f.alias else f.name.value
            name = f.name.value
            g: Getter
            if name in ("subtotalSet", "priceSet", "totalTaxSet"):
                bag = self.money_bag(f.selection_set)
                zero = name == "totalTaxSet"
                g = (
                    lambda b, z: (
                        lambda s: b(0 if z else s[0][r_["subtotal"]], s[1][o["presentment_currency"]], s[1][o["rate"]])
                    )
                )(bag, zero)
            elif name == "quantity":
                g = lambda s: 1  # noqa: E731
            elif name == "restocked":
                g = lambda s: False  # noqa: E731
            elif name == "id":
                g = lambda s: None  # noqa: E731
            elif name == "__typename":
                g = lambda s: "RefundLineItem"  # noqa: E731
            else:
                raise BulkQueryError(f"Field '{name}' on RefundLineItem is not supported in devstore bulk queries.")
            getters.append((key, g))
        return lambda src, lines: {k: fn(src) for k, fn in getters}

    def customer(self, sel: SelectionSetNode | None, depth: int, *, stub: bool = False) -> Callable[..., Any]:
        getters: list[tuple[str, Getter]] = []
        c = CI
        store = self.store
        ctx = self.ctx
        needs_row = False
        for f in self.fields(sel):
            key = f.alias.value if f.alias else f.name.value
            name = f.name.value
            g: Getter
            if name == "id":
                g = lambda r: f"gid://shopify/Customer/{r[0]}"  # noqa: E731
            elif name == "legacyResourceId":
                g = lambda r: str(r[0])  # noqa: E731
            else:
                needs_row = True
                if name in ("createdAt", "updatedAt"):
                    col = c["created_at" if name == "createdAt" else "updated_at"]
                    g = (lambda i: lambda r: iso_utc(r[i]))(col)
                elif name == "numberOfOrders":
                    g = lambda r: str(r[c["number_of_orders"]])  # noqa: E731
                elif name == "amountSpent":
                    mv = self.money_v2(f.selection_set)
                    g = (lambda m: lambda r: m(r[c["amount_spent"]], store.currency))(mv)
                elif name == "tags":
                    g = lambda r: split_tags(r[c["tags"]])  # noqa: E731
                elif name == "statistics":
                    keys = [
                        (s.alias.value if s.alias else s.name.value, s.name.value) for s in self.fields(f.selection_set)
                    ]
                    g = (lambda ks: lambda r: {k: (r[c["rfm_group"]] if n == "rfmGroup" else None) for k, n in ks})(
                        keys
                    )
                elif name in ("firstName", "lastName", "email", "phone"):
                    kind = {"firstName": "name", "lastName": "name", "email": "email", "phone": "phone"}[name]
                    col = c[
                        {"firstName": "first_name", "lastName": "last_name", "email": "email", "phone": "phone"}[name]
                    ]
                    g = (lambda i: lambda r: r[i])(col) if ctx.protected(kind) else (lambda r: None)
                elif name == "displayName":
                    g = lambda r: "Customer"  # noqa: E731
                elif name == "state":
                    g = lambda r: "ENABLED" if r[c["number_of_orders"]] else "DISABLED"  # noqa: E731
                elif name == "verifiedEmail":
                    g = lambda r: True  # noqa: E731
                elif name == "note":
                    g = lambda r: None  # noqa: E731
                elif name == "__typename":
                    g = lambda r: "Customer"  # noqa: E731
                else:
                    raise BulkQueryError(f"Field '{name}' on Customer is not supported in devstore bulk queries.")
            getters.append((key, g))
        cache: dict[int, tuple[Any, ...] | None] = {}
        db_holder: list[Any] = []

        def row_of(src: Any) -> tuple[Any, ...] | None:
            if not (isinstance(src, tuple) and len(src) == 2 and src[0] == "stub"):
                return src  # type: ignore[no-any-return]
            cid = src[1]
            if not needs_row:
                return (cid,)
            if cid not in cache:
                if not db_holder:
                    db_holder.append(store.new_reader())
                if len(cache) > 50_000:
                    cache.clear()
                cache[cid] = (
                    db_holder[0]
                    .execute(
                        f"SELECT {','.join(CUSTOMER_COLUMNS)} FROM customers WHERE id = ?",  # noqa: S608
                        (cid,),
                    )
                    .fetchone()
                )
            return cache[cid]

        def project(src: Any, lines: list[bytes]) -> dict[str, Any] | None:
            row = row_of(src)
            if row is None:
                return {k: (f"gid://shopify/Customer/{src[1]}" if k == "id" else None) for k, _ in getters}
            return {k: fn(row) for k, fn in getters}

        return project

    def _node_selection(self, conn_sel: SelectionSetNode | None) -> SelectionSetNode | None:
        for f in self.fields(conn_sel):
            if f.name.value == "nodes":
                return f.selection_set
            if f.name.value == "edges":
                for g in self.fields(f.selection_set):
                    if g.name.value == "node":
                        return g.selection_set
        raise BulkQueryError("Bulk queries must select `edges { node }` or `nodes` on each connection.")

    def _connection(self, depth: int) -> None:
        self.connections += 1
        if self.connections > MAX_CONNECTIONS:
            raise BulkQueryError(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections.")
        if depth > MAX_NESTING:
            raise BulkQueryError(
                f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_NESTING}."
            )


@dataclass
class _WithLines:
    value: Any
    lines: list[bytes]


def compile_plan(document: Any, ctx: Ctx) -> Plan:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation.value != "query":
        raise BulkQueryError("Bulk queries must contain exactly one query operation.")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    comp = Compiler(ctx, fragments)
    top = comp.fields(operations[0].selection_set)
    if len(top) != 1:
        raise BulkQueryError("Bulk queries must have exactly one top-level field.")
    root = top[0]
    name = root.name.value
    if name in ("node", "nodes"):
        raise BulkQueryError("The top-level node and nodes fields can't be used in bulk queries.")
    if name not in ("orders", "customers"):
        raise BulkQueryError(f"Bulk queries on '{name}' are not supported by devstore (use orders or customers).")
    scope = "read_orders" if name == "orders" else "read_customers"
    if not ctx.has(scope):
        raise BulkQueryError(f"Access denied for {name} field. Required access: `{scope}` access scope.")
    args: dict[str, Any] = {}
    for a in root.arguments or ():
        from graphql import value_from_ast_untyped

        args[a.name.value] = value_from_ast_untyped(a.value, {})
    comp._connection(1)
    node_sel = comp._node_selection(root.selection_set)
    path = [name]
    if name == "orders":
        where, params = order_filters(ctx, args.get("query"), path)
        project = comp.order(node_sel, 1)
    else:
        where, params = customer_filters(ctx, args.get("query"), path)
        project = comp.customer(node_sel, 1)
    # Exports run in id order (reverse honoured) whatever the sortKey, like Shopify's bulk reader.
    order_by = "id DESC" if args.get("reverse") else "id ASC"
    return Plan(
        root=name,
        where=where,
        params=params,
        order_by=order_by,
        project=project,
        needs_refunds=comp.needs_refunds,
        store=ctx.store,
    )


def _write(store: ShopStore, op: BulkOp, plan: Plan, limit: int | None) -> int:
    """Stream the selection to the JSONL file; returns bytes written."""
    if op.path is None:
        raise RuntimeError("bulk operation has no result path")
    db = store.new_reader()
    db_refunds = store.new_reader() if plan.needs_refunds else None
    table = "orders" if plan.root == "orders" else "customers"
    columns = ORDER_COLUMNS if plan.root == "orders" else CUSTOMER_COLUMNS
    cond = " AND ".join(plan.where) or "1"
    cur = db.execute(f"SELECT {','.join(columns)} FROM {table} WHERE {cond} ORDER BY {plan.order_by}", plan.params)  # noqa: S608
    project = plan.project
    dumps = orjson.dumps
    written = 0
    roots = 0
    objects = 0
    buf: list[bytes] = []
    buf_size = 0
    deferred: list[list[bytes]] = []
    refund_iter: Iterator[tuple[Any, ...]] | None = None
    pending_refund: tuple[Any, ...] | None = None
    descending = plan.order_by.endswith("DESC")
    if db_refunds is not None:
        refund_iter = iter(
            db_refunds.execute(
                f"SELECT {','.join(REFUND_COLUMNS)} FROM refunds "  # noqa: S608
                f"ORDER BY order_id {'DESC' if descending else 'ASC'}, id"
            )
        )
        pending_refund = next(refund_iter, None)
    with open(op.path, "wb") as fh:
        while True:
            batch = cur.fetchmany(5000)
            if not batch or op.cancel.is_set():
                break
            for row in batch:
                if plan.root == "orders":
                    refunds: list[tuple[Any, ...]] = []
                    if refund_iter is not None:
                        oid = row[0]
                        # Merge-join: refunds sorted by order id alongside the orders.
                        while pending_refund is not None and (
                            pending_refund[1] < oid if not descending else pending_refund[1] > oid
                        ):
                            pending_refund = next(refund_iter, None)
                        while pending_refund is not None and pending_refund[1] == oid:
                            refunds.append(pending_refund)
                            pending_refund = next(refund_iter, None)
                    src: Any = (row, refunds)
                else:
                    src = row
                children: list[bytes] = []
                obj = project(src, children)
                line = dumps(obj)
                buf.append(line)
                buf.append(b"\n")
                buf_size += len(line) + 1
                roots += 1
                objects += 1
                if children:
                    objects += len(children)
                    if op.group_objects:
                        for c in children:
                            buf.append(c)
                            buf.append(b"\n")
                            buf_size += len(c) + 1
                    else:
                        deferred.append(children)
                if len(deferred) > CHILD_DEFER:
                    for c in deferred.pop(0):
                        buf.append(c)
                        buf.append(b"\n")
                        buf_size += len(c) + 1
                if limit is not None and roots >= limit:
                    break
            if buf_size > 1 << 20:
                fh.write(b"".join(buf))
                written += buf_size
                buf.clear()
                buf_size = 0
            op.object_count = objects
            op.root_object_count = roots
            if limit is not None and roots >= limit:
                break
        for group in deferred:
            for c in group:
                buf.append(c)
                buf.append(b"\n")
                buf_size += len(c) + 1
        fh.write(b"".join(buf))
        written += buf_size
    op.object_count = objects
    op.root_object_count = roots
    db.close()
    if db_refunds is not None:
        db_refunds.close()
    return written


def now_s() -> int:
    return int(time.time())
