"""Shopify data -> our row tuples, from GraphQL (nodes and bulk JSONL lines) and from REST webhooks.

Both shapes end as the same tuples (the staging tables' column order below, after the shop id),
so a GID and a numeric id land on one row and a webhook and a sync write the same values. Bulk
files skip the tuples: a chunk of lines goes straight to COPY text (`bulk_orders_parse`).
Money is the shop-money amount as a decimal string; times are ISO strings (PostgreSQL
parses them in COPY); nothing here touches the database. Every money, count, id and time is
checked here against what Shopify can send: a record holding anything else is refused with the
reason (`Refused`, or left out of a bulk chunk and counted in its `rejected`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
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

# --- what Shopify can send ---------------------------------------------------------------------
# Every money, count, id and time read from Shopify is checked here, once, as it enters: a value
# Shopify cannot send ("NaN", "1e400", a negative total, year 20000) is refused with its record, so
# the tables and the analytics over them never hold one. The same patterns check the dict paths
# (webhooks, GraphQL pages) value by value and the bulk path's COPY lines a chunk at a time.
# Money fits numeric(20, 4): 16 integer digits; more decimals are rounded by PostgreSQL, as before.
# ASCII only: `\d` would also take other scripts' digits, which int() reads and PostgreSQL refuses.
MONEY = r"\d{1,16}(?:\.\d{1,12})?"
SIGNED_MONEY = "-?" + MONEY
# Counts and ids fit bigint: 18 digits are always below 2**63.
COUNT = r"\d{1,18}"
ID = r"[1-9]\d{0,17}"
# ISO-8601 as Shopify writes it, years 1990..2100. The day of the month is checked against its month
# on the dict paths (fromisoformat); on the bulk path only a Feb 29-31 or Apr 31 would reach COPY,
# which refuses it (the chunk fails and is retried, as any COPY error).
# A date that exists, in 1990..2100: each month's length, and 29 February in leap years only (2000
# is one, 2100 is not), so a bulk line's time never reaches COPY to fail its whole chunk there.
_DATE = (r"(?:(?:199\d|20\d\d|2100)-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])"
         r"|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
         r"|(?:199[26]|20(?:[02468][048]|[13579][26]))-02-29)")
TIME = (_DATE + r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)")
BIGINT_MAX = 2**63 - 1
_MONEY_RE, _SIGNED_MONEY_RE, _COUNT_RE, _TIME_RE = (re.compile(p + r"\Z", re.ASCII)
                                                    for p in (MONEY, SIGNED_MONEY, COUNT, TIME))


class Refused(ValueError):
    """A record holding a value Shopify cannot send; the message says which field and why."""


@dataclass
class Rejected:
    """Records kept out of the tables during one sync run: a count and the first few, with reasons."""

    count: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    def add(self, record: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < REJECTED_EXAMPLES:
            self.examples.append({"record": record[:200], "reason": reason[:500]})

    def merge_into(self, state: dict[str, Any]) -> None:
        """Add these to `run.state["rejected"]` (the Data page and the run's admin show it)."""
        if not self.count:
            return
        held = state.setdefault("rejected", {"count": 0, "examples": []})
        held["count"] = int(held["count"]) + self.count
        held["examples"] = (list(held["examples"]) + self.examples)[:REJECTED_EXAMPLES]


REJECTED_EXAMPLES = 5


def money_checked(value: Any, name: str, *, signed: bool = False) -> str:
    """A Shopify amount as a decimal string, or Refused. A JSON integer is taken as its text."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not (_SIGNED_MONEY_RE if signed else _MONEY_RE).match(value):
        raise Refused(f"{name}: {_shown(value)} is not {'an' if signed else 'a non-negative'} amount "
                      "Shopify can send")
    return value


def count_checked(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= BIGINT_MAX:
        return value
    if isinstance(value, str) and _COUNT_RE.match(value):
        return int(value)
    raise Refused(f"{name}: {_shown(value)} is not a count Shopify can send")


def id_checked(value: Any, name: str) -> int:
    """A GID or a numeric id -> a positive bigint, or Refused."""
    try:
        number = gid_id(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not 0 < number <= BIGINT_MAX:
        raise Refused(f"{name}: {_shown(value)} is not a Shopify id")
    return number


def time_checked(value: Any, name: str) -> str:
    """An ISO-8601 time in 1990..2100 (kept as text: PostgreSQL parses it), or Refused."""
    if isinstance(value, str) and _TIME_RE.match(value):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return value
        except ValueError:
            pass
    raise Refused(f"{name}: {_shown(value)} is not a time Shopify can send")


def _time_or_none(value: Any, name: str) -> str | None:
    return None if value is None or value == "" else time_checked(value, name)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def refund_cap(total: Any, current_total: Any, total_refunded: Any) -> Decimal:
    """The most one refund of an order can be: what was paid. `total` may be the order's total before
    an edit that added to it, and `current_total` is after its refunds, so the larger of `total` and
    `current_total + total_refunded` (an edited-up order fully refunded refunds more than `total`)."""
    return max(Decimal(str(total or 0)), Decimal(str(current_total or 0)) + Decimal(str(total_refunded or 0)))


def refund_within_order(refund: Row, cap: Decimal | None) -> None:
    """A refund cannot exceed what its order was paid (`refund_cap`; None: the order is not known)."""
    if cap is not None and Decimal(refund[4]) > cap:
        raise Refused(f"refund {refund[0]}: amount {refund[4]} exceeds what its order was paid "
                      f"({cap.normalize():f})")

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


def _money(value: Any, name: str, *, signed: bool = False) -> str:
    amount = _shop_money(value)
    return "0" if amount is None else money_checked(amount, name, signed=signed)


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
    """An order node -> its row; Refused if a value is not one Shopify can send."""
    customer = node.get("customer")
    created = _time_or_none(node.get("createdAt"), "createdAt")
    return (
        id_checked(node.get("id"), "id"),
        node.get("name") or "",
        id_checked(customer.get("id"), "customer.id") if isinstance(customer, Mapping) else None,
        _time_or_none(node.get("processedAt"), "processedAt") or created,
        created,
        _time_or_none(node.get("updatedAt"), "updatedAt"),
        _time_or_none(node.get("cancelledAt"), "cancelledAt"),
        bool(node.get("test")),
        _upper(node.get("displayFinancialStatus")),
        node.get("currencyCode") or "",
        node.get("presentmentCurrencyCode") or "",
        _money(node.get("subtotalPriceSet"), "subtotalPriceSet"),
        _money(node.get("currentSubtotalPriceSet"), "currentSubtotalPriceSet"),
        _money(node.get("totalPriceSet"), "totalPriceSet"),
        _money(node.get("currentTotalPriceSet"), "currentTotalPriceSet"),
        _money(node.get("totalRefundedSet"), "totalRefundedSet"),
        _tags(node.get("tags")),
    )


def refund_line_subtotal(item: Mapping[str, Any]) -> Decimal:
    """A refund line item's subtotal; Refused if it is not a non-negative amount."""
    return Decimal(_money(item.get("subtotalSet"), "refundLineItems.subtotalSet"))


def refund_from_graphql(node: Mapping[str, Any], order_id: int) -> Row:
    """A refund; its subtotal is summed here when its line items came with it (paged queries).
    Refused if a value is not one Shopify can send."""
    items = node.get("refundLineItems")
    subtotal: str | None = None
    if isinstance(items, Mapping):
        nodes = items.get("nodes")
        if nodes is None:
            nodes = [e.get("node") or {} for e in items.get("edges") or []]
        subtotal = money_checked(str(sum((refund_line_subtotal(i) for i in nodes), Decimal(0))), "refund subtotal")
    updated = _time_or_none(node.get("updatedAt"), "updatedAt")
    created = _time_or_none(node.get("createdAt"), "createdAt") or updated
    return (
        id_checked(node.get("id"), "id"),
        order_id,
        created,
        _time_or_none(node.get("processedAt"), "processedAt") or created,
        _money(node.get("totalRefundedSet"), "totalRefundedSet"),
        subtotal,
        updated or created,
    )


def customer_from_graphql(node: Mapping[str, Any]) -> Row:
    """A customer node -> its row; Refused if a value is not one Shopify can send."""
    spent = node.get("amountSpent") or {}
    stats = node.get("statistics") or {}
    return (
        id_checked(node.get("id"), "id"),
        _time_or_none(node.get("createdAt"), "createdAt"),
        _time_or_none(node.get("updatedAt"), "updatedAt"),
        str(stats.get("rfmGroup") or "") if isinstance(stats, Mapping) else "",
        count_checked(node.get("numberOfOrders") or 0, "numberOfOrders"),
        _money(spent, "amountSpent", signed=True),
        str(spent.get("currencyCode") or ""),
        _tags(node.get("tags")),
    )


# --- REST (webhooks) --------------------------------------------------------------------


def _dec(value: Any, name: str) -> Decimal:
    return Decimal(0) if value is None or value == "" else Decimal(money_checked(value, name))


def _rest_money(payload: Mapping[str, Any], name: str) -> str:
    """Shop money of `name`: the `<name>_set.shop_money` amount, else the plain field; Refused if
    it is not a non-negative amount."""
    amount = _shop_money(payload.get(f"{name}_set"))
    if amount is None:
        amount = payload.get(name)
    return "0" if amount is None else money_checked(amount, name)


def refund_amounts_rest(refund: Mapping[str, Any], shop_currency: str) -> tuple[Decimal, Decimal]:
    """(total refunded, line-item subtotal) of a REST refund, in shop money."""
    subtotal = sum((_dec(_shop_money(i.get("subtotal_set")) or i.get("subtotal"), "refund_line_items.subtotal")
                    for i in refund.get("refund_line_items") or []), Decimal(0))
    transactions = [t for t in refund.get("transactions") or []
                    if t.get("kind") == "refund" and t.get("status") in (None, "success")]
    if transactions and all(t.get("currency") in (None, "", shop_currency) for t in transactions):
        total = sum((_dec(t.get("amount"), "transactions.amount") for t in transactions), Decimal(0))
    else:
        # Transactions are in the presentment currency: add up the shop-money parts instead.
        total = subtotal
        total += sum((_dec(_shop_money(i.get("total_tax_set")) or i.get("total_tax"), "refund_line_items.total_tax")
                      for i in refund.get("refund_line_items") or []), Decimal(0))
        total += sum((_dec(_shop_money(s.get("subtotal_amount_set")), "refund_shipping_lines.subtotal_amount")
                      for s in refund.get("refund_shipping_lines") or []), Decimal(0))
        total += _dec(_shop_money(refund.get("total_duties_set")), "total_duties")
    return total, subtotal


def refund_from_rest(payload: Mapping[str, Any], shop_currency: str) -> Row:
    """A REST refund -> its row; Refused if a value is not one Shopify can send."""
    total, subtotal = refund_amounts_rest(payload, shop_currency)
    created = _time_or_none(payload.get("created_at"), "created_at")
    return (
        id_checked(payload.get("id"), "id"),
        id_checked(payload.get("order_id"), "order_id"),
        created,
        _time_or_none(payload.get("processed_at"), "processed_at") or created,
        money_checked(str(total), "refund total"),
        money_checked(str(subtotal), "refund subtotal"),
        _time_or_none(payload.get("updated_at"), "updated_at") or created,
    )


def order_from_rest(payload: Mapping[str, Any]) -> Row:
    currency = str(payload.get("currency") or "")
    refunded = sum((refund_amounts_rest(r, currency)[0] for r in payload.get("refunds") or []), Decimal(0))
    customer = payload.get("customer")
    created = _time_or_none(payload.get("created_at"), "created_at")
    return (
        id_checked(payload.get("id"), "id"),
        payload.get("name") or "",
        id_checked(customer.get("id"), "customer.id") if isinstance(customer, Mapping) else None,
        _time_or_none(payload.get("processed_at"), "processed_at") or created,
        created,
        _time_or_none(payload.get("updated_at"), "updated_at"),
        _time_or_none(payload.get("cancelled_at"), "cancelled_at"),
        bool(payload.get("test")),
        _upper(payload.get("financial_status")),
        currency,
        str(payload.get("presentment_currency") or ""),
        _rest_money(payload, "subtotal_price"),
        _rest_money(payload, "current_subtotal_price"),
        _rest_money(payload, "total_price"),
        _rest_money(payload, "current_total_price"),
        money_checked(str(refunded), "total refunded"),
        _tags(payload.get("tags")),
    )


def customer_from_rest(payload: Mapping[str, Any]) -> Row:
    # REST customer payloads carry no order count, amount spent or RFM group, and since API
    # 2025-01 no tags: None keeps ours.
    return (
        id_checked(payload.get("id"), "id"),
        _time_or_none(payload.get("created_at"), "created_at"),
        _time_or_none(payload.get("updated_at"), "updated_at"),
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
    rejected: Rejected = field(default_factory=Rejected)  # lines kept out, with the reason


# A bulk refund's subtotal is the sum of its line items, which a bulk query cannot select.
BULK_REFUND_COLUMNS = tuple(c for c in REFUND_COLUMNS if c != "subtotal_amount")


def _num(gid: str) -> int:
    """The numeric tail of a GID, without the general parser's work in the common case; 0 (which
    the shape check refuses) when it has none."""
    try:
        return int(gid[gid.rfind("/") + 1:])
    except ValueError:
        try:
            return gid_id(gid) or 0
        except ValueError:
            return 0


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
        f"{(stats.rfm_group or '') if stats is not None else ''}\t{c.number_of_orders or 0}\t"
        f"{(spent.amount or '0') if spent is not None else '0'}\t"
        f"{(spent.currency_code or '') if spent is not None else ''}\t{_tags_literal(c.tags)}\n"
    )


NULL = "\\N"


def bulk_orders_parse(data: bytes, *, shop_id: int) -> BulkChunk:
    """Lines of an orders file -> COPY lines for orders, their refunds (and customers, when the
    query read them whole). An order whose line holds a value Shopify cannot send is left out with
    its refunds and customer and recorded in `rejected`; the rest of the chunk is kept."""
    out = BulkChunk()
    shop = str(shop_id)
    orders, refunds, customers = out.orders, out.refunds, out.customers
    ids, customer_ids, refund_ids, refund_orders = (out.order_ids, out.customer_ids, out.refund_ids,
                                                    out.refund_order_ids)
    decoded = _decoded(data, _ORDER_LINES, out.rejected)
    if _needs_escaping(data):
        _escape_in_place(decoded)
    refunded: list[BulkOrderLine] = []
    for o in decoded:
        if o.parent_id is not None or o.id is None:
            if o.parent_id is None:
                out.rejected.add("an order line", "id: None is not a Shopify id")
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
        orders.append(_order_line(shop, oid, cid, o))
        if o.refunds:
            refunded.append(o)
            for r in o.refunds:
                refund_ids.append(_num(r.id))
                refund_orders.append(oid)
                refunds.append(_refund_line(shop, refund_ids[-1], oid, r))
    # One regex pass over each kind's lines finds any value Shopify cannot send (in C, a few % of the
    # parse); only a chunk with one is formatted again, record by record, to leave its bad lines out.
    if (_ORDER_SHAPE.bad_in(orders) or _REFUND_SHAPE.bad_in(refunds) or _CUSTOMER_SHAPE.bad_in(customers)
            or any(_refund_over_total(o) for o in refunded)):
        return _orders_checked(decoded, shop, out.rejected)
    return out


def _order_line(shop: str, oid: int, cid: str, o: BulkOrderLine) -> str:
    created = o.created_at
    amount = _amount
    return (
        f"{shop}\t{oid}\t{o.name or ''}\t{cid}\t{o.processed_at or created or NULL}\t{created or NULL}\t"
        f"{o.updated_at or NULL}\t{o.cancelled_at or NULL}\t{'t' if o.test else 'f'}\t"
        f"{(o.display_financial_status or '').upper()}\t{o.currency_code or ''}\t"
        f"{o.presentment_currency_code or ''}\t{amount(o.subtotal_price_set)}\t"
        f"{amount(o.current_subtotal_price_set)}\t{amount(o.total_price_set)}\t"
        f"{amount(o.current_total_price_set)}\t{amount(o.total_refunded_set)}\t{_tags_literal(o.tags)}\n"
    )


def _refund_line(shop: str, refund_id: int, order_id: int, r: BulkRefund) -> str:
    created = r.created_at or r.updated_at or NULL
    return (f"{shop}\t{refund_id}\t{order_id}\t{created}\t{r.processed_at or created}\t"
            f"{_amount(r.total_refunded_set)}\t{r.updated_at or created}\n")


def _refund_over_total(o: BulkOrderLine) -> str | None:
    """Why a refund of `o` exceeds what the order was paid, if one does (amounts already well formed)."""
    cap = refund_cap(_amount(o.total_price_set), _amount(o.current_total_price_set), _amount(o.total_refunded_set))
    for r in o.refunds or ():
        amount = _amount(r.total_refunded_set)
        if Decimal(amount) > cap:
            return f"refund {r.id}: amount {amount} exceeds what its order was paid ({cap.normalize():f})"
    return None


def _orders_checked(decoded: list[BulkOrderLine], shop: str, rejected: Rejected) -> BulkChunk:
    """bulk_orders_parse for a chunk holding a bad value: each order checked with its refunds and customer."""
    out = BulkChunk(rejected=rejected)
    for o in decoded:
        if o.parent_id is not None or o.id is None:  # the id-less line is in `rejected` already
            continue
        oid = _num(o.id)
        customer = o.customer
        cid = NULL if customer is None else str(_num(customer.id))
        whole = customer is not None and customer.updated_at is not None
        customer_line = _customer_line(shop, customer) if whole and customer is not None else None
        line = _order_line(shop, oid, cid, o)
        refund_lines = [(_num(r.id), _refund_line(shop, _num(r.id), oid, r)) for r in o.refunds or ()]
        reason = (_ORDER_SHAPE.problem(line) or _CUSTOMER_SHAPE.problem(customer_line)
                  or next((p for _, r in refund_lines if (p := _REFUND_SHAPE.problem(r))), None)
                  or _refund_over_total(o))
        if reason:
            rejected.add(f"order {o.id}", reason)
            continue
        out.order_ids.append(oid)
        out.orders.append(line)
        if customer_line is not None:
            out.customer_ids.append(int(cid))
            out.customers.append(customer_line)
        for rid, refund_line in refund_lines:
            out.refund_ids.append(rid)
            out.refund_order_ids.append(oid)
            out.refunds.append(refund_line)
    return out


def _decoded(data: bytes, decoder: msgspec.json.Decoder[Any], rejected: Rejected) -> list[Any]:
    """A chunk's lines decoded in one call; if one is not JSON of the expected shape (a number where
    Shopify writes a string, no id), the lines one by one, leaving that one out with msgspec's reason."""
    try:
        return decoder.decode_lines(data)
    except msgspec.DecodeError:
        kept = []
        for n, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    kept.append(decoder.decode(line))
                except msgspec.DecodeError as exc:
                    rejected.add(f"line {n} of its chunk", str(exc))
        return kept


class _LineShape:
    """What a COPY line of one table may hold: each column's pattern (free text is already escaped)."""

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        self.names = tuple(name for name, _ in columns)
        self.fields = tuple(re.compile(pattern, re.ASCII) for _, pattern in columns)
        # Trailing free text is not matched: escaped (or, in a chunk without a backslash, free of
        # tabs and newlines by JSON's rules), it cannot add a column, so the line's start decides.
        checked = list(columns)
        while checked[-1][1] == _TEXT:
            checked.pop()
        end = "\t" if len(checked) < len(columns) else "\n\\Z"
        self._start = re.compile("\t".join(f"(?:{pattern})" for _, pattern in checked) + end, re.ASCII)

    def bad_in(self, lines: list[str]) -> bool:
        # map() calls the compiled pattern from C: ~1 us a line, less than half of one search over
        # the joined lines (whose every position the search loop visits).
        return not all(map(self._start.match, lines))

    def problem(self, line: str | None) -> str | None:
        """Which column of `line` holds a value Shopify cannot send, or None."""
        if line is None:
            return None
        values = line[:-1].split("\t")
        if len(values) != len(self.fields):
            return f"{len(values)} columns instead of {len(self.fields)}"
        for name, pattern, value in zip(self.names, self.fields, values, strict=True):
            if not pattern.fullmatch(value):
                return f"{name}: {_shown(value)} is not a value Shopify can send"
        return None


_TEXT = r"[^\t\n]*"
_TIME_OR_NULL = rf"\\N|{TIME}"
_ORDER_SHAPE = _LineShape(list(zip(("shop_id", *ORDER_COLUMNS), (
    r"\d+", ID, _TEXT, rf"\\N|{ID}", _TIME_OR_NULL, _TIME_OR_NULL, _TIME_OR_NULL, _TIME_OR_NULL, "[tf]",
    _TEXT, _TEXT, _TEXT, MONEY, MONEY, MONEY, MONEY, MONEY, _TEXT), strict=True)))
_REFUND_SHAPE = _LineShape(list(zip(("shop_id", *BULK_REFUND_COLUMNS), (
    r"\d+", ID, ID, _TIME_OR_NULL, _TIME_OR_NULL, MONEY, _TIME_OR_NULL), strict=True)))
_CUSTOMER_SHAPE = _LineShape(list(zip(("shop_id", *CUSTOMER_COLUMNS), (
    r"\d+", ID, _TIME_OR_NULL, _TIME_OR_NULL, _TEXT, COUNT, SIGNED_MONEY, _TEXT, _TEXT), strict=True)))


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
    """Lines of a customers file -> COPY lines for customers; one holding a value Shopify cannot
    send is left out and recorded in `rejected`."""
    out = BulkChunk()
    shop = str(shop_id)
    decoded = _decoded(data, _CUSTOMER_LINES, out.rejected)
    if _needs_escaping(data):
        _escape_in_place(decoded)
    out.customers = [_customer_line(shop, c) for c in decoded]
    out.customer_ids = [_num(c.id) for c in decoded]
    if _CUSTOMER_SHAPE.bad_in(out.customers):
        lines, ids = out.customers, out.customer_ids
        out.customers, out.customer_ids = [], []
        for c, line, cid in zip(decoded, lines, ids, strict=True):
            if reason := _CUSTOMER_SHAPE.problem(line):
                out.rejected.add(f"customer {c.id}", reason)
            else:
                out.customers.append(line)
                out.customer_ids.append(cid)
    return out
