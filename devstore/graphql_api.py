"""The Admin GraphQL endpoint (2026-10) over a ShopStore: parse, validate, cost, throttle, execute.

Documents are validated and executed on Shopify's real Admin schema
(``devstore.conformance.real_schema``); ``schema.graphql`` is the slice devstore has data for
(``SERVED_FIELDS``). Refusals follow Shopify: graphql-ruby's messages, codes and paths at HTTP
200 with no cost extension; a real-schema field outside the slice resolves to null with
ACCESS_DENIED naming the scope Shopify would ask for (never silently). Every response that runs
carries ``extensions.cost`` (``devstore.throttle``); MAX_COST_EXCEEDED before running, THROTTLED
when the bucket is short; protected customer data is null plus an error. Every list resolver
pushes its filter, sort and page size into SQLite.

Scopes: ``read_orders``/``read_customers`` (or their ``write_`` forms) as on Shopify;
``read_all_orders`` lifts the 60-day window. Level-2 protected customer data is not an OAuth
scope on Shopify (it is granted in the Partner Dashboard); devstore models it as extra
entries in the token's scopes: ``protected_customer_data`` for all fields, or
``read_customer_name``/``read_customer_email``/``read_customer_phone``/``read_customer_address``.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    default_field_resolver,
    execute_sync,
    parse,
)

from devstore import conformance, search
from devstore.store import (
    CUSTOMER_COLUMNS,
    ORDER_COLUMNS,
    REFUND_COLUMNS,
    customer_gid,
    iso_utc,
    money_graphql,
    order_gid,
    presentment_amount,
    refund_gid,
    refund_line_item_gid,
    split_tags,
)
from devstore.throttle import MAX_SINGLE_QUERY_COST, CostCalculator, Throttle, plan_limits

if TYPE_CHECKING:
    from devstore.store import ShopStore

API_VERSION = "2026-10"
MAX_PAGE_SIZE = 250
HISTORY_WINDOW_S = 60 * 86_400
PROTECTED_ALL = "protected_customer_data"
DOCS_PROTECTED = "https://shopify.dev/docs/apps/launch/protected-customer-data"

# The slice of Shopify's schema devstore serves: which (type, field) pairs have data behind
# them. Documents are validated and executed on the real schema (devstore.conformance); a field
# of the real schema outside this slice answers ACCESS_DENIED (see _unserved).
SCHEMA_SDL = (Path(__file__).with_name("schema.graphql")).read_text(encoding="utf-8")
SCHEMA: GraphQLSchema = build_schema(SCHEMA_SDL)
_REAL_ROOT_NAMES = {"Query": "QueryRoot"}
SERVED_FIELDS: frozenset[tuple[str, str]] = frozenset(
    (_REAL_ROOT_NAMES.get(name, name), field_name)
    for name, t in SCHEMA.type_map.items()
    if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)) and not name.startswith("__")
    for field_name in t.fields
)


def _resolve_type(value: Any, info: GraphQLResolveInfo, abstract_type: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("__typename")
    return getattr(value, "TYPE_NAME", None)


SCHEMA.type_map["Node"].resolve_type = _resolve_type  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Request context


@dataclass
class Ctx:
    store: ShopStore
    scopes: frozenset[str]
    app_id: str
    now: int
    search_warnings: list[dict[str, Any]] = field(default_factory=list)

    def has(self, scope: str) -> bool:
        resource = scope.split("_", 1)[1]
        return scope in self.scopes or f"write_{resource}" in self.scopes

    @property
    def orders_floor(self) -> int | None:
        """Without read_all_orders, only orders created in the last 60 days exist (silently)."""
        if "read_all_orders" in self.scopes:
            return None
        return self.now - HISTORY_WINDOW_S

    def protected(self, kind: str) -> bool:
        return PROTECTED_ALL in self.scopes or f"read_customer_{kind}" in self.scopes


def _access_denied(field_name: str, scope: str) -> GraphQLError:
    return GraphQLError(
        f"Access denied for {field_name} field. Required access: `{scope}` access scope.",
        extensions={
            "code": "ACCESS_DENIED",
            "documentation": "https://shopify.dev/api/usage/access-scopes",
            "requiredAccess": f"`{scope}` access scope.",
        },
    )


def _protected_denied(field_name: str, type_name: str) -> GraphQLError:
    return GraphQLError(
        f"This app is not approved to use the {field_name} field on {type_name}. "
        f"See {DOCS_PROTECTED} for more details.",
        extensions={"code": "ACCESS_DENIED", "documentation": DOCS_PROTECTED},
    )


def _user_input_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


# ---------------------------------------------------------------------------------------------
# Money


def money_v2(amount: int, currency: str) -> dict[str, str]:
    return {"amount": money_graphql(amount, currency), "currencyCode": currency}


def money_bag(store: ShopStore, amount: int, presentment_currency: str, rate: float) -> dict[str, Any]:
    pres = presentment_amount(amount, rate, store.currency, presentment_currency)
    return {
        "shopMoney": money_v2(amount, store.currency),
        "presentmentMoney": money_v2(pres, presentment_currency),
    }


# ---------------------------------------------------------------------------------------------
# Object wrappers (graphql-core's default resolver reads attributes, calling methods with args)


def _parse_gid(gid: str, expected: str | None = None) -> tuple[str, int] | None:
    if not isinstance(gid, str) or not gid.startswith("gid://shopify/"):
        return None
    parts = gid[len("gid://shopify/") :].split("/")
    if len(parts) != 2:
        return None
    kind, tail = parts
    tail = tail.split("?", 1)[0]
    if not tail.isdigit() or (expected is not None and kind != expected):
        return None
    return kind, int(tail)


def _invalid_id(gid: str) -> GraphQLError:
    return GraphQLError(f"Invalid global id '{gid}'", extensions={"code": "argumentLiteralsIncompatible"})


class ShopObj:
    TYPE_NAME = "Shop"

    def __init__(self, ctx: Ctx) -> None:
        self._ctx = ctx
        s = ctx.store
        self.id = f"gid://shopify/Shop/{s.shop_id}"
        self.name = s.shop_name
        self.email = f"owner@{s.handle}.example.com"
        self.myshopifyDomain = s.domain
        self.primaryDomain = {"host": s.domain, "id": f"gid://shopify/Domain/{s.shop_id}", "url": f"https://{s.domain}"}
        self.currencyCode = s.currency
        self.ianaTimezone = s.iana_timezone
        now = datetime.fromtimestamp(ctx.now, s.tz)
        offset = now.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        sign = "+" if minutes >= 0 else "-"
        self.timezoneOffset = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
        self.timezoneOffsetMinutes = minutes
        self.timezoneAbbreviation = now.tzname() or "UTC"
        plan = s.plan
        self.plan = {
            "displayName": plan,
            "publicDisplayName": plan,
            "partnerDevelopment": plan.lower() in {"development", "partner development"},
            "shopifyPlus": "plus" in plan.lower(),
        }
        self.createdAt = iso_utc(s.anchor - 3 * 365 * 86_400)
        self.updatedAt = iso_utc(s.anchor)

    def enabledPresentmentCurrencies(self, info: GraphQLResolveInfo) -> list[str]:  # noqa: N802
        rows = self._ctx.store.reader().execute("SELECT DISTINCT presentment_currency FROM orders").fetchall()
        return sorted({r[0] for r in rows} | {self._ctx.store.currency})


class RefundObj:
    TYPE_NAME = "Refund"

    def __init__(self, ctx: Ctx, row: dict[str, Any], order: OrderObj | None = None) -> None:
        self._ctx = ctx
        self._row = row
        self._order = order
        self.id = refund_gid(row["id"])
        self.legacyResourceId = str(row["id"])
        self.createdAt = iso_utc(row["created_at"])
        self.processedAt = iso_utc(row["processed_at"])
        self.updatedAt = iso_utc(row["created_at"])
        self.note = row["note"]

    def _order_obj(self) -> OrderObj | None:
        if self._order is None:
            row = self._ctx.store.order_row(self._row["order_id"])
            if row is not None:
                self._order = OrderObj(self._ctx, row)
        return self._order

    def order(self, info: GraphQLResolveInfo) -> OrderObj | None:
        return self._order_obj()

    def _bag(self, amount: int) -> dict[str, Any]:
        order = self._order_obj()
        pres, rate = (
            (order._row["presentment_currency"], order._row["rate"]) if order else (self._ctx.store.currency, 1.0)
        )
        return money_bag(self._ctx.store, amount, pres, rate)

    def totalRefundedSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["amount"])

    def refundLineItems(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:  # noqa: N802
        # devstore models one refunded line per refund, carrying the refund's line-item subtotal.
        item = {
            "id": refund_line_item_gid(self._row["id"]),
            "quantity": 1,
            "restocked": False,
            "subtotalSet": self._bag(self._row["subtotal"]),
            "totalTaxSet": self._bag(0),
            "priceSet": self._bag(self._row["subtotal"]),
        }
        items = [item] if self._row["subtotal"] > 0 else []
        if args.get("first") == 0 or args.get("last") == 0:
            items = []
        cursor = _cursor_encode(self._row["id"], str(self._row["id"]))
        return {
            "nodes": items,
            "edges": [{"cursor": cursor, "node": i} for i in items],
            "pageInfo": {
                "hasNextPage": False,
                "hasPreviousPage": False,
                "startCursor": cursor if items else None,
                "endCursor": cursor if items else None,
            },
        }


class CustomerObj:
    TYPE_NAME = "Customer"

    def __init__(self, ctx: Ctx, row: dict[str, Any] | None = None, customer_id: int | None = None) -> None:
        self._ctx = ctx
        self._row_cache = row
        cid = row["id"] if row is not None else customer_id
        if cid is None:
            raise RuntimeError("cid vanished under the store lock")
        self._cid = cid
        self.id = customer_gid(cid)
        self.legacyResourceId = str(cid)

    @property
    def _row(self) -> dict[str, Any]:
        if self._row_cache is None:
            row = self._ctx.store.customer_row(self._cid)
            self._row_cache = row or {c: None for c in CUSTOMER_COLUMNS} | {
                "id": self._cid,
                "created_at": 0,
                "updated_at": 0,
                "tags": "",
                "rfm_group": "PROSPECTS",
                "number_of_orders": 0,
                "amount_spent": 0,
            }
        return self._row_cache

    def createdAt(self, info: GraphQLResolveInfo) -> str | None:  # noqa: N802
        return iso_utc(self._row["created_at"])

    def updatedAt(self, info: GraphQLResolveInfo) -> str | None:  # noqa: N802
        return iso_utc(self._row["updated_at"])

    def numberOfOrders(self, info: GraphQLResolveInfo) -> str:  # noqa: N802
        return str(self._row["number_of_orders"])

    def amountSpent(self, info: GraphQLResolveInfo) -> dict[str, str]:  # noqa: N802
        return money_v2(self._row["amount_spent"], self._ctx.store.currency)

    def tags(self, info: GraphQLResolveInfo) -> list[str]:
        return split_tags(self._row["tags"] or "")

    def note(self, info: GraphQLResolveInfo) -> None:
        return None

    def state(self, info: GraphQLResolveInfo) -> str:
        return "ENABLED" if self._row["number_of_orders"] else "DISABLED"

    def verifiedEmail(self, info: GraphQLResolveInfo) -> bool:  # noqa: N802
        return True

    def statistics(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        spent = self._row["amount_spent"] or 0
        tier = "HIGH" if spent > 50_000 else "MEDIUM" if spent > 10_000 else "LOW"
        return {"rfmGroup": self._row["rfm_group"], "predictedSpendTier": tier}

    def _guard(self, kind: str, field_name: str) -> None:
        if not self._ctx.protected(kind):
            raise _protected_denied(field_name, "Customer")

    def displayName(self, info: GraphQLResolveInfo) -> str:  # noqa: N802
        # Non-null on Shopify; without name access it falls back to a non-identifying label.
        if self._ctx.protected("name"):
            return f"{self._row['first_name'] or ''} {self._row['last_name'] or ''}".strip() or "Customer"
        return "Customer"

    def firstName(self, info: GraphQLResolveInfo) -> str | None:  # noqa: N802
        self._guard("name", "firstName")
        return self._row["first_name"]

    def lastName(self, info: GraphQLResolveInfo) -> str | None:  # noqa: N802
        self._guard("name", "lastName")
        return self._row["last_name"]

    def email(self, info: GraphQLResolveInfo) -> str | None:
        self._guard("email", "email")
        return self._row["email"]

    def phone(self, info: GraphQLResolveInfo) -> str | None:
        self._guard("phone", "phone")
        return self._row["phone"]

    def defaultEmailAddress(self, info: GraphQLResolveInfo) -> dict[str, Any] | None:  # noqa: N802
        self._guard("email", "defaultEmailAddress")
        return {"emailAddress": self._row["email"]} if self._row["email"] else None

    def defaultPhoneNumber(self, info: GraphQLResolveInfo) -> dict[str, Any] | None:  # noqa: N802
        self._guard("phone", "defaultPhoneNumber")
        return {"phoneNumber": self._row["phone"]} if self._row["phone"] else None

    def defaultAddress(self, info: GraphQLResolveInfo) -> dict[str, Any] | None:  # noqa: N802
        self._guard("address", "defaultAddress")
        r = self._row
        if not r["city"]:
            return None
        return {
            "id": f"gid://shopify/MailingAddress/{r['id'] + 11}?model_name=CustomerAddress",
            "address1": "1 Example Street",
            "address2": None,
            "city": r["city"],
            "company": None,
            "country": r["country_code"],
            "countryCodeV2": r["country_code"],
            "firstName": r["first_name"],
            "lastName": r["last_name"],
            "name": f"{r['first_name'] or ''} {r['last_name'] or ''}".strip(),
            "phone": r["phone"],
            "province": None,
            "provinceCode": None,
            "zip": "1010",
        }

    def lastOrder(self, info: GraphQLResolveInfo) -> OrderObj | None:  # noqa: N802
        if not self._ctx.has("read_orders"):
            raise _access_denied("lastOrder", "read_orders")
        where, params = ["customer_id = ?"], [self._cid]
        floor = self._ctx.orders_floor
        if floor is not None:
            where.append("created_at >= ?")
            params.append(floor)
        row = (
            self._ctx.store.reader()
            .execute(
                f"SELECT {','.join(ORDER_COLUMNS)} FROM orders WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT 1",
                params,
            )
            .fetchone()
        )
        return None if row is None else OrderObj(self._ctx, dict(zip(ORDER_COLUMNS, row, strict=True)))

    def orders(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        if not self._ctx.has("read_orders"):
            raise _access_denied("orders", "read_orders")
        return orders_connection(self._ctx, args, extra=("customer_id = ?", [self._cid]), path=info.path.as_list())


class OrderObj:
    TYPE_NAME = "Order"

    def __init__(self, ctx: Ctx, row: dict[str, Any]) -> None:
        self._ctx = ctx
        self._row = row
        r = row
        self.id = order_gid(r["id"])
        self.legacyResourceId = str(r["id"])
        self.name = f"#{r['number']}"
        self.createdAt = iso_utc(r["created_at"])
        self.processedAt = iso_utc(r["processed_at"])
        self.updatedAt = iso_utc(r["updated_at"])
        self.cancelledAt = iso_utc(r["cancelled_at"])
        self.cancelReason = (r["cancel_reason"] or "").upper() or None
        self.closed = False
        self.closedAt = None
        self.confirmed = True
        self.test = bool(r["test"])
        self.displayFinancialStatus = r["financial_status"].upper()
        # devstore models no fulfilments (CONTRACT.md).
        self.displayFulfillmentStatus = "UNFULFILLED"
        self.currencyCode = ctx.store.currency
        self.presentmentCurrencyCode = r["presentment_currency"]
        self.note = None

    def _bag(self, amount: int) -> dict[str, Any]:
        return money_bag(self._ctx.store, amount, self._row["presentment_currency"], self._row["rate"])

    def subtotalPriceSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["subtotal"])

    def currentSubtotalPriceSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["subtotal"] + self._row["edit_delta"] - self._row["refunded_subtotal"])

    def totalPriceSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["total"])

    def currentTotalPriceSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["total"] + self._row["edit_delta"] - self._row["refunded"])

    def totalRefundedSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["refunded"])

    def totalShippingPriceSet(self, info: GraphQLResolveInfo) -> dict[str, Any]:  # noqa: N802
        return self._bag(self._row["shipping"])

    def tags(self, info: GraphQLResolveInfo) -> list[str]:
        return split_tags(self._row["tags"] or "")

    def email(self, info: GraphQLResolveInfo) -> str | None:
        if not self._ctx.protected("email"):
            raise _protected_denied("email", "Order")
        return self._row["email"]

    def phone(self, info: GraphQLResolveInfo) -> str | None:
        if not self._ctx.protected("phone"):
            raise _protected_denied("phone", "Order")
        return None

    def customer(self, info: GraphQLResolveInfo) -> CustomerObj | None:
        cid = self._row["customer_id"]
        if cid is None:
            return None
        if not self._ctx.has("read_customers"):
            raise _access_denied("customer", "read_customers")
        return CustomerObj(self._ctx, customer_id=cid)

    def refunds(self, info: GraphQLResolveInfo, first: int | None = None) -> list[RefundObj]:
        rows = self._ctx.store.refund_rows(self._row["id"])
        if first is not None:
            rows = rows[: max(first, 0)]
        return [RefundObj(self._ctx, r, self) for r in rows]


# ---------------------------------------------------------------------------------------------
# Pagination


def _cursor_encode(row_id: int, value: str) -> str:
    raw = orjson.dumps({"last_id": row_id, "last_value": value})
    return base64.b64encode(raw).decode()


def _cursor_decode(cursor: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.b64decode(cursor, validate=True))
        return int(data["last_id"]), str(data["last_value"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}) from exc


TIME_COLUMNS = frozenset({"created_at", "updated_at", "processed_at", "completed_at"})


def _sort_value_text(column: str, value: Any) -> str:
    if column in TIME_COLUMNS:
        return datetime.fromtimestamp(value or 0, UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
    return str(value)


def _sort_value_parse(column: str, text: str) -> Any:
    if column in TIME_COLUMNS:
        try:
            return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp())
        except ValueError as exc:
            raise GraphQLError(
                "Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}
            ) from exc
    try:
        return int(text)
    except ValueError as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}) from exc


@dataclass
class Page:
    rows: list[dict[str, Any]]
    cursors: list[str]
    has_next: bool
    has_previous: bool


def paginate(
    ctx: Ctx,
    *,
    table: str,
    columns: tuple[str, ...],
    where: list[str],
    params: list[Any],
    sort_column: str,
    args: Mapping[str, Any],
) -> Page:
    """Keyset pagination on (sort_column, id) in both directions, one indexed query per page."""
    first, last = args.get("first"), args.get("last")
    after, before = args.get("after"), args.get("before")
    reverse = bool(args.get("reverse"))
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
    if first is not None and last is not None:
        raise GraphQLError("providing both first and last is not supported", extensions={"code": "BAD_REQUEST"})
    size = first if first is not None else last
    if size is None:
        raise RuntimeError("size vanished under the store lock")
    if size < 0 or size > MAX_PAGE_SIZE:
        raise GraphQLError(
            f"The maximum number of items that can be requested per page is {MAX_PAGE_SIZE}.",
            extensions={"code": "BAD_REQUEST"},
        )
    key = f"({sort_column}, id)" if sort_column != "id" else "id"

    def bound(cursor: str) -> list[Any]:
        row_id, text = _cursor_decode(cursor)
        return [_sort_value_parse(sort_column, text), row_id] if sort_column != "id" else [row_id]

    marks = "(?, ?)" if sort_column != "id" else "?"
    ascending = not reverse
    conds = list(where)
    cparams = list(params)
    # after/before are always "later/earlier in the requested order".
    if after is not None:
        conds.append(f"{key} {'>' if ascending else '<'} {marks}")
        cparams.extend(bound(after))
    if before is not None:
        conds.append(f"{key} {'<' if ascending else '>'} {marks}")
        cparams.extend(bound(before))
    forward = first is not None
    direction = "ASC" if ascending == forward else "DESC"
    order = f"{sort_column} {direction}, id {direction}" if sort_column != "id" else f"id {direction}"
    sql = (
        f"SELECT {','.join(columns)} FROM {table} WHERE {' AND '.join(conds) or '1'} "  # noqa: S608
        f"ORDER BY {order} LIMIT ?"
    )
    db = ctx.store.reader()
    fetched = db.execute(sql, [*cparams, size + 1]).fetchall()
    more = len(fetched) > size
    fetched = fetched[:size]
    if not forward:
        fetched.reverse()
    rows = [dict(zip(columns, r, strict=True)) for r in fetched]
    cursors = [_cursor_encode(r["id"], _sort_value_text(sort_column, r[sort_column])) for r in rows]

    def exists_beyond(cursor: str, later: bool) -> bool:
        op = ">" if later == ascending else "<"
        q = f"SELECT 1 FROM {table} WHERE {' AND '.join([*where, f'{key} {op} {marks}']) or '1'} LIMIT 1"  # noqa: S608
        return db.execute(q, [*params, *bound(cursor)]).fetchone() is not None

    if forward:
        has_next = more
        has_previous = after is not None and exists_beyond(after, later=False)
    else:
        has_previous = more
        has_next = before is not None and exists_beyond(before, later=True)
    return Page(rows=rows, cursors=cursors, has_next=has_next, has_previous=has_previous)


def connection(page: Page, nodes: list[Any]) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "edges": [{"cursor": c, "node": n} for c, n in zip(page.cursors, nodes, strict=True)],
        "pageInfo": {
            "hasNextPage": page.has_next,
            "hasPreviousPage": page.has_previous,
            "startCursor": page.cursors[0] if page.cursors else None,
            "endCursor": page.cursors[-1] if page.cursors else None,
        },
    }


ORDER_SORT_COLUMNS = {
    "CREATED_AT": "created_at",
    "UPDATED_AT": "updated_at",
    "PROCESSED_AT": "processed_at",
    "ID": "id",
    "ORDER_NUMBER": "number",
    "TOTAL_PRICE": "total",
}
CUSTOMER_SORT_COLUMNS = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "ID": "id"}


def order_filters(ctx: Ctx, query: str | None, path: list[Any]) -> tuple[list[str], list[Any]]:
    compiled = search.search_compile(query, search.ORDER_FIELDS, tz=ctx.store.tz, scale=_scale(ctx))
    _note_search(ctx, path, query, compiled)
    where = [compiled.sql] if compiled.sql != "1" else []
    params = list(compiled.params)
    floor = ctx.orders_floor
    if floor is not None:
        where.append("created_at >= ?")
        params.append(floor)
    return where, params


def customer_filters(ctx: Ctx, query: str | None, path: list[Any]) -> tuple[list[str], list[Any]]:
    compiled = search.search_compile(query, search.CUSTOMER_FIELDS, tz=ctx.store.tz, scale=_scale(ctx))
    _note_search(ctx, path, query, compiled)
    return ([compiled.sql] if compiled.sql != "1" else []), list(compiled.params)


def _scale(ctx: Ctx) -> int:
    from devstore.store import minor_units

    return minor_units(ctx.store.currency)


def _note_search(ctx: Ctx, path: list[Any], query: str | None, compiled: search.Compiled) -> None:
    if compiled.warnings:
        ctx.search_warnings.append(
            {"path": [p for p in path if isinstance(p, str)], "query": query, "warnings": compiled.warnings}
        )


def orders_connection(
    ctx: Ctx, args: Mapping[str, Any], *, extra: tuple[str, list[Any]] | None = None, path: list[Any]
) -> dict[str, Any]:
    where, params = order_filters(ctx, args.get("query"), path)
    if extra is not None:
        where.append(extra[0])
        params.extend(extra[1])
    sort_column = ORDER_SORT_COLUMNS.get(args.get("sortKey") or "PROCESSED_AT", "id")
    page = paginate(
        ctx, table="orders", columns=ORDER_COLUMNS, where=where, params=params, sort_column=sort_column, args=args
    )
    return connection(page, [OrderObj(ctx, r) for r in page.rows])


def _count(ctx: Ctx, table: str, where: list[str], params: list[Any], limit: int | None) -> dict[str, Any]:
    db = ctx.store.reader()
    cond = " AND ".join(where) or "1"
    if limit is None:
        (n,) = db.execute(f"SELECT count(*) FROM {table} WHERE {cond}", params).fetchone()  # noqa: S608
        return {"count": n, "precision": "EXACT"}
    if limit < 0:
        raise _user_input_error("limit must be a non-negative integer")
    (n,) = db.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {cond} LIMIT ?)",  # noqa: S608
        [*params, limit + 1],
    ).fetchone()
    if n > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": n, "precision": "EXACT"}


# ---------------------------------------------------------------------------------------------
# Root resolvers


class QueryRoot:
    def __init__(self, ctx: Ctx) -> None:
        self._ctx = ctx

    def shop(self, info: GraphQLResolveInfo) -> ShopObj:
        return ShopObj(self._ctx)

    def orders(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        if not self._ctx.has("read_orders"):
            raise _access_denied("orders", "read_orders")
        return orders_connection(self._ctx, args, path=info.path.as_list())

    def ordersCount(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:  # noqa: N802
        if not self._ctx.has("read_orders"):
            raise _access_denied("ordersCount", "read_orders")
        where, params = order_filters(self._ctx, args.get("query"), info.path.as_list())
        return _count(self._ctx, "orders", where, params, args.get("limit"))

    def customers(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        if not self._ctx.has("read_customers"):
            raise _access_denied("customers", "read_customers")
        where, params = customer_filters(self._ctx, args.get("query"), info.path.as_list())
        sort_column = CUSTOMER_SORT_COLUMNS.get(args.get("sortKey") or "ID", "id")
        page = paginate(
            self._ctx,
            table="customers",
            columns=CUSTOMER_COLUMNS,
            where=where,
            params=params,
            sort_column=sort_column,
            args=args,
        )
        return connection(page, [CustomerObj(self._ctx, r) for r in page.rows])

    def customersCount(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:  # noqa: N802
        if not self._ctx.has("read_customers"):
            raise _access_denied("customersCount", "read_customers")
        where, params = customer_filters(self._ctx, args.get("query"), info.path.as_list())
        return _count(self._ctx, "customers", where, params, args.get("limit"))

    def order(self, info: GraphQLResolveInfo, id: str) -> OrderObj | None:  # noqa: A002
        parsed = _parse_gid(id, "Order")
        if parsed is None:
            raise _invalid_id(id)
        return self._order(parsed[1])

    def _order(self, order_id: int) -> OrderObj | None:
        if not self._ctx.has("read_orders"):
            raise _access_denied("order", "read_orders")
        row = self._ctx.store.order_row(order_id)
        floor = self._ctx.orders_floor
        if row is None or (floor is not None and row["created_at"] < floor):
            return None
        return OrderObj(self._ctx, row)

    def customer(self, info: GraphQLResolveInfo, id: str) -> CustomerObj | None:  # noqa: A002
        parsed = _parse_gid(id, "Customer")
        if parsed is None:
            raise _invalid_id(id)
        return self._customer(parsed[1])

    def _customer(self, customer_id: int) -> CustomerObj | None:
        if not self._ctx.has("read_customers"):
            raise _access_denied("customer", "read_customers")
        row = self._ctx.store.customer_row(customer_id)
        return None if row is None else CustomerObj(self._ctx, row)

    def _refund(self, refund_id: int) -> RefundObj | None:
        if not self._ctx.has("read_orders"):
            raise _access_denied("refund", "read_orders")
        r = (
            self._ctx.store.reader()
            .execute(
                f"SELECT {','.join(REFUND_COLUMNS)} FROM refunds WHERE id = ?",  # noqa: S608
                (refund_id,),
            )
            .fetchone()
        )
        if r is None:
            return None
        refund = RefundObj(self._ctx, dict(zip(REFUND_COLUMNS, r, strict=True)))
        order = refund._order_obj()
        floor = self._ctx.orders_floor
        if order is None or (floor is not None and order._row["created_at"] < floor):
            return None
        return refund

    def node(self, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        parsed = _parse_gid(id)
        if parsed is None:
            raise _invalid_id(id)
        kind, num = parsed
        if kind == "Order":
            return self._order(num)
        if kind == "Customer":
            return self._customer(num)
        if kind == "Refund":
            return self._refund(num)
        if kind == "Shop":
            return ShopObj(self._ctx) if num == self._ctx.store.shop_id else None
        if kind == "BulkOperation":
            from devstore import bulk

            return bulk.bulk_operation_get(ctx=self._ctx, op_id=num)
        if kind == "WebhookSubscription":
            return webhook_subscription_get(self._ctx, num)
        return None

    def nodes(self, info: GraphQLResolveInfo, ids: list[str]) -> list[Any]:
        return [self.node(info, i) for i in ids]

    def bulkOperation(self, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: N802, A002
        from devstore import bulk

        parsed = _parse_gid(id, "BulkOperation")
        if parsed is None:
            raise _invalid_id(id)
        return bulk.bulk_operation_get(ctx=self._ctx, op_id=parsed[1])

    def bulkOperations(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:  # noqa: N802
        from devstore import bulk

        return bulk.bulk_operations_connection(ctx=self._ctx, args=args, path=info.path.as_list())

    def currentBulkOperation(self, info: GraphQLResolveInfo, type: str = "QUERY") -> Any:  # noqa: N802, A002
        from devstore import bulk

        return bulk.bulk_operation_current(ctx=self._ctx, op_type=type)

    def webhookSubscription(self, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: N802, A002
        parsed = _parse_gid(id, "WebhookSubscription")
        if parsed is None:
            raise _invalid_id(id)
        return webhook_subscription_get(self._ctx, parsed[1])

    def webhookSubscriptions(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:  # noqa: N802
        subs = list(self._ctx.store.webhook_subscriptions)
        topics = args.get("topics")
        if topics:
            subs = [s for s in subs if s["topic"] in topics]
        subs.sort(key=lambda s: s["numeric_id"], reverse=bool(args.get("reverse")))
        size = args.get("first") or args.get("last") or MAX_PAGE_SIZE
        after = args.get("after")
        if after:
            last_id, _ = _cursor_decode(after)
            subs = [
                s for s in subs if (s["numeric_id"] < last_id if args.get("reverse") else s["numeric_id"] > last_id)
            ]
        page_subs = subs[:size]
        page = Page(
            rows=[],
            cursors=[_cursor_encode(s["numeric_id"], str(s["numeric_id"])) for s in page_subs],
            has_next=len(subs) > size,
            has_previous=after is not None,
        )
        return connection(page, [WebhookSubscriptionObj(s) for s in page_subs])


class WebhookSubscriptionObj:
    TYPE_NAME = "WebhookSubscription"

    def __init__(self, sub: dict[str, Any]) -> None:
        self.id = sub["id"]
        self.topic = sub["topic"]
        self.uri = sub["uri"]
        self.callbackUrl = sub["uri"]
        self.format = sub["format"]
        self.includeFields = sub["include_fields"]
        self.filter = sub["filter"]
        self.createdAt = sub["created_at"]
        self.updatedAt = sub["updated_at"]


def webhook_subscription_get(ctx: Ctx, numeric_id: int) -> WebhookSubscriptionObj | None:
    for sub in ctx.store.webhook_subscriptions:
        if sub["numeric_id"] == numeric_id and sub.get("app_id", ctx.app_id) == ctx.app_id:
            return WebhookSubscriptionObj(sub)
    return None


_webhook_lock = threading.Lock()


def topic_rest(topic: str) -> str:
    """ORDERS_CREATE -> orders/create (BULK_OPERATIONS_FINISH -> bulk_operations/finish)."""
    known = {
        "APP_UNINSTALLED": "app/uninstalled",
        "APP_SCOPES_UPDATE": "app/scopes_update",
        "BULK_OPERATIONS_FINISH": "bulk_operations/finish",
        "SHOP_UPDATE": "shop/update",
    }
    if topic in known:
        return known[topic]
    resource, _, action = topic.lower().partition("_")
    return f"{resource}/{action}"


class MutationRoot:
    def __init__(self, ctx: Ctx) -> None:
        self._ctx = ctx

    def bulkOperationRunQuery(self, info: GraphQLResolveInfo, query: str, groupObjects: bool = False) -> dict[str, Any]:  # noqa: N802, N803
        from devstore import bulk

        return bulk.bulk_operation_run_query(ctx=self._ctx, query=query, group_objects=groupObjects)

    def bulkOperationCancel(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any]:  # noqa: N802, A002
        from devstore import bulk

        parsed = _parse_gid(id, "BulkOperation")
        if parsed is None:
            raise _invalid_id(id)
        return bulk.bulk_operation_cancel(ctx=self._ctx, op_id=parsed[1])

    def bulkOperationRunMutation(  # noqa: N802
        self,
        info: GraphQLResolveInfo,
        mutation: str,
        stagedUploadPath: str,  # noqa: N803
        groupObjects: bool | None = None,  # noqa: N803 - deprecated, no effect (as on Shopify)
        clientIdentifier: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        from devstore import bulk_mutation

        return bulk_mutation.bulk_operation_run_mutation(ctx=self._ctx, mutation=mutation, path=stagedUploadPath)

    def stagedUploadsCreate(self, info: GraphQLResolveInfo, input: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N802, A002
        from devstore import bulk_mutation

        return bulk_mutation.staged_uploads_create(ctx=self._ctx, inputs=input)

    def webhookSubscriptionCreate(  # noqa: N802
        self,
        info: GraphQLResolveInfo,
        topic: str,
        webhookSubscription: dict[str, Any],  # noqa: N803
    ) -> dict[str, Any]:
        uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
        field_name = "uri" if webhookSubscription.get("uri") else "callbackUrl"
        if not uri or not str(uri).startswith(("https://", "http://", "pubsub://", "arn:aws:events:")):
            return {
                "webhookSubscription": None,
                "userErrors": [{"field": ["webhookSubscription", field_name], "message": "Address is invalid"}],
            }
        store = self._ctx.store
        with _webhook_lock:
            for sub in store.webhook_subscriptions:
                if sub["topic"] == topic and sub["uri"] == uri and sub.get("app_id") == self._ctx.app_id:
                    return {
                        "webhookSubscription": None,
                        "userErrors": [
                            {
                                "field": ["webhookSubscription", field_name],
                                "message": "Address for this topic has already been taken",
                            }
                        ],
                    }
            numeric_id = 1_000_000_000 + store.shop_id % 1000 * 100_000 + len(store.webhook_subscriptions) + 1
            while any(s["numeric_id"] == numeric_id for s in store.webhook_subscriptions):
                numeric_id += 1
            now = iso_utc(self._ctx.now)
            sub = {
                "id": f"gid://shopify/WebhookSubscription/{numeric_id}",
                "numeric_id": numeric_id,
                "app_id": self._ctx.app_id,
                "topic": topic,
                "topic_rest": topic_rest(topic),
                "uri": str(uri),
                "format": webhookSubscription.get("format") or "JSON",
                "include_fields": list(webhookSubscription.get("includeFields") or []),
                "filter": webhookSubscription.get("filter"),
                "created_at": now,
                "updated_at": now,
                "api_version": API_VERSION,
            }
            store.webhook_subscriptions.append(sub)
        return {"webhookSubscription": WebhookSubscriptionObj(sub), "userErrors": []}

    def webhookSubscriptionDelete(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any]:  # noqa: N802, A002
        parsed = _parse_gid(id, "WebhookSubscription")
        store = self._ctx.store
        with _webhook_lock:
            for i, sub in enumerate(store.webhook_subscriptions):
                if parsed is not None and sub["numeric_id"] == parsed[1] and sub.get("app_id") == self._ctx.app_id:
                    del store.webhook_subscriptions[i]
                    return {"deletedWebhookSubscriptionId": id, "userErrors": []}
        return {
            "deletedWebhookSubscriptionId": None,
            "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
        }



# Resources whose access scope is not simply the plural of the field's resource.
_SCOPE_RESOURCES = {
    "product": "products", "productVariant": "products", "collection": "products", "catalog": "products",
    "sellingPlanGroup": "products", "inventoryItem": "inventory", "inventoryLevel": "inventory",
    "location": "locations", "draftOrder": "draft_orders", "fulfillment": "fulfillments",
    "fulfillmentOrder": "merchant_managed_fulfillment_orders", "metaobject": "metaobjects",
    "metaobjectDefinition": "metaobjects", "segment": "customers", "discountNode": "discounts",
    "codeDiscountNode": "discounts", "automaticDiscountNode": "discounts", "market": "markets",
    "theme": "themes", "page": "content", "blog": "content", "article": "content", "file": "files",
    "return": "returns", "giftCard": "gift_cards", "order": "orders", "lineItem": "orders",
    "refund": "orders", "transaction": "orders", "customer": "customers", "publication": "publications",
    "channel": "publications", "priceList": "products", "shippingZone": "shipping", "deliveryProfile": "shipping",
    "marketingActivity": "marketing_events", "marketingEvent": "marketing_events", "abandonedCheckout": "orders",
    "menu": "online_store_navigation", "translatableResource": "translations", "urlRedirect": "online_store_navigation",
}


def _resource(field_name: str) -> str:
    """ordersCount -> order, productVariants -> productVariant, productCreate -> product."""
    name = field_name.removesuffix("Count")
    for verb in ("Create", "Update", "Delete", "Set", "Add", "Remove", "Upsert", "Bulk"):
        head, sep, _ = name.partition(verb)
        if sep and head:
            name = head
            break
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("sses") or name.endswith("xes"):
        return name[:-2]
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def required_scope(parent_type: str, field_name: str, *, mutation: bool) -> str | None:
    """The access scope Shopify names when an app may not read (or write) a field, if known.

    A root field's scope follows its resource (products -> read_products); a nested field takes
    its own resource's or its parent's scope when devstore knows it, else none is invented.
    """
    action = "write" if mutation else "read"
    resource = _resource(field_name)
    scope = _SCOPE_RESOURCES.get(resource)
    if parent_type in {"QueryRoot", "Mutation"}:
        scope = scope or _snake(resource) + ("" if resource.endswith("s") else "s")
    else:
        scope = scope or _SCOPE_RESOURCES.get(parent_type[:1].lower() + parent_type[1:])
    return f"{action}_{scope}" if scope else None


def _unserved(info: GraphQLResolveInfo) -> GraphQLError:
    """A real-schema field devstore has no data for: Shopify's answer to an app without the scope.

    Never silent: ACCESS_DENIED at the field (null, propagated as the real schema's
    non-null types propagate it), naming the scope Shopify would ask for where devstore knows
    it; ``devstoreUnserved`` says which field devstore lacks, since an app that holds the scope
    would get data from Shopify.
    """
    parent = info.parent_type.name
    scope = required_scope(parent, info.field_name, mutation=parent == "Mutation")
    if scope is not None:
        error = _access_denied(info.field_name, scope)
    else:
        error = GraphQLError(
            f"Access denied for {info.field_name} field.",
            extensions={"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes"},
        )
    assert error.extensions is not None  # noqa: S101 - both branches set them
    error.extensions["devstoreUnserved"] = f"{parent}.{info.field_name}"
    return error


def _field_resolver(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    if (info.parent_type.name, info.field_name) not in SERVED_FIELDS:
        raise _unserved(info)
    return default_field_resolver(source, info, **args)


def _execution_error(error: GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path is not None:
        out["path"] = list(error.path)
    if error.extensions:
        out["extensions"] = dict(error.extensions)
    elif error.original_error is not None and not isinstance(error.original_error, GraphQLError):
        out["message"] = "Internal error. Looks like something went wrong on our end."
        out["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return out


# ---------------------------------------------------------------------------------------------
# The endpoint


def _throttle(store: ShopStore) -> Throttle:
    state = store._api_state
    with store._lock:
        th = state.get("throttle")
        if th is None:
            # The store's clock, so devstore's virtual time (clock_advance) also refills buckets.
            th = state["throttle"] = Throttle(
                lambda: plan_limits(store.plan, store.faults), clock=lambda: store.clock()
            )
        return th  # type: ignore[no-any-return]


def _respond(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, orjson.dumps(payload)


def graphql_handle(
    *, store: ShopStore, token_scopes: frozenset[str], body: bytes, app_id: str = "app"
) -> tuple[int, dict[str, str], bytes]:
    """One POST to /admin/api/2026-10/graphql.json -> (HTTP status, headers, JSON body)."""
    throttle = _throttle(store)
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return _respond(400, {"errors": "Bad Request: the body is not valid JSON"})
    if isinstance(payload, dict) and not payload.get("query") and isinstance(payload.get("mutation"), str):
        payload["query"] = payload["mutation"]
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str) or not payload["query"].strip():
        return _respond(400, {"errors": {"query": "Required parameter missing or invalid"}})
    query_text: str = payload["query"]
    variables = payload.get("variables") or {}
    if not isinstance(variables, dict):
        return _respond(400, {"errors": {"variables": "must be an object"}})
    operation_name = payload.get("operationName")

    def cost_ext(requested: int, actual: int | None, status: dict[str, float]) -> dict[str, Any]:
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}}

    # Refusals before execution (parse, validation, variables) carry no cost extension, as recorded.
    try:
        document = parse(query_text)
    except GraphQLError as exc:
        return _respond(200, {"errors": [conformance.parse_error(exc, query_text)]})
    real = conformance.real_schema()
    errors = conformance.validation_errors(document, real)
    if errors:
        return _respond(200, {"errors": errors})
    operation = conformance.select_operation(document, operation_name)
    if operation is None:
        return _respond(
            200,
            {
                "errors": [
                    {
                        "message": "An operation name is required"
                        if not operation_name
                        else f'No operation named "{operation_name}"'
                    }
                ]
            },
        )
    bad_variables = conformance.variable_errors(operation, variables, real)
    if bad_variables:
        return _respond(200, {"errors": bad_variables})
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    calc = CostCalculator(real, fragments, variables)
    requested = calc.operation_cost(operation)
    if requested > MAX_SINGLE_QUERY_COST:
        return _respond(
            200,
            {
                "errors": [
                    {
                        "message": (
                            f"Query cost is {requested}, which exceeds the single query max cost limit "
                            f"({MAX_SINGLE_QUERY_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits "
                            "for more information on how the\ncost of a query is calculated.\n\nTo query larger "
                            "amounts of data with fewer limits, bulk operations should be used instead.\nSee "
                            "https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
                        ),
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": MAX_SINGLE_QUERY_COST,
                        },
                    }
                ],
                "extensions": cost_ext(requested, None, throttle.status(app_id)),
            },
        )
    ok, status = throttle.take(app_id, requested)
    if not ok:
        return _respond(
            200,
            {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": cost_ext(requested, None, status),
            },
        )

    ctx = Ctx(store=store, scopes=token_scopes, app_id=app_id, now=int(store.clock()))
    root: Any = MutationRoot(ctx) if operation.operation.value == "mutation" else QueryRoot(ctx)
    result = execute_sync(
        real,
        document,
        root_value=root,
        context_value=ctx,
        variable_values=variables,
        operation_name=operation_name,
        field_resolver=_field_resolver,
        type_resolver=_resolve_type,
    )
    actual = calc.operation_cost(operation, result.data, actual=True) if result.data is not None else requested
    if operation.operation.value == "mutation":
        actual = requested
    status = throttle.give_back(app_id, requested - actual)
    response: dict[str, Any] = {}
    if result.errors:
        response["errors"] = [_execution_error(e) for e in result.errors]
    response["data"] = result.data
    extensions = cost_ext(requested, actual, status)
    if ctx.search_warnings:
        extensions["search"] = ctx.search_warnings
    response["extensions"] = extensions
    return _respond(200, response)


def now_ts() -> int:
    return int(time.time())
