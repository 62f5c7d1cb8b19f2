"""Shopify data -> our row tuples, from GraphQL (nodes and bulk JSONL lines) and from REST webhooks.

Both shapes end as the same tuples (the staging tables' column order below), so a GID
and a numeric id land on one row and a webhook and a sync write the same values.
Money is the shop-money amount as a decimal string; times are ISO strings (PostgreSQL
parses them in COPY); nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

ORDER_COLUMNS = (
    "shopify_id", "name", "customer_shopify_id", "processed_at", "created_at", "updated_at", "cancelled_at",
    "test", "financial_status", "currency", "presentment_currency", "subtotal", "current_subtotal", "total",
    "current_total", "total_refunded", "tags",
)
# subtotal_amount is None when the refund's line items come as separate bulk lines.
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
REFUND_FIELDS = f"id createdAt updatedAt totalRefundedSet {{ {_MONEY} }}"
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
    """A refund; its subtotal is summed here when its line items came inline (paginated queries)."""
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
        # Refund has no processedAt in GraphQL; its transactions are processed when it is created.
        created,
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
    # REST customer payloads carry no order count, amount spent or RFM group: None keeps ours.
    return (
        gid_id(payload["id"]),
        payload.get("created_at"),
        payload.get("updated_at"),
        None,
        None,
        None,
        None,
        _tags(payload.get("tags")),
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
# One bulk line straight to its COPY line: the same values as copy_line(order_from_graphql(node)),
# without the intermediate tuple (a million orders spend most of their Python time here).

_NEEDS_ESCAPE = frozenset("\\\t\n\r")


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.translate(_ESCAPES) if _NEEDS_ESCAPE.intersection(text) else text


def _tags_text(tags: Any) -> str:
    if not tags:
        return "{}"
    return _array_literal(_tags(tags)).translate(_ESCAPES)


def _m(value: Any) -> str:
    if value:
        money = value.get("shopMoney")
        if money and money.get("amount") is not None:
            return str(money["amount"])
    return _money(value)


def order_copy_line(node: Mapping[str, Any]) -> str:
    customer = node.get("customer")
    cid = str(gid_id(customer.get("id"))) if isinstance(customer, Mapping) and customer.get("id") else "\\N"
    created = node.get("createdAt")
    return (
        f"{gid_id(node['id'])}\t{_text(node.get('name') or '')}\t{cid}\t{_text(node.get('processedAt') or created)}\t"
        f"{_text(created)}\t{_text(node.get('updatedAt'))}\t{_text(node.get('cancelledAt'))}\t"
        f"{'t' if node.get('test') else 'f'}\t{_text(_upper(node.get('displayFinancialStatus')))}\t"
        f"{_text(node.get('currencyCode') or '')}\t{_text(node.get('presentmentCurrencyCode') or '')}\t"
        f"{_m(node.get('subtotalPriceSet'))}\t{_m(node.get('currentSubtotalPriceSet'))}\t"
        f"{_m(node.get('totalPriceSet'))}\t{_m(node.get('currentTotalPriceSet'))}\t"
        f"{_m(node.get('totalRefundedSet'))}\t{_tags_text(node.get('tags'))}\n"
    )


def customer_copy_line(node: Mapping[str, Any]) -> str:
    spent = node.get("amountSpent") or {}
    stats = node.get("statistics") or {}
    return (
        f"{gid_id(node['id'])}\t{_text(node.get('createdAt'))}\t{_text(node.get('updatedAt'))}\t"
        f"{_text(str(stats.get('rfmGroup') or '') if isinstance(stats, Mapping) else '')}\t"
        f"{int(node.get('numberOfOrders') or 0)}\t{_text(str(spent.get('amount') or '0'))}\t"
        f"{_text(str(spent.get('currencyCode') or ''))}\t{_tags_text(node.get('tags'))}\n"
    )
