"""Shopify data -> our row tuples, from GraphQL (nodes and bulk JSONL lines) and from REST webhooks.

Both shapes end as the same tuples (the staging tables' column order below, after the shop id),
so a GID and a numeric id land on one row and a webhook and a sync write the same values. Bulk
files skip the tuples: a chunk of lines goes straight to COPY text (`bulk_orders_parse`).
Money is the shop-money amount as a decimal string; times are ISO strings (PostgreSQL
parses them in COPY); nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

ORDER_COLUMNS = (
    "shopify_id", "name", "customer_shopify_id", "processed_at", "created_at", "updated_at", "cancelled_at",
    "test", "financial_status", "currency", "presentment_currency", "subtotal", "current_subtotal", "total",
    "current_total", "total_refunded", "tags",
)
# subtotal_amount is None when the refund's line items were not read with it (bulk files: a
# connection inside the `refunds` list is refused there); sync.services.refund_lines_fill reads them.
REFUND_COLUMNS = (
    "shopify_id", "order_shopify_id", "created_at", "processed_at", "amount", "subtotal_amount", "updated_at",
)
# None in the stats columns means "not in this payload": the upsert keeps what we have.
CUSTOMER_COLUMNS = (
    "shopify_id", "created_at", "updated_at", "rfm_group", "number_of_orders", "amount_spent",
    "amount_spent_currency", "tags",
)

Row = tuple[Any, ...]

_MONEY = "shopMoney { amount currencyCode }"
ORDER_FIELDS = f"""
id name createdAt processedAt updatedAt cancelledAt test displayFinancialStatus
currencyCode presentmentCurrencyCode
subtotalPriceSet {{ {_MONEY} }} currentSubtotalPriceSet {{ {_MONEY} }}
totalPriceSet {{ {_MONEY} }} currentTotalPriceSet {{ {_MONEY} }} totalRefundedSet {{ {_MONEY} }}
tags customer {{ id }}
"""
REFUND_FIELDS = f"id createdAt processedAt updatedAt totalRefundedSet {{ {_MONEY} }}"
CUSTOMER_FIELDS = """
id createdAt updatedAt numberOfOrders amountSpent { amount currencyCode } tags statistics { rfmGroup }
"""
# Syncs of changes read each order's customer whole: its order count and amount spent move with
# the order (refund, cancel) while the customer's own updatedAt does not.
ORDER_FIELDS_WITH_CUSTOMER = ORDER_FIELDS.replace("customer { id }", f"customer {{ {CUSTOMER_FIELDS} }}")


def gid_id(value: Any) -> int | None:
    """'gid://shopify/Order/123' or 123 or '123' -> 123."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    tail = text.rsplit("/", 1)[-1]
    return int(tail.split("?", 1)[0] if "?" in tail else tail)


def gid_kind(value: str) -> str:
    """'gid://shopify/Refund/9' -> 'Refund'."""
    parts = value.split("/")
    return parts[3] if len(parts) > 4 else ""


def _shop_money(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    money = value.get("shopMoney") or value.get("shop_money")
    if isinstance(money, Mapping):
        amount = money.get("amount")
        return None if amount is None else str(amount)
    amount = value.get("amount")
    return None if amount is None else str(amount)


def _money(value: Any) -> str:
    return _shop_money(value) or "0"


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t) for t in value]
    if not value:
        return []
    return [t.strip() for t in str(value).split(",") if t.strip()]


def _upper(value: Any) -> str:
    return str(value or "").upper()


# --- GraphQL ---------------------------------------------------------------------------


