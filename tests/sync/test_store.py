"""Bulk chunks: straight into the tables when nothing is there, through the guarded upsert otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from django.db import transaction
from django.utils import timezone

from shops.models import Shop
from sync import normalize as nz
from sync.models import Customer, Deletion, Order, Refund
from sync.store import bulk_write

pytestmark = pytest.mark.django_db


def _order(n: int, *, updated: str = "2025-02-01T00:00:00Z", total: str = "10.00", **extra: object) -> dict:
    money = {"shopMoney": {"amount": total}}
    return {"id": f"gid://shopify/Order/{n}", "name": f"#{n}", "createdAt": "2025-01-01T00:00:00Z",
            "processedAt": "2025-01-01T00:00:00Z", "updatedAt": updated, "cancelledAt": None, "test": False,
            "displayFinancialStatus": "PAID", "currencyCode": "USD", "presentmentCurrencyCode": "USD",
            "subtotalPriceSet": money, "currentSubtotalPriceSet": money, "totalPriceSet": money,
            "currentTotalPriceSet": money, "totalRefundedSet": {"shopMoney": {"amount": "0.0"}}, "tags": [],
            "customer": None, "refunds": [], **extra}


def _write(shop: Shop, *objs: dict) -> tuple[int, int]:
    data = b"".join(orjson.dumps(o) + b"\n" for o in objs)
    with transaction.atomic():
        written = bulk_write(shop_id=shop.pk, currency="USD",
                             chunk=nz.bulk_orders_parse(data, shop_id=shop.pk))
    return written.orders, written.direct


@pytest.fixture
def shop() -> Shop:
    return Shop.objects.create(domain="store-test.myshopify.com", currency="USD")


def test_fresh_chunk_is_copied_straight_in_with_its_refunds(shop):
    refund = {"id": "gid://shopify/Refund/9", "createdAt": "2025-01-02T00:00:00Z",
              "updatedAt": "2025-01-02T00:00:00Z", "totalRefundedSet": {"shopMoney": {"amount": "4.00"}}}
    assert _write(shop, _order(1), _order(2, refunds=[refund])) == (2, 2)  # orders and refunds tables
    assert set(Order.objects.filter(shop=shop).values_list("shopify_id", flat=True)) == {1, 2}
    row = Refund.objects.get(shop=shop, shopify_id=9)
    # A bulk file carries no refund line items: the subtotal stays unknown until they are read.
    assert (row.order_shopify_id, row.amount, row.subtotal_amount) == (2, Decimal("4.00"), None)


def test_chunk_over_existing_rows_keeps_the_newer_data(shop):
    _write(shop, _order(1, updated="2025-03-01T00:00:00Z", total="30.00"))
    # Order 1 is older in this chunk than what we hold; order 2 is new.
    assert _write(shop, _order(1, total="99.00"), _order(2)) == (1, 0)
    assert Order.objects.get(shop=shop, shopify_id=1).total == Decimal("30.00")
    assert Order.objects.filter(shop=shop, shopify_id=2).exists()


def test_chunk_repeating_an_id_falls_back_to_the_upsert(shop):
    # Nothing stored yet, so the chunk tries COPY; the repeated id makes it fail and roll back.
    assert _write(shop, _order(5, total="1.00"), _order(5, updated="2025-04-01T00:00:00Z", total="2.00")) == (1, 0)
    assert Order.objects.get(shop=shop, shopify_id=5).total == Decimal("2.00")


def test_tombstoned_id_is_not_written_back(shop):
    Deletion.objects.create(shop=shop, kind=Deletion.Kind.ORDER, shopify_id=7, deleted_at=timezone.now())
    assert _write(shop, _order(6), _order(7), _order(8)) == (2, 0)
    assert set(Order.objects.filter(shop=shop).values_list("shopify_id", flat=True)) == {6, 8}


def test_ids_out_of_order_are_checked_one_by_one(shop):
    # A range check would see order 10 between 5 and 20; the ids themselves are all new.
    _write(shop, _order(10))
    assert _write(shop, _order(5), _order(20)) == (2, 1)
    assert Order.objects.filter(shop=shop).count() == 3


def test_customers_file_chunk(shop):
    customer = {"id": "gid://shopify/Customer/3", "createdAt": "2024-01-01T00:00:00Z",
                "updatedAt": "2025-01-01T00:00:00Z", "numberOfOrders": "2",
                "amountSpent": {"amount": "20.00", "currencyCode": "USD"}, "tags": ["vip"],
                "statistics": {"rfmGroup": "CHAMPIONS"}}
    data = orjson.dumps(customer) + b"\n"
    with transaction.atomic():
        written = bulk_write(shop_id=shop.pk, currency="USD", chunk=nz.bulk_customers_parse(data, shop_id=shop.pk))
    assert (written.customers, written.direct) == (1, 1)
    row = Customer.objects.get(shop=shop, shopify_id=3)
    assert (row.number_of_orders, row.amount_spent, row.tags, row.rfm_group) == (2, Decimal("20.00"), ["vip"],
                                                                                "CHAMPIONS")
    assert row.updated_at == datetime(2025, 1, 1, tzinfo=UTC)
