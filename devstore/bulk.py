"""Bulk operations: bulkOperationRunQuery, the operations' lifecycle, and the JSONL result file.

A query is first held to Shopify's recorded rules (``devstore.bulk_rules``, on the real
schema); only then does devstore compile it, for the roots it serves (``orders``, ``customers``
and ``Customer.orders`` nested). At most five operations of a type run at once per app and
shop; the sixth is refused with ``OPERATION_IN_PROGRESS``. A result file holds one object per
line in Shopify's exact bytes (``shopify_escape``); nested connections become their own lines
carrying ``__parentId``, after their parent but not directly after it unless ``groupObjects``.
Results stay downloadable for seven days through a signed URL on devstore's own base. Faults:
``bulk_fail`` (FAILED with partial data: ``True`` for INTERNAL_SERVER_ERROR, or the errorCode
such as ``"TIMEOUT"``), ``bulk_expire`` (seconds until the URL expires and the
operation reads EXPIRED), ``bulk_delay`` (seconds spent in CREATED/RUNNING before writing).
Mutation operations share the registry, limits and lifecycle (``devstore.bulk_mutation``).

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
    value_from_ast_untyped,
)

from devstore import search
from devstore.bulk_rules import bulk_query_errors
from devstore.graphql_api import (
    Ctx,
    Page,
    _cursor_decode,
    _cursor_encode,
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
    minor_units,
    presentment_amount,
    split_tags,
)

if TYPE_CHECKING:
    from devstore.store import ShopStore

MAX_CONCURRENT = 5
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
    parts: list[str] = field(default_factory=list)  # result files, served one after the other
    partial: bool = False
    url_expires: int | None = None
    write_seconds: float | None = None  # wall time spent writing the JSONL (benchmarks)
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
    # Recorded (bulk-operation-status-catalog-cancel.json): a window is required, one only.
    if args.get("first") is None and args.get("last") is None:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
    if args.get("first") is not None and args.get("last") is not None:
        raise GraphQLError("providing both first and last is not supported", extensions={"code": "BAD_REQUEST"})
    ops = [o for o in reg.ops.values() if o.app_id == ctx.app_id]
    groups = search.search_parse(args.get("query"))
    created_bounds = {
        id(term): _search_time(term.value)
        for group in groups
        for term in group
        if term.field == "created_at"
    }
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
                    elif term.field == "created_at":
                        hit = _compare(op.created_at, term.op, created_bounds[id(term)])
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
    size = int(args.get("first") or args.get("last") or 0)
    window = ops[:size] if args.get("last") is None else ops[-size:]
    page = Page(
        rows=[],
        cursors=[_cursor_encode(o.id, str(o.id)) for o in window],
        has_next=len(ops) > len(window),
        has_previous=bool(args.get("after")),
    )
    return connection(page, [BulkOperationObj(ctx.store, o) for o in window])


def _search_time(value: str) -> int:
    """A ``created_at`` bound: an ISO date or date-time (UTC unless it says), else Shopify's error."""
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value.strip("'\""))
    except ValueError:
        raise GraphQLError(
            "Invalid timestamp for query filter `created_at`.", extensions={"code": "BAD_REQUEST"}
        ) from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())


def _compare(value: int, op: str, bound: int) -> bool:
    return {
        "=": value == bound,
        ">": value > bound,
        ">=": value >= bound,
        "<": value < bound,
        "<=": value <= bound,
    }[op]


def _user_error(message: str, code: str | None = "INVALID", field_path: list[str] | None = None) -> dict[str, Any]:
    return {"bulkOperation": None, "userErrors": [{"code": code, "field": field_path, "message": message}]}


def in_progress_error(reg: BulkRegistry, app_id: str, op_type: str) -> dict[str, Any] | None:
    """Shopify's answer to a sixth running operation of one type (recorded: the five ids, oldest first)."""
    running = sorted(
        (o for o in reg.ops.values() if o.app_id == app_id and o.type == op_type and o.status in ACTIVE),
        key=lambda o: o.id,
    )
    if len(running) < MAX_CONCURRENT:
        return None
    ids = ", ".join(o.gid for o in running)
    return _user_error(
        f"A bulk {op_type.lower()} operation for this app and shop is already in progress: {ids}.",
        code="OPERATION_IN_PROGRESS",
    )