def order_from_graphql(node: Mapping[str, Any]) -> Row:
    customer = node.get("customer")
    return (
        gid_id(node["id"]),
        node.get("name") or "",
        gid_id(customer.get("id")) if isinstance(customer, Mapping) else None,
        node.get("processedAt") or node.get("createdAt"),
        node.get("createdAt"),
        node.get("updatedAt"),
        node.get("cancelledAt"),
        bool(node.get("test")),
        _upper(node.get("displayFinancialStatus")),
        node.get("currencyCode") or "",
        node.get("presentmentCurrencyCode") or "",
        _money(node.get("subtotalPriceSet")),
        _money(node.get("currentSubtotalPriceSet")),
        _money(node.get("totalPriceSet")),
        _money(node.get("currentTotalPriceSet")),
        _money(node.get("totalRefundedSet")),
        _tags(node.get("tags")),
    )


def refund_line_subtotal(item: Mapping[str, Any]) -> Decimal:
    return Decimal(_shop_money(item.get("subtotalSet")) or "0")


def refund_from_graphql(node: Mapping[str, Any], order_id: int) -> Row:
    """A refund; its subtotal is summed here when its line items came with it (paged queries)."""
    items = node.get("refundLineItems")
    subtotal: str | None = None
    if isinstance(items, Mapping):
        nodes = items.get("nodes")
        if nodes is None:
            nodes = [e.get("node") or {} for e in items.get("edges") or []]
        subtotal = str(sum((refund_line_subtotal(i) for i in nodes), Decimal(0)))
    created = node.get("createdAt") or node.get("updatedAt")
    return (
        gid_id(node["id"]),
        order_id,
        created,
        node.get("processedAt") or created,
        _money(node.get("totalRefundedSet")),
        subtotal,
        node.get("updatedAt") or created,
    )


def customer_from_graphql(node: Mapping[str, Any]) -> Row:
    spent = node.get("amountSpent") or {}
    stats = node.get("statistics") or {}
    return (
        gid_id(node["id"]),
        node.get("createdAt"),
        node.get("updatedAt"),
        str(stats.get("rfmGroup") or "") if isinstance(stats, Mapping) else "",
        int(node.get("numberOfOrders") or 0),
        str(spent.get("amount") or "0"),
        str(spent.get("currencyCode") or ""),
        _tags(node.get("tags")),
    )


# --- REST (webhooks) --------------------------------------------------------------------


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _rest_money(payload: Mapping[str, Any], name: str) -> str:
    """Shop money of `name`: the `<name>_set.shop_money` amount, else the plain field."""
    amount = _shop_money(payload.get(f"{name}_set"))
    if amount is not None:
        return amount
    value = payload.get(name)
    return "0" if value is None else str(value)


def refund_amounts_rest(refund: Mapping[str, Any], shop_currency: str) -> tuple[Decimal, Decimal]:
    """(total refunded, line-item subtotal) of a REST refund, in shop money."""
    subtotal = sum((_dec(_shop_money(i.get("subtotal_set")) or i.get("subtotal") or 0)
                    for i in refund.get("refund_line_items") or []), Decimal(0))
    transactions = [t for t in refund.get("transactions") or []
                    if t.get("kind") == "refund" and t.get("status") in (None, "success")]
    if transactions and all(t.get("currency") in (None, "", shop_currency) for t in transactions):
        total = sum((_dec(t.get("amount")) for t in transactions), Decimal(0))
    else:
        # Transactions are in the presentment currency: add up the shop-money parts instead.
        total = subtotal
        total += sum((_dec(_shop_money(i.get("total_tax_set")) or i.get("total_tax") or 0)
                      for i in refund.get("refund_line_items") or []), Decimal(0))
        total += sum((_dec(_shop_money(s.get("subtotal_amount_set")) or 0)
                      for s in refund.get("refund_shipping_lines") or []), Decimal(0))
        total += _dec(_shop_money(refund.get("total_duties_set")) or 0)
    return total, subtotal


def refund_from_rest(payload: Mapping[str, Any], shop_currency: str) -> Row:
    total, subtotal = refund_amounts_rest(payload, shop_currency)
    created = payload.get("created_at")
    return (
        gid_id(payload["id"]),
        gid_id(payload.get("order_id")),
        created,
        payload.get("processed_at") or created,
        str(total),
        str(subtotal),
        payload.get("updated_at") or created,
    )


