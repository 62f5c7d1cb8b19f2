"""Compare our rows with devstore's ground truth, field by field (money as Decimal, to the cent)."""

from __future__ import annotations

from typing import Any

from shops.models import Shop
from sync.models import Customer, Order, Refund

ORDER_FIELDS = ("name", "customer_shopify_id", "processed_at", "created_at", "updated_at", "cancelled_at", "test",
                "financial_status", "currency", "presentment_currency", "subtotal", "current_subtotal", "total",
                "current_total", "total_refunded", "tags")
REFUND_FIELDS = ("order_shopify_id", "created_at", "processed_at", "amount", "subtotal_amount")
CUSTOMER_FIELDS = ("created_at", "updated_at", "rfm_group", "number_of_orders", "amount_spent",
                   "amount_spent_currency", "tags")


# A refund's line-item subtotal is NULL until its line items are read by id (sync.services.refund_lines_run).
UNREAD_ALLOWED = frozenset({"subtotal_amount"})


def _diff(kind: str, ours: dict[int, dict[str, Any]], truth: list[dict[str, Any]],
          fields: tuple[str, ...], *, strict: bool = False) -> list[str]:
    problems = []
    theirs = {row["shopify_id"]: row for row in truth}
    for missing in sorted(set(theirs) - set(ours))[:5]:
        problems.append(f"{kind} {missing} missing")
    for extra in sorted(set(ours) - set(theirs))[:5]:
        problems.append(f"{kind} {extra} should not exist")
    for key in sorted(set(ours) & set(theirs)):
        for f in fields:
            if f in UNREAD_ALLOWED and ours[key][f] is None and not strict:
                continue  # not read yet (a bulk file cannot carry it): unknown, not wrong
            if ours[key][f] != theirs[key][f]:
                problems.append(f"{kind} {key}.{f}: ours {ours[key][f]!r} != truth {theirs[key][f]!r}")
    if len(set(ours) ^ set(theirs)) > 5:
        problems.append(f"{kind}: {len(set(theirs) - set(ours))} missing, {len(set(ours) - set(theirs))} extra")
    return problems


def mismatches(shop: Shop, truth: dict[str, Any], *, strict: bool = False) -> list[str]:
    """Every field that differs from devstore's truth; `strict` counts an unread refund subtotal too."""
    orders = {r["shopify_id"]: r for r in Order.objects.filter(shop=shop).values("shopify_id", *ORDER_FIELDS)}
    refunds = {r["shopify_id"]: r for r in Refund.objects.filter(shop=shop).values("shopify_id", *REFUND_FIELDS)}
    customers = {r["shopify_id"]: r for r in
                 Customer.objects.filter(shop=shop).values("shopify_id", *CUSTOMER_FIELDS)}
    return (_diff("order", orders, truth["orders"], ORDER_FIELDS)
            + _diff("refund", refunds, truth["refunds"], REFUND_FIELDS, strict=strict)
            + _diff("customer", customers, truth["customers"], CUSTOMER_FIELDS))