def bulk_operation_run_query(*, ctx: Ctx, query: str, group_objects: bool) -> dict[str, Any]:
    store = ctx.store
    errors = bulk_query_errors(query)
    if errors:
        return {"bulkOperation": None, "userErrors": errors}
    plan: Plan | None = None
    try:
        plan = compile_plan(parse(query), ctx)
    except BulkAccessDenied:
        pass
    except BulkQueryError as exc:
        return _user_error(str(exc), field_path=["query"])
    reg = _registry(store)
    with reg.lock:
        refused = in_progress_error(reg, ctx.app_id, "QUERY")
        if refused is not None:
            return refused
        op = new_operation(store, reg, app_id=ctx.app_id, query=query, op_type="QUERY", group_objects=group_objects)
    created = BulkOperationObj(store, op)
    thread = threading.Thread(target=_run if plan is not None else _deny, args=(store, op, plan),
                              name=f"bulk-{op.id}", daemon=True)
    thread.start()
    return {"bulkOperation": created, "userErrors": []}


def new_operation(
    store: ShopStore, reg: BulkRegistry, *, app_id: str, query: str, op_type: str, group_objects: bool = False
) -> BulkOp:
    """Register a CREATED operation (the caller holds ``reg.lock`` and has checked the limit)."""
    with _op_ids_lock:
        op_id = next(_op_ids)
    op = BulkOp(
        id=op_id, app_id=app_id, query=query, group_objects=group_objects, created_at=store.now(), type=op_type
    )
    reg.ops[op_id] = op
    _stores[op_id] = store
    return op


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


def wait_to_run(store: ShopStore, op: BulkOp) -> bool:
    """CREATED, then RUNNING (``bulk_delay`` spends half its time in each); False if canceled first."""
    delay = float(store.faults.get("bulk_delay") or 0)
    if delay:
        op.cancel.wait(delay / 2)
    with _registry(store).lock:
        if op.cancel.is_set():
            finish(store, op, "CANCELED")
            return False
        op.status = "RUNNING"
    if delay:
        op.cancel.wait(delay / 2)
    return True


def _deny(store: ShopStore, op: BulkOp, plan: None) -> None:
    """An operation on data the token may not read: it runs, and ends FAILED with ACCESS_DENIED."""
    if wait_to_run(store, op):
        op.error_code = "ACCESS_DENIED"
        finish(store, op, "FAILED")