def order_from_rest(payload: Mapping[str, Any]) -> Row:
    currency = str(payload.get("currency") or "")
    refunded = sum((refund_amounts_rest(r, currency)[0] for r in payload.get("refunds") or []), Decimal(0))
    customer = payload.get("customer")
    return (
        gid_id(payload["id"]),
        payload.get("name") or "",
        gid_id(customer.get("id")) if isinstance(customer, Mapping) else None,
        payload.get("processed_at") or payload.get("created_at"),
        payload.get("created_at"),
        payload.get("updated_at"),
        payload.get("cancelled_at"),
        bool(payload.get("test")),
        _upper(payload.get("financial_status")),
        currency,
        str(payload.get("presentment_currency") or ""),
        _rest_money(payload, "subtotal_price"),
        _rest_money(payload, "current_subtotal_price"),
        _rest_money(payload, "total_price"),
        _rest_money(payload, "current_total_price"),
        str(refunded),
        _tags(payload.get("tags")),
    )


def customer_from_rest(payload: Mapping[str, Any]) -> Row:
    # REST customer payloads carry no order count, amount spent or RFM group, and since API
    # 2025-01 no tags: None keeps ours.
    return (
        gid_id(payload["id"]),
        payload.get("created_at"),
        payload.get("updated_at"),
        None,
        None,
        None,
        None,
        _tags(payload["tags"]) if "tags" in payload else None,
    )


# --- COPY text format ---------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _array_literal(values: Sequence[str]) -> str:
    inner = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + inner + "}"


def copy_line(row: Row) -> str:
    """One row in PostgreSQL's COPY text format."""
    out = []
    for value in row:
        if value is None:
            out.append("\\N")
        elif value is True:
            out.append("t")
        elif value is False:
            out.append("f")
        elif isinstance(value, int):
            out.append(str(value))
        elif isinstance(value, list):
            out.append(_array_literal(value).translate(_ESCAPES))
        else:
            out.append(str(value).translate(_ESCAPES))
    return "\t".join(out) + "\n"


# --- the bulk fast path -----------------------------------------------------------------------
# A bulk result chunk (thousands of JSONL lines) is decoded in one call into typed structs that
# hold only the fields we read (no dict per line, unknown keys skipped in C), then formatted as
# COPY text lines that start with the shop id, ready for the tables themselves or for staging.
# The values are those of copy_line(order_from_graphql(node)) and friends (tests/sync/test_normalize.py).
# gc=False: the structs hold no reference cycles, so the collector need not track a chunk's
# hundred thousand of them (a seventh of the parse time).


class _Money(msgspec.Struct, gc=False):
    amount: str | None = None


class _MoneySet(msgspec.Struct, rename="camel", gc=False):
    shop_money: _Money | None = None


class _MoneyV2(msgspec.Struct, rename="camel", gc=False):
    amount: str | None = None
    currency_code: str | None = None


class _Statistics(msgspec.Struct, rename="camel", gc=False):
    rfm_group: str | None = None


class BulkCustomer(msgspec.Struct, rename="camel", gc=False):
    """A customer line, or an order's `customer` (only `id` unless the query reads it whole)."""

    id: str
    created_at: str | None = None
    updated_at: str | None = None
    number_of_orders: str | int | None = None
    amount_spent: _MoneyV2 | None = None
    tags: list[str] | None = None
    statistics: _Statistics | None = None


class BulkRefund(msgspec.Struct, rename="camel", gc=False):
    id: str
    created_at: str | None = None
    processed_at: str | None = None
    updated_at: str | None = None
    total_refunded_set: _MoneySet | None = None


