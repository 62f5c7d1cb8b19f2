"""Small shops built straight into PostgreSQL (bulk inserts), in the shop's local time."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from shops.models import Shop
from sync.models import Customer, Order, Refund

_ids = iter(range(10_000_000, 99_999_999))


def shop_make(*, domain: str = "tiny.myshopify.com", tz: str = "UTC", currency: str = "USD") -> Shop:
    return Shop.objects.create(domain=domain, iana_timezone=tz, currency=currency)


def local(shop: Shop, text: str) -> datetime:
    """'2025-03-01' or '2025-03-01 23:30' in the shop's zone, as an aware datetime."""
    fmt = "%Y-%m-%d %H:%M" if " " in text else "%Y-%m-%d"
    return datetime.strptime(text, fmt).replace(tzinfo=ZoneInfo(shop.iana_timezone))


def orders_add(shop: Shop, rows: list[dict[str, Any]]) -> list[Order]:
    """Each row: customer (id or None), at (local text), value; optional id, total, current, test,
    cancelled, tags, refunded."""
    objs = []
    for row in rows:
        at = local(shop, row["at"])
        value = Decimal(str(row.get("value", "0")))
        total = Decimal(str(row.get("total", value)))
        current = Decimal(str(row.get("current", value)))
        current_total = Decimal(str(row.get("current_total", total - (value - current))))
        objs.append(Order(
            shop=shop, shopify_id=row.get("id", next(_ids)), customer_shopify_id=row.get("customer"),
            processed_at=at, created_at=at, updated_at=at,
            cancelled_at=at if row.get("cancelled") else None, test=bool(row.get("test")),
            currency=shop.currency, subtotal=value, current_subtotal=current, total=total,
            current_total=current_total, total_refunded=Decimal(str(row.get("refunded", value - current))),
            tags=list(row.get("tags", [])),
        ))
    return Order.objects.bulk_create(objs)


def refund_add(shop: Shop, *, order_id: int, at: str, subtotal_amount: str, amount: str | None = None) -> Refund:
    when = local(shop, at)
    return Refund.objects.create(
        shop=shop, shopify_id=next(_ids), order_shopify_id=order_id, created_at=when, processed_at=when,
        amount=Decimal(amount if amount is not None else subtotal_amount), subtotal_amount=Decimal(subtotal_amount),
    )


def customers_add(shop: Shop, rows: list[dict[str, Any]]) -> None:
    now = timezone.now()
    Customer.objects.bulk_create([
        Customer(shop=shop, shopify_id=row["id"], created_at=now, updated_at=now,
                 rfm_group=row.get("rfm_group", ""), number_of_orders=row.get("number_of_orders", 0),
                 amount_spent=Decimal(str(row.get("amount_spent", "0"))))
        for row in rows
    ])
