"""A correctly signed webhook whose values Shopify cannot send is rejected, and the reports keep rendering."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from analytics import services
from shops.models import Shop, WebhookEvent
from shops.services import webhook_event_process
from sync.models import Order, Refund
from tests.pages.conftest import AS_OF, Pages

ORDER = {"id": 820982911946154508, "name": "#9001", "created_at": "2026-10-10T10:00:00+13:00",
         "processed_at": "2026-10-10T10:00:00+13:00", "updated_at": "2026-10-10T10:00:00+13:00",
         "currency": "NZD", "financial_status": "paid", "customer": {"id": 5001},
         "subtotal_price": "40.00", "current_subtotal_price": "40.00", "total_price": "40.00",
         "current_total_price": "40.00", "refunds": []}


def _deliver(shop: Shop, topic: str, payload: dict[str, Any]) -> WebhookEvent:
    event = WebhookEvent.objects.create(webhook_id=str(uuid.uuid4()), shop=shop, shop_domain=shop.domain,
                                        topic=topic, payload=payload)
    webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    return event


def test_a_nan_order_is_rejected_and_the_overview_still_renders(pages: Pages) -> None:
    event = _deliver(pages.shop, "orders/create", {**ORDER, "total_price": "NaN", "current_total_price": "NaN"})
    assert event.status == WebhookEvent.Status.REJECTED
    assert event.outcome == "rejected: total_price: 'NaN' is not a non-negative amount Shopify can send"
    assert not Order.objects.filter(shop=pages.shop, shopify_id=ORDER["id"]).exists()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    assert doc["clv"]["orders"] > 0
    assert pages.get("/app/overview", as_of=AS_OF.isoformat()).status_code == 200
    # The Data page counts the refused delivery among the day's webhooks.
    assert '<dd data-hook="rejected">1</dd>' in pages.get("/app/data").content.decode()


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("total_price", "-40.00", "total_price: '-40.00' is not a non-negative amount"),
    ("subtotal_price", "1e400", "subtotal_price: '1e400' is not a non-negative amount"),
    ("current_total_price", "Infinity", "current_total_price: 'Infinity' is not a non-negative amount"),
    ("total_price", "12345678901234567.00", "total_price: '12345678901234567.00' is not a non-negative amount"),
    ("id", "gid://shopify/Order/abc", "id: 'gid://shopify/Order/abc' is not a Shopify id"),
    ("id", -5, "id: -5 is not a Shopify id"),
    ("id", 2**63, "id: 9223372036854775808 is not a Shopify id"),
    ("created_at", "20000-01-01T00:00:00Z", "created_at: '20000-01-01T00:00:00Z' is not a time"),
    ("updated_at", "2026-02-30T00:00:00Z", "updated_at: '2026-02-30T00:00:00Z' is not a time"),
    ("processed_at", "yesterday", "processed_at: 'yesterday' is not a time"),
])
def test_an_order_with_a_value_shopify_cannot_send_is_rejected_with_the_reason(
        shop: Shop, field: str, value: Any, reason: str) -> None:
    orders = Order.objects.filter(shop=shop).count()
    event = _deliver(shop, "orders/updated", {**ORDER, field: value})
    assert event.status == WebhookEvent.Status.REJECTED
    assert reason in event.outcome
    assert Order.objects.filter(shop=shop).count() == orders


def test_a_refund_larger_than_its_order_is_rejected(shop: Shop) -> None:
    assert _deliver(shop, "orders/create", ORDER).status == WebhookEvent.Status.PROCESSED
    refund = {"id": 930000000001, "order_id": ORDER["id"], "created_at": "2026-10-12T10:00:00+13:00",
              "transactions": [{"kind": "refund", "status": "success", "amount": "40.01", "currency": "NZD"}]}
    event = _deliver(shop, "refunds/create", refund)
    assert event.status == WebhookEvent.Status.REJECTED
    assert "exceeds what its order was paid (40)" in event.outcome
    # Within the order's total, the same refund is applied.
    ok = {**refund, "transactions": [{**refund["transactions"][0], "amount": "40.00"}]}
    assert _deliver(shop, "refunds/create", ok).status == WebhookEvent.Status.PROCESSED
    assert Refund.objects.get(shop=shop, shopify_id=930000000001).amount == 40


def test_an_order_edited_up_then_refunded_in_full_is_applied(shop: Shop) -> None:
    """An edit that added to the order leaves `total_price` at its first total: the refund of all
    that was paid (current total + refunded) is more than that, and is real."""
    refund = {"id": 930000000002, "order_id": ORDER["id"], "created_at": "2026-10-12T10:00:00+13:00",
              "transactions": [{"kind": "refund", "status": "success", "amount": "55.00", "currency": "NZD"}]}
    edited = {**ORDER, "current_total_price": "0.00", "refunds": [refund]}
    assert _deliver(shop, "orders/updated", edited).status == WebhookEvent.Status.PROCESSED
    assert Refund.objects.get(shop=shop, shopify_id=930000000002).amount == 55


def test_an_order_whose_inline_refund_is_negative_is_rejected(shop: Shop) -> None:
    negative = {"id": 1, "order_id": ORDER["id"], "created_at": "2026-10-12T10:00:00+13:00",
                "transactions": [{"kind": "refund", "status": "success", "amount": "-5.00", "currency": "NZD"}]}
    event = _deliver(shop, "orders/updated", {**ORDER, "refunds": [negative]})
    assert event.status == WebhookEvent.Status.REJECTED
    assert "transactions.amount: '-5.00'" in event.outcome
    assert not Order.objects.filter(shop=shop, shopify_id=ORDER["id"]).exists()
    assert not Refund.objects.filter(shop=shop).exists()


@pytest.mark.parametrize("topic", ["orders/delete", "customers/delete"])
def test_a_delete_with_a_junk_id_is_rejected_not_retried(shop: Shop, topic: str) -> None:
    event = _deliver(shop, topic, {"id": "gid://shopify/Order/NaN"})
    assert event.status == WebhookEvent.Status.REJECTED
    assert event.outcome == "rejected: id: 'gid://shopify/Order/NaN' is not a Shopify id"