class BulkOrderLine(msgspec.Struct, rename="camel", gc=False):
    """A line of the orders file: an order, with its refunds inline (`Order.refunds` is a list).
    Lines with a `__parentId` belong to a connection the app does not select; they are skipped."""

    id: str | None = None
    name: str | None = None
    created_at: str | None = None
    processed_at: str | None = None
    updated_at: str | None = None
    cancelled_at: str | None = None
    test: bool | None = None
    display_financial_status: str | None = None
    currency_code: str | None = None
    presentment_currency_code: str | None = None
    subtotal_price_set: _MoneySet | None = None
    current_subtotal_price_set: _MoneySet | None = None
    total_price_set: _MoneySet | None = None
    current_total_price_set: _MoneySet | None = None
    total_refunded_set: _MoneySet | None = None
    tags: list[str] | None = None
    customer: BulkCustomer | None = None
    refunds: list[BulkRefund] | None = None
    parent_id: str | None = msgspec.field(name="__parentId", default=None)


_ORDER_LINES = msgspec.json.Decoder(BulkOrderLine)
_CUSTOMER_LINES = msgspec.json.Decoder(BulkCustomer)


@dataclass
class BulkChunk:
    """One chunk of a bulk file as COPY text lines (shop id first), with the ids they hold."""

    orders: list[str] = field(default_factory=list)
    order_ids: list[int] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)  # BULK_REFUND_COLUMNS: the subtotal is read later
    refund_ids: list[int] = field(default_factory=list)
    refund_order_ids: list[int] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    customer_ids: list[int] = field(default_factory=list)


# A bulk refund's subtotal is the sum of its line items, which a bulk query cannot select.
BULK_REFUND_COLUMNS = tuple(c for c in REFUND_COLUMNS if c != "subtotal_amount")


def _num(gid: str) -> int:
    """The numeric tail of a GID, without the general parser's work in the common case."""
    try:
        return int(gid[gid.rfind("/") + 1:])
    except ValueError:
        return gid_id(gid)  # type: ignore[return-value]


def _amount(money: _MoneySet | None) -> str:
    if money is not None and money.shop_money is not None and money.shop_money.amount is not None:
        return money.shop_money.amount
    return "0"


def _tags_literal(tags: list[str] | None) -> str:
    # Elements are already safe here (see _escape_in_place): no quote, backslash or COPY special.
    return '{"' + '","'.join(tags) + '"}' if tags else "{}"


def _esc_text(text: str | None) -> str | None:
    return None if text is None else text.translate(_ESCAPES)


def _esc_tags(tags: list[str] | None) -> list[str] | None:
    if not tags:
        return tags
    return [t.replace("\\", "\\\\").replace('"', '\\"').translate(_ESCAPES) for t in tags]


def _escape_customer(c: BulkCustomer) -> None:
    c.tags = _esc_tags(c.tags)
    if c.statistics is not None:
        c.statistics.rfm_group = _esc_text(c.statistics.rfm_group)
    if c.amount_spent is not None:
        c.amount_spent.currency_code = _esc_text(c.amount_spent.currency_code)


def _escape_in_place(lines: list[Any]) -> None:
    """Escape the free-text fields of decoded lines for COPY text (and tags for an array literal).

    Only chunks holding a backslash need it: JSON cannot carry a quote, tab, newline or backslash
    inside a string without one, so the formatters below insert the values as they are.
    """
    for o in lines:
        if isinstance(o, BulkCustomer):
            _escape_customer(o)
            continue
        o.name = _esc_text(o.name)
        o.display_financial_status = _esc_text(o.display_financial_status)
        o.currency_code = _esc_text(o.currency_code)
        o.presentment_currency_code = _esc_text(o.presentment_currency_code)
        o.tags = _esc_tags(o.tags)
        if o.customer is not None:
            _escape_customer(o.customer)


def _customer_line(shop: str, c: BulkCustomer) -> str:
    spent = c.amount_spent
    stats = c.statistics
    return (
        f"{shop}\t{_num(c.id)}\t{c.created_at or NULL}\t{c.updated_at or NULL}\t"
        f"{(stats.rfm_group or '') if stats is not None else ''}\t{int(c.number_of_orders or 0)}\t"
        f"{(spent.amount or '0') if spent is not None else '0'}\t"
        f"{(spent.currency_code or '') if spent is not None else ''}\t{_tags_literal(c.tags)}\n"
    )