def _run(store: ShopStore, op: BulkOp, plan: Plan) -> None:
    try:
        if not wait_to_run(store, op):
            return
        op.path = os.path.join(store.tmp_dir, f"bulk-{op.id}.jsonl")
        op.parts = [op.path]
        plan.group_objects = op.group_objects
        # bulk_fail: True (INTERNAL_SERVER_ERROR) or the errorCode to end with (TIMEOUT, ...).
        fail = store.faults.get("bulk_fail")
        estimate = plan.estimate(store)
        limit = None
        if fail:
            limit = max(estimate // 2, 0)
        started = time.perf_counter()
        if not fail and estimate >= PARALLEL_MIN_ROWS and PARALLEL_WORKERS > 1:
            written = _write_parallel(store, op, plan, estimate)
        else:
            written, _, _ = _write(store, op.path, plan, limit, op.cancel, _op_reporter(op))
        op.write_seconds = time.perf_counter() - started
        if op.cancel.is_set():
            finish(store, op, "CANCELED")
            return
        op.file_size = written
        if fail:
            op.error_code = fail if isinstance(fail, str) else "INTERNAL_SERVER_ERROR"
            op.partial = op.object_count > 0
            finish(store, op, "FAILED")
            return
        finish(store, op, "COMPLETED")
    except Exception:  # noqa: BLE001 - a crashed export must read FAILED, as on Shopify
        op.error_code = "INTERNAL_SERVER_ERROR"
        finish(store, op, "FAILED")


def finish(store: ShopStore, op: BulkOp, status: str) -> None:
    """The terminal status, the result URL's expiry, and the bulk_operations/finish webhook."""
    now = store.now()
    op.status = status
    # Recorded: a canceled operation keeps completedAt null (its counts stay where it stopped).
    op.completed_at = None if status == "CANCELED" else now
    expire_fault = store.faults.get("bulk_expire")
    if expire_fault is not None and expire_fault is not False:  # 0 is a valid TTL
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


# Shopify writes result files with Rails' JSON encoder: compact, keys in selection order,
# non-ASCII as raw UTF-8, and "/" "<" ">" "&" U+2028 U+2029 escaped. The recordings pin "\/"
# (every GID reads "gid:\/\/shopify\/Order\/1", in result bodies) and "&" as "\u0026" (the exact
# fileSize of bulk-operation-run-query-group-objects.json matches only with both); the other
# four follow from the same encoder.
_ESCAPES = (
    (b"/", b"\\/"),
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def shopify_escape(jsonl: bytes) -> bytes:
    """orjson's compact output made byte for byte what Shopify writes (inside strings only:
    none of these bytes occur in JSON outside a string)."""
    for raw, escaped in _ESCAPES:
        if raw in jsonl:
            jsonl = jsonl.replace(raw, escaped)
    return jsonl


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
    parts = list(op.parts or [op.path])
    size = sum(os.path.getsize(p) for p in parts)

    def chunks() -> Iterator[bytes]:
        for part in parts:
            with open(part, "rb") as fh:
                while True:
                    block = fh.read(256 * 1024)
                    if not block:
                        break
                    yield block

    return 200, {"Content-Type": "application/jsonl", "Content-Length": str(size)}, chunks()


# ---------------------------------------------------------------------------------------------
# The compiled projection


class BulkQueryError(ValueError):
    pass


class BulkAccessDenied(BulkQueryError):
    """A query on data the token has no scope for. Shopify accepts it and the operation then ends
    FAILED with errorCode ACCESS_DENIED ("execute the query as a normal non-bulk GraphQL request to
    see more details"), not a userError."""


@dataclass
class Plan:
    root: str  # "orders" or "customers"
    where: list[str]
    params: list[Any]
    order_by: str
    project: Callable[[Any, Any, list[bytes]], dict[str, Any]]
    needs_refunds: bool
    store: ShopStore
    source: str = ""
    group_objects: bool = False
    ctx_spec: dict[str, Any] = field(default_factory=dict)  # to rebuild the plan in a worker

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

_DAY_CACHE: dict[int, str] = {}
_TIME_OF_DAY: list[str] = []


def fast_iso(ts: int | None) -> str | None:
    """iso_utc without strftime: date prefixes cached per day, times of day from a table (hot path)."""
    if ts is None:
        return None
    day, sec = divmod(ts, 86_400)
    prefix = _DAY_CACHE.get(day)
    if prefix is None:
        if not _TIME_OF_DAY:
            _TIME_OF_DAY.extend(f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60))
        prefix = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
        if len(_DAY_CACHE) < 200_000:
            _DAY_CACHE[day] = prefix
    return prefix + _TIME_OF_DAY[sec]


def _money_formatter(currency: str) -> Callable[[int], str]:
    if minor_units(currency) == 1:
        return lambda amount: f"{amount}.0"

    def fmt(amount: int) -> str:
        whole, cents = divmod(amount, 100)
        if cents == 0:
            return f"{whole}.0"
        if cents % 10 == 0:
            return f"{whole}.{cents // 10}"
        return f"{whole}.{cents:02d}"

    return fmt


class Compiler:
    """Turns a bulk query's selection set into one generated Python function per object type.

    The generated code builds each JSONL object as a dict literal straight from SQLite row
    tuples: no graphql-core, no per-field dispatch, which is what makes 50,000+ orders/s.
    """

    def __init__(self, ctx: Ctx, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.fragments = fragments
        self.needs_refunds = False
        self._shop_currency = self.store.currency
        self._shop_fmt = _money_formatter(self.store.currency)
        self._formatters: dict[str, Callable[[int], str]] = {}
        self.ns: dict[str, Any] = {
            "T": fast_iso,
            "M": _Memo(self._shop_fmt),
            "P": self._presentment_money,
            "TAGS": _Memo(_split_tags_or_empty),
            "FS": _Memo(str.upper),
            "CR": _cancel_reason,
            "dumps": orjson.dumps,
        }
        self.functions: list[str] = []
        self._n = 0

    def _presentment_money(self, amount: int, currency: str, rate: float) -> str:
        if currency == self._shop_currency:
            return self.ns["M"][amount]  # type: ignore[no-any-return]
        fmt = self._formatters.get(currency)
        if fmt is None:
            fmt = self._formatters[currency] = _money_formatter(currency)
        return fmt(presentment_amount(amount, rate, self._shop_currency, currency))

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

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

    @staticmethod
    def key(f: FieldNode) -> str:
        return f.alias.value if f.alias else f.name.value

    def dict_literal(self, items: list[tuple[str, str]]) -> str:
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in items) + "}"

    def money_v2(self, sel: SelectionSetNode | None, amount: str, currency: str | None, rate: str | None) -> str:
        """currency None -> shop money (amount in shop minor units); else presentment at ``rate``."""
        items = []
        for f in self.fields(sel):
            n = f.name.value
            if n == "amount":
                value = f"M[{amount}]" if currency is None else f"P({amount}, {currency}, {rate})"
                items.append((self.key(f), value))
            elif n == "currencyCode":
                items.append((self.key(f), repr(self.store.currency) if currency is None else currency))
            elif n == "__typename":
                items.append((self.key(f), "'MoneyV2'"))
            else:
                raise BulkQueryError(f"Field '{n}' on MoneyV2 is not supported in devstore bulk queries.")
        return self.dict_literal(items)

    def money_bag(self, sel: SelectionSetNode | None, amount: str, pres: str, rate: str) -> str:
        items = []
        for f in self.fields(sel):
            n = f.name.value
            if n == "shopMoney":
                items.append((self.key(f), self.money_v2(f.selection_set, amount, None, None)))
            elif n == "presentmentMoney":
                items.append((self.key(f), self.money_v2(f.selection_set, amount, pres, rate)))
            elif n == "__typename":
                items.append((self.key(f), "'MoneyBag'"))
            else:
                raise BulkQueryError(f"Field '{n}' on MoneyBag is not supported in devstore bulk queries.")
        return self.dict_literal(items)

    # -- Order: variables r (order row), rf (its refund rows), lines ---------------------------

    def order(self, sel: SelectionSetNode | None, depth: int) -> str:
        o = OI
        pc, rt = f"r[{o['presentment_currency']}]", f"r[{o['rate']}]"
        amounts = {
            "subtotalPriceSet": f"r[{o['subtotal']}]",
            "currentSubtotalPriceSet": f"(r[{o['subtotal']}] + r[{o['edit_delta']}] - r[{o['refunded_subtotal']}])",
            "totalPriceSet": f"r[{o['total']}]",
            "currentTotalPriceSet": f"(r[{o['total']}] + r[{o['edit_delta']}] - r[{o['refunded']}])",
            "totalRefundedSet": f"r[{o['refunded']}]",
            "totalShippingPriceSet": f"r[{o['shipping']}]",
        }
        items: list[tuple[str, str]] = []
        for f in self.fields(sel):
            n, k = f.name.value, self.key(f)
            if n == "id":
                items.append((k, "f'gid://shopify/Order/{r[0]}'"))
            elif n == "legacyResourceId":
                items.append((k, "str(r[0])"))
            elif n == "name":
                items.append((k, f"f'#{{r[{o['number']}]}}'"))
            elif n in ("createdAt", "processedAt", "updatedAt", "cancelledAt"):
                col = {
                    "createdAt": "created_at",
                    "processedAt": "processed_at",
                    "updatedAt": "updated_at",
                    "cancelledAt": "cancelled_at",
                }[n]
                items.append((k, f"T(r[{o[col]}])"))
            elif n == "test":
                items.append((k, f"r[{o['test']}] == 1"))
            elif n == "displayFinancialStatus":
                items.append((k, f"FS[r[{o['financial_status']}]]"))
            elif n == "cancelReason":
                items.append((k, f"CR(r[{o['cancel_reason']}])"))
            elif n == "currencyCode":
                items.append((k, repr(self.store.currency)))
            elif n == "presentmentCurrencyCode":
                items.append((k, pc))
            elif n == "closed":
                items.append((k, "False"))
            elif n == "confirmed":
                items.append((k, "True"))
            elif n in ("closedAt", "note", "phone"):
                items.append((k, "None"))
            elif n == "email":
                items.append((k, f"r[{o['email']}]" if self.ctx.protected("email") else "None"))
            elif n == "tags":
                items.append((k, f"TAGS[r[{o['tags']}]]"))
            elif n in amounts:
                items.append((k, self.money_bag(f.selection_set, amounts[n], pc, rt)))
            elif n == "customer":
                ci_ = o["customer_id"]
                subfields = [(self.key(x), x.name.value) for x in self.fields(f.selection_set)]
                if subfields and all(name_ == "id" for _, name_ in subfields):
                    # The common case (customer { id }) inlined: no lookup, no call.
                    gid = f"f'gid://shopify/Customer/{{r[{ci_}]}}'"
                    inline = self.dict_literal([(key_, gid) for key_, _ in subfields])
                    items.append((k, f"(None if r[{ci_}] is None else {inline})"))
                else:
                    cust = self.customer_lookup(f.selection_set, depth)
                    items.append((k, f"(None if r[{ci_}] is None else {cust}(r[{ci_}]))"))
            elif n == "refunds":
                self.needs_refunds = True
                fn = self.refund(f.selection_set, depth)
                items.append((k, f"[{fn}(x, r, lines) for x in rf]"))
            elif n == "__typename":
                items.append((k, "'Order'"))
            else:
                raise BulkQueryError(f"Field '{n}' on Order is not supported in devstore bulk queries.")
        name = self.name("order_")
        self.functions.append(f"def {name}(r, rf, lines):\n    return {self.dict_literal(items)}\n")
        return name

    # -- Refund: x (refund row), r (its order row), lines ---------------------------------

    def refund(self, sel: SelectionSetNode | None, depth: int) -> str:
        ri, o = RI, OI
        pc, rt = f"r[{o['presentment_currency']}]", f"r[{o['rate']}]"
        items: list[tuple[str, str]] = []
        for f in self.fields(sel):
            n, k = f.name.value, self.key(f)
            if n == "id":
                items.append((k, "f'gid://shopify/Refund/{x[0]}'"))
            elif n == "legacyResourceId":
                items.append((k, "str(x[0])"))
            elif n in ("createdAt", "updatedAt"):
                items.append((k, f"T(x[{ri['created_at']}])"))
            elif n == "processedAt":
                items.append((k, f"T(x[{ri['processed_at']}])"))
            elif n == "note":
                items.append((k, f"x[{ri['note']}]"))
            elif n == "totalRefundedSet":
                items.append((k, self.money_bag(f.selection_set, f"x[{ri['amount']}]", pc, rt)))
            elif n == "order":
                items.append((k, "{'id': f'gid://shopify/Order/{r[0]}'}"))
            elif n == "__typename":
                items.append((k, "'Refund'"))
            else:
                raise BulkQueryError(f"Field '{n}' on Refund is not supported in devstore bulk queries.")
        name = self.name("refund_")
        self.functions.append(f"def {name}(x, r, lines):\n    return {self.dict_literal(items)}\n")
        return name

    # -- Customer: c (customer row) ----------------------------------------------------------

    def customer(self, sel: SelectionSetNode | None, depth: int) -> tuple[str, bool]:
        """-> (function name taking (c, lines), whether it needs more than the id)."""
        ci = CI
        items: list[tuple[str, str]] = []
        children: list[str] = []
        needs_row = False
        protected = {
            "firstName": ("name", "first_name"),
            "lastName": ("name", "last_name"),
            "email": ("email", "email"),
            "phone": ("phone", "phone"),
        }
        for f in self.fields(sel):
            n, k = f.name.value, self.key(f)
            if n == "id":
                items.append((k, "f'gid://shopify/Customer/{c[0]}'"))
                continue
            if n == "legacyResourceId":
                items.append((k, "str(c[0])"))
                continue
            needs_row = True
            if n in ("createdAt", "updatedAt"):
                items.append((k, f"T(c[{ci['created_at' if n == 'createdAt' else 'updated_at']}])"))
            elif n == "numberOfOrders":
                items.append((k, f"str(c[{ci['number_of_orders']}])"))
            elif n == "amountSpent":
                items.append((k, self.money_v2(f.selection_set, f"c[{ci['amount_spent']}]", None, None)))
            elif n == "tags":
                items.append((k, f"TAGS[c[{ci['tags']}]]"))
            elif n == "statistics":
                stats = []
                for s in self.fields(f.selection_set):
                    stats.append((self.key(s), f"c[{ci['rfm_group']}]" if s.name.value == "rfmGroup" else "None"))
                items.append((k, self.dict_literal(stats)))
            elif n in protected:
                kind, col = protected[n]
                items.append((k, f"c[{ci[col]}]" if self.ctx.protected(kind) else "None"))
            elif n == "displayName":
                items.append((k, "'Customer'"))
            elif n == "state":
                items.append((k, f"('ENABLED' if c[{ci['number_of_orders']}] else 'DISABLED')"))
            elif n == "verifiedEmail":
                items.append((k, "True"))
            elif n == "orders" and depth == 1:
                children.append(self.customer_orders(f))
            elif n == "note":
                items.append((k, "None"))
            elif n == "__typename":
                items.append((k, "'Customer'"))
            else:
                raise BulkQueryError(f"Field '{n}' on Customer is not supported in devstore bulk queries.")
        name = self.name("customer_")
        body = "".join(children) + f"    return {self.dict_literal(items)}\n"
        self.functions.append(f"def {name}(c, lines):\n{body}")
        return name, needs_row

    def customer_orders(self, conn: FieldNode) -> str:
        """Customer.orders, the nested connection devstore serves: each order its own line after
        the customer's, with ``__parentId``; the app's order window (60 days) applies."""
        root_refunds = self.needs_refunds
        self.needs_refunds = False
        order_fn = self.order(self._node_selection(conn.selection_set), 2)
        nested_refunds, self.needs_refunds = self.needs_refunds, root_refunds
        store = self.store
        floor = self.ctx.orders_floor
        window = "" if floor is None else f" AND created_at >= {int(floor)}"
        holder: list[Any] = []

        def reader() -> Any:
            if not holder:
                holder.append(store.new_reader())
            return holder[0]

        def orders_of(cid: int) -> list[tuple[Any, ...]]:
            sql = f"SELECT {','.join(ORDER_COLUMNS)} FROM orders WHERE customer_id = ?{window} ORDER BY id"  # noqa: S608
            return reader().execute(sql, (cid,)).fetchall()  # type: ignore[no-any-return]

        def refunds_of(oid: int) -> list[tuple[Any, ...]]:
            sql = f"SELECT {','.join(REFUND_COLUMNS)} FROM refunds WHERE order_id = ? ORDER BY id"  # noqa: S608
            return reader().execute(sql, (oid,)).fetchall()  # type: ignore[no-any-return]

        orders_name, refunds_name = self.name("orders_of_"), self.name("refunds_of_")
        self.ns[orders_name] = orders_of
        self.ns[refunds_name] = refunds_of if nested_refunds else (lambda oid: ())
        return (
            f"    for o in {orders_name}(c[0]):\n"
            f"        child = {order_fn}(o, {refunds_name}(o[0]), lines)\n"
            f"        child['__parentId'] = f'gid://shopify/Customer/{{c[0]}}'\n"
            f"        lines.append(dumps(child))\n"
        )

    def customer_lookup(self, sel: SelectionSetNode | None, depth: int) -> str:
        """A function of a customer id for Order.customer: id-only selections need no lookup."""
        fn, needs_row = self.customer(sel, depth)
        name = self.name("lookup_")
        if not needs_row:
            self.functions.append(f"def {name}(cid):\n    return {fn}((cid,), None)\n")
            return name
        store = self.store
        cache: dict[int, Any] = {}
        holder: list[Any] = []

        def fetch(cid: int) -> Any:
            row = cache.get(cid)
            if row is None:
                if not holder:
                    holder.append(store.new_reader())
                if len(cache) > 50_000:
                    cache.clear()
                row = (
                    holder[0]
                    .execute(
                        f"SELECT {','.join(CUSTOMER_COLUMNS)} FROM customers WHERE id = ?",  # noqa: S608
                        (cid,),
                    )
                    .fetchone()
                    or ()
                )
                cache[cid] = row
            return row

        fetch_name = self.name("fetch_")
        self.ns[fetch_name] = fetch
        self.functions.append(
            f"def {name}(cid):\n    c = {fetch_name}(cid)\n"
            f"    return {fn}(c, None) if c else {{'id': f'gid://shopify/Customer/{{cid}}'}}\n"
        )
        return name

    def _node_selection(self, conn_sel: SelectionSetNode | None) -> SelectionSetNode | None:
        for f in self.fields(conn_sel):
            if f.name.value == "edges":
                for g in self.fields(f.selection_set):
                    if g.name.value == "node":
                        return g.selection_set
        raise BulkQueryError("Bulk queries must select `edges { node }` on each connection.")

    def build(self, entry: str, root: str) -> tuple[Callable[[Any, Any, list[bytes]], dict[str, Any]], str]:
        # project(row, refund_rows, child_lines) for every root type.
        if root == "orders":
            glue = f"project = {entry}\n"
        else:
            glue = f"def project(r, rf, lines):\n    return {entry}(r, lines)\n"
        source = "\n".join([*self.functions, glue])
        ns = dict(self.ns)
        exec(compile(source, "<devstore-bulk-projection>", "exec"), ns)  # noqa: S102 - code generated from a validated query
        return ns["project"], source


class _Memo(dict[Any, Any]):
    """A dict that computes and remembers misses: a hit is one C-level lookup in generated code."""

    def __init__(self, fn: Callable[[Any], Any], limit: int = 200_000) -> None:
        super().__init__()
        self.fn = fn
        self.limit = limit

    def __missing__(self, key: Any) -> Any:
        value = self.fn(key)
        if len(self) < self.limit:
            self[key] = value
        return value


def _split_tags_or_empty(tags: str | None) -> list[str]:
    # Shared between objects: serialised, never mutated.
    return split_tags(tags) if tags else []


_TAG_CACHE: dict[str, list[str]] = {}


def _tags_cached(tags: str | None) -> list[str]:
    if not tags:
        return []
    hit = _TAG_CACHE.get(tags)
    if hit is None:
        hit = split_tags(tags)
        if len(_TAG_CACHE) < 10_000:
            _TAG_CACHE[tags] = hit
    return list(hit)


def _cancel_reason(reason: str | None) -> str | None:
    return reason.upper() if reason else None


def compile_plan(document: Any, ctx: Ctx) -> Plan:
    """devstore's projection of a query that already passed Shopify's rules (bulk_rules)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise BulkQueryError("devstore runs bulk documents with exactly one query operation.")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    comp = Compiler(ctx, fragments)
    top = comp.fields(operations[0].selection_set)
    if len(top) != 1:
        raise BulkQueryError("devstore runs bulk queries with exactly one top-level field.")
    root = top[0]
    name = root.name.value
    if name not in ("orders", "customers"):
        raise BulkQueryError(f"Bulk queries on '{name}' are not supported by devstore (use orders or customers).")
    scope = "read_orders" if name == "orders" else "read_customers"
    if not ctx.has(scope):
        raise BulkAccessDenied(f"Access denied for {name} field. Required access: `{scope}` access scope.")
    args: dict[str, Any] = {a.name.value: value_from_ast_untyped(a.value, {}) for a in root.arguments or ()}
    node_sel = comp._node_selection(root.selection_set)
    path = [name]
    if name == "orders":
        where, params = order_filters(ctx, args.get("query"), path)
        entry = comp.order(node_sel, 1)
    else:
        where, params = customer_filters(ctx, args.get("query"), path)
        entry, _ = comp.customer(node_sel, 1)
    project, source = comp.build(entry, name)
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
        source=source,
        ctx_spec={"scopes": sorted(ctx.scopes), "app_id": ctx.app_id, "now": ctx.now},
    )


def _op_reporter(op: BulkOp) -> Callable[[int, int], None]:
    def report(roots: int, objects: int) -> None:
        op.root_object_count = roots
        op.object_count = objects

    return report


def _write(
    store: Any,
    path: str,
    plan: Plan,
    limit: int | None,
    cancel: threading.Event | Any,
    report: Callable[[int, int], None],
    extra: tuple[str, str, list[Any]] | None = None,
) -> tuple[int, int, int]:
    """Stream the selection to a JSONL file; returns (bytes, root objects, all objects).

    ``extra``: an id-range condition for orders and the same for refunds (parallel parts).
    """
    db = store.new_reader()
    db_refunds = store.new_reader() if plan.needs_refunds else None
    table = "orders" if plan.root == "orders" else "customers"
    columns = ORDER_COLUMNS if plan.root == "orders" else CUSTOMER_COLUMNS
    where, params = list(plan.where), list(plan.params)
    refund_where, refund_params = "1", []
    if extra is not None:
        where.append(extra[0])
        params.extend(extra[2])
        refund_where, refund_params = extra[1], list(extra[2])
    cond = " AND ".join(where) or "1"
    cur = db.execute(f"SELECT {','.join(columns)} FROM {table} WHERE {cond} ORDER BY {plan.order_by}", params)  # noqa: S608
    project = plan.project
    dumps = orjson.dumps
    written = 0
    roots = 0
    objects = 0
    buf: list[bytes] = []
    deferred: list[list[bytes]] = []
    refund_iter: Iterator[tuple[Any, ...]] | None = None
    pending_refund: tuple[Any, ...] | None = None
    descending = plan.order_by.endswith("DESC")
    if db_refunds is not None:
        refund_iter = iter(
            db_refunds.execute(
                f"SELECT {','.join(REFUND_COLUMNS)} FROM refunds WHERE {refund_where} "  # noqa: S608
                f"ORDER BY order_id {'DESC' if descending else 'ASC'}, id",
                refund_params,
            )
        )
        pending_refund = next(refund_iter, None)
    no_refunds: tuple[Any, ...] = ()
    kids: list[bytes] = []
    group = plan.group_objects
    with open(path, "wb") as fh:
        while True:
            batch = cur.fetchmany(1000)
            if not batch or cancel.is_set():
                break
            if limit is not None and roots + len(batch) > limit:
                batch = batch[: max(limit - roots, 0)]
            for row in batch:
                refunds: Any = no_refunds
                if refund_iter is not None:
                    oid = row[0]
                    # Merge-join: refunds sorted by order id alongside the orders.
                    while pending_refund is not None and (
                        pending_refund[1] < oid if not descending else pending_refund[1] > oid
                    ):
                        pending_refund = next(refund_iter, None)
                    if pending_refund is not None and pending_refund[1] == oid:
                        refunds = []
                        while pending_refund is not None and pending_refund[1] == oid:
                            refunds.append(pending_refund)
                            pending_refund = next(refund_iter, None)
                buf.append(dumps(project(row, refunds, kids)))
                if kids:
                    objects += len(kids)
                    if group:
                        buf.extend(kids)
                    else:
                        deferred.append(list(kids))
                        if len(deferred) > CHILD_DEFER:
                            buf.extend(deferred.pop(0))
                    kids.clear()
            roots += len(batch)
            objects += len(batch)
            if len(buf) > 1_000:  # orjson output holds ~8 KiB buffers: flush often
                chunk = shopify_escape(b"\n".join(buf) + b"\n")
                fh.write(chunk)
                written += len(chunk)
                buf.clear()
            report(roots, objects)
            if limit is not None and roots >= limit:
                break
        for pending in deferred:
            buf.extend(pending)
        if buf:
            chunk = shopify_escape(b"\n".join(buf) + b"\n")
            fh.write(chunk)
            written += len(chunk)
    report(roots, objects)
    db.close()
    if db_refunds is not None:
        db_refunds.close()
    return written, roots, objects


# ---------------------------------------------------------------------------------------------
# Parallel export: big files are written in two halves, one by a spawned process (the GIL
# would serialise threads), and served one after the other.

PARALLEL_MIN_ROWS = 200_000
PARALLEL_WORKERS = min(os.cpu_count() or 1, 2)


class _PartStore:
    """What compile_plan and _write need of a store, rebuilt in the worker process."""

    def __init__(self, db_path: str, currency: str, iana_timezone: str) -> None:
        from zoneinfo import ZoneInfo

        self.db_path = db_path
        self.currency = currency
        self.tz = ZoneInfo(iana_timezone)

    def new_reader(self) -> Any:
        import sqlite3

        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA cache_size=-16384")
        return db


def _export_part(spec: dict[str, Any], shared: Any) -> None:
    """Worker process: compile the same plan and write one id range to its own file."""
    part_store = _PartStore(spec["db_path"], spec["currency"], spec["iana_timezone"])
    ctx = Ctx(
        store=part_store,  # type: ignore[arg-type]  # duck-typed: db path, currency, zone, readers
        scopes=frozenset(spec["scopes"]),
        app_id=spec["app_id"],
        now=spec["now"],
    )
    plan = compile_plan(parse(spec["query"]), ctx)
    plan.group_objects = spec["group_objects"]

    def report(roots: int, objects: int) -> None:
        shared[0], shared[1] = roots, objects

    written, roots, objects = _write(
        part_store, spec["path"], plan, None, threading.Event(), report, extra=tuple(spec["extra"])
    )  # type: ignore[arg-type]
    shared[2] = written
    shared[3] = 1


def _write_parallel(store: ShopStore, op: BulkOp, plan: Plan, estimate: int) -> int:
    import multiprocessing

    table = "orders" if plan.root == "orders" else "customers"
    cond = " AND ".join(plan.where) or "1"
    db = store.new_reader()
    try:
        row = db.execute(
            f"SELECT id FROM {table} WHERE {cond} ORDER BY id LIMIT 1 OFFSET ?",  # noqa: S608
            [*plan.params, estimate // 2],
        ).fetchone()
    finally:
        db.close()
    if row is None or op.path is None:
        written, _, _ = _write(store, op.path or "", plan, None, op.cancel, _op_reporter(op))
        return written
    mid = int(row[0])
    ascending = not plan.order_by.endswith("DESC")
    low = ("id < ?", "order_id < ?", [mid])
    high = ("id >= ?", "order_id >= ?", [mid])
    first_part, second_part = (low, high) if ascending else (high, low)
    second_path = op.path + ".part2"
    ctx_ = plan.ctx_spec
    spec = {
        "db_path": store.db_path,
        "currency": store.currency,
        "iana_timezone": store.iana_timezone,
        "scopes": sorted(ctx_["scopes"]),
        "app_id": ctx_["app_id"],
        "now": ctx_["now"],
        "query": op.query,
        "group_objects": plan.group_objects,
        "path": second_path,
        "extra": list(second_part),
    }
    mp = multiprocessing.get_context("spawn")
    shared = mp.Array("q", 4, lock=False)
    worker = mp.Process(target=_export_part, args=(spec, shared), daemon=True, name=f"bulk-{op.id}-part2")
    worker.start()
    mine = [0, 0]

    def report(roots: int, objects: int) -> None:
        mine[0], mine[1] = roots, objects
        op.root_object_count = roots + int(shared[0])
        op.object_count = objects + int(shared[1])

    written, _, _ = _write(store, op.path, plan, None, op.cancel, report, extra=first_part)
    while worker.is_alive():
        if op.cancel.wait(0.02):
            worker.terminate()
            worker.join()
            return written
        report(mine[0], mine[1])
    worker.join()
    if worker.exitcode != 0 or not shared[3]:
        raise RuntimeError(f"bulk export worker failed with exit code {worker.exitcode}")
    report(mine[0], mine[1])
    op.parts = [op.path, second_path]
    return written + int(shared[2])


def now_s() -> int:
    return int(time.time())