NULL = "\\N"


def bulk_orders_parse(data: bytes, *, shop_id: int) -> BulkChunk:
    """Lines of an orders file -> COPY lines for orders, their refunds (and customers, when the
    query read them whole)."""
    out = BulkChunk()
    shop = str(shop_id)
    orders, refunds, customers = out.orders, out.refunds, out.customers
    ids, customer_ids, refund_ids, refund_orders = (out.order_ids, out.customer_ids, out.refund_ids,
                                                    out.refund_order_ids)
    decoded = _ORDER_LINES.decode_lines(data)
    if _needs_escaping(data):
        _escape_in_place(decoded)
    amount = _amount
    for o in decoded:
        if o.parent_id is not None or o.id is None:
            continue
        oid = _num(o.id)
        ids.append(oid)
        customer = o.customer
        if customer is None:
            cid = NULL
        else:
            cid = str(_num(customer.id))
            if customer.updated_at is not None:
                customer_ids.append(int(cid))
                customers.append(_customer_line(shop, customer))
        created = o.created_at
        orders.append(
            f"{shop}\t{oid}\t{o.name or ''}\t{cid}\t{o.processed_at or created or NULL}\t{created or NULL}\t"
            f"{o.updated_at or NULL}\t{o.cancelled_at or NULL}\t{'t' if o.test else 'f'}\t"
            f"{(o.display_financial_status or '').upper()}\t{o.currency_code or ''}\t"
            f"{o.presentment_currency_code or ''}\t{amount(o.subtotal_price_set)}\t"
            f"{amount(o.current_subtotal_price_set)}\t{amount(o.total_price_set)}\t"
            f"{amount(o.current_total_price_set)}\t{amount(o.total_refunded_set)}\t{_tags_literal(o.tags)}\n"
        )
        if o.refunds:
            for r in o.refunds:
                refund_ids.append(_num(r.id))
                refund_orders.append(oid)
                refunds.append(_refund_line(shop, refund_ids[-1], oid, r))
    return out


def _refund_line(shop: str, refund_id: int, order_id: int, r: BulkRefund) -> str:
    created = r.created_at or r.updated_at or NULL
    return (f"{shop}\t{refund_id}\t{order_id}\t{created}\t{r.processed_at or created}\t"
            f"{_amount(r.total_refunded_set)}\t{r.updated_at or created}\n")


# A backslash that begins none of the escapes Shopify's result files use for characters that need
# none in COPY text: every "/" (each GID reads "gid:\/\/shopify\/Order\/1"), "&", "<", ">", and the
# two JSON-unsafe line separators. An escaped backslash ("\\") matches at its first backslash.
_ESCAPE_THAT_MATTERS = re.compile(rb"\\(?!/|u00(?:26|3[cCeE])|u202[89])")


def _needs_escaping(data: bytes) -> bool:
    """Whether a chunk's strings may hold a character COPY text must escape. JSON carries a quote,
    tab, newline or backslash inside a string only as a backslash escape, so a chunk whose every
    backslash begins one of Shopify's harmless escapes goes through the plain formatters. One regex
    pass over the bytes (~1 ms a MB): counting or replacing each escape took four times as long."""
    return _ESCAPE_THAT_MATTERS.search(data) is not None


def bulk_customers_parse(data: bytes, *, shop_id: int) -> BulkChunk:
    """Lines of a customers file -> COPY lines for customers."""
    out = BulkChunk()
    shop = str(shop_id)
    decoded = _CUSTOMER_LINES.decode_lines(data)
    if _needs_escaping(data):
        _escape_in_place(decoded)
    out.customers = [_customer_line(shop, c) for c in decoded]
    out.customer_ids = [_num(c.id) for c in decoded]
    return out
