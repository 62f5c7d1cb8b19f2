"""What each topic's handler does to the database (run through webhook_event_process)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import AnalyticsSnapshot, CustomerRows, CustomerScore
from shops.models import CustomerDataReport, Shop, ShopCredential, WebhookEvent
from shops.services import webhook_event_process
from sync.models import Customer, Order, Refund, SyncRun

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def record(shop: Shop, topic: str, payload: dict, webhook_id: str) -> WebhookEvent:
    return WebhookEvent.objects.create(webhook_id=webhook_id, shop=shop, shop_domain=shop.domain, topic=topic,
                                       payload=payload)


def seed(shop: Shop) -> None:
    """Customer 7 with orders 100 and 101 (a refund on 101), customer 8 with order 200."""
    for cid in (7, 8):
        Customer.objects.create(shop=shop, shopify_id=cid, created_at=T0, updated_at=T0, number_of_orders=1,
                                amount_spent=Decimal("10"), amount_spent_currency="NZD")
    for oid, cid, total in ((100, 7, "10.00"), (101, 7, "25.50"), (200, 8, "5.00")):
        Order.objects.create(shop=shop, shopify_id=oid, customer_shopify_id=cid, processed_at=T0, created_at=T0,
                             updated_at=T0, currency="NZD", total=Decimal(total), current_total=Decimal(total),
                             tags=["vip"])
    Refund.objects.create(shop=shop, shopify_id=900, order_shopify_id=101, created_at=T0, amount=Decimal("5.50"))


def test_data_request_assembles_report_for_staff(shop_a) -> None:
    seed(shop_a)
    event = record(shop_a, "customers/data_request",
                   {"shop_domain": shop_a.domain, "customer": {"id": 7}, "orders_requested": [100, 101],
                    "data_request": {"id": 9999}}, "w-dr")
    assert webhook_event_process(event_id=event.pk) == "processed"
    report = CustomerDataReport.objects.get(webhook_event=event)
    assert (report.customer_shopify_id, report.data_request_id) == (7, "9999")
    assert [o["shopify_id"] for o in report.report["orders"]] == [100, 101]
    assert [o["total"] for o in report.report["orders"]] == ["10.0000", "25.5000"]
    assert [r["shopify_id"] for r in report.report["refunds"]] == [900]
    assert [c["shopify_id"] for c in report.report["customers"]] == [7]
    event.refresh_from_db()
    assert event.outcome.startswith("report ready in admin for customer 7: 1 customer row(s), 2 order(s), 1 refund")


def test_customer_redact_deletes_customer_and_detaches_orders(shop_a, shop_b) -> None:
    seed(shop_a)
    seed(shop_b)
    earlier = record(shop_a, "customers/update", {"id": 7, "tags": "vip"}, "w-earlier")
    earlier.status = WebhookEvent.Status.PROCESSED
    earlier.save()
    rows = CustomerRows.objects.create(shop=shop_a)
    AnalyticsSnapshot.objects.create(shop=shop_a, as_of=date(2026, 11, 1), settings_hash="h",
                                     computed_at=timezone.now(), rows=rows)
    score = {"recency_days": 3, "frequency": 2, "monetary": Decimal("35.5"), "r": 3, "f": 3, "m": 3, "total": 9,
             "rfm_group": "top"}
    CustomerScore.objects.create(rows=rows, customer_shopify_id=7, **score)
    CustomerScore.objects.create(rows=rows, customer_shopify_id=8, **score)
    event = record(shop_a, "customers/redact", {"customer": {"id": 7}, "orders_to_redact": [100, 101]}, "w-cr")
    assert webhook_event_process(event_id=event.pk) == "processed"
    assert not Customer.objects.filter(shop=shop_a, shopify_id=7).exists()
    assert list(CustomerScore.objects.values_list("customer_shopify_id", flat=True)) == [8]
    assert list(Order.objects.filter(shop=shop_a, shopify_id__in=[100, 101]).order_by("shopify_id").values_list(
        "customer_shopify_id", "tags", "total")) == [(None, [], Decimal("10.0000")), (None, [], Decimal("25.5000"))]
    assert Order.objects.filter(shop=shop_a, customer_shopify_id=7).count() == 0
    assert Order.objects.filter(shop=shop_a).count() == 3  # kept for the shop's revenue, anonymous
    # Customer 8 and the other shop's customer 7 are untouched.
    assert Customer.objects.filter(shop=shop_a, shopify_id=8).exists()
    assert Order.objects.filter(shop=shop_b, customer_shopify_id=7).count() == 2
    earlier.refresh_from_db()
    assert earlier.payload is None
    event.refresh_from_db()
    assert event.outcome == "customer 7 redacted: 1 row(s) deleted, 2 order(s) detached, 2 webhook payload(s) cleared"
    assert event.payload is None  # the redact request itself named the customer


def test_shop_redact_deletes_everything_of_that_shop_only(shop_a, shop_b) -> None:
    seed(shop_a)
    seed(shop_b)
    Shop.objects.filter(pk=shop_a.pk).update(state=Shop.State.UNINSTALLED)
    event = record(shop_a, "shop/redact", {"shop_domain": shop_a.domain}, "w-sr")
    assert webhook_event_process(event_id=event.pk) == "processed"
    shop_a.refresh_from_db()
    assert (shop_a.state, shop_a.name, shop_a.scopes) == ("redacted", "", "")
    assert shop_a.redacted_at is not None
    for model in (Customer, Order, Refund, ShopCredential):
        assert not model.objects.filter(shop=shop_a).exists()
        assert model.objects.filter(shop=shop_b).exists()
    event.refresh_from_db()
    assert event.payload is None
    assert event.status == "processed"
    # After redaction further deliveries for the shop are dropped.
    later = record(shop_a, "orders/create", {"id": 5}, "w-late")
    assert webhook_event_process(event_id=later.pk) == "dropped"


def test_app_uninstalled_drops_credentials_and_stops_runs(shop_a) -> None:
    run = SyncRun.objects.create(shop=shop_a, kind=SyncRun.Kind.INCREMENTAL, status=SyncRun.Status.RUNNING)
    event = record(shop_a, "app/uninstalled", {"id": 1, "domain": shop_a.domain}, "w-un")
    assert webhook_event_process(event_id=event.pk) == "processed"
    shop_a.refresh_from_db()
    assert shop_a.state == "uninstalled"
    assert shop_a.uninstalled_at is not None
    assert not ShopCredential.objects.filter(shop=shop_a).exists()
    run.refresh_from_db()
    assert run.status == "cancelled"
    # Orders for an uninstalled shop are dropped, compliance topics still run.
    order = record(shop_a, "orders/create", {"id": 5}, "w-o")
    assert webhook_event_process(event_id=order.pk) == "dropped"
    redact = record(shop_a, "customers/redact", {"customer": {"id": 1}}, "w-cr2")
    assert webhook_event_process(event_id=redact.pk) == "processed"


def test_scopes_update_reduced_marks_needs_reauth(shop_a) -> None:
    event = record(shop_a, "app/scopes_update", {"previous": ["read_orders"], "current": ["read_orders"]}, "w-s")
    assert webhook_event_process(event_id=event.pk) == "processed"
    shop_a.refresh_from_db()
    assert shop_a.scopes == "read_orders"
    assert "scopes reduced" in shop_a.needs_reauth_reason


def test_failing_handler_is_marked_failed_and_retried_boundedly(shop_a) -> None:
    # customers/data_request with a non-numeric order id list still works; a payload that is
    # not a mapping where one is expected makes the handler raise.
    event = record(shop_a, "customers/redact", {"customer": "not-a-dict"}, "w-f")
    assert webhook_event_process(event_id=event.pk) == "failed"
    event.refresh_from_db()
    assert event.attempts == 1
    assert event.outcome.startswith("AttributeError")


def test_data_reports_are_visible_to_staff_in_the_admin(admin_client, shop_a) -> None:
    event = record(shop_a, "customers/data_request", {"customer": {"id": 7}, "data_request": {"id": 1}}, "w-adm")
    webhook_event_process(event_id=event.pk)
    report = CustomerDataReport.objects.get()
    assert admin_client.get("/admin/shops/customerdatareport/").status_code == 200
    page = admin_client.get(f"/admin/shops/customerdatareport/{report.pk}/change/")
    assert page.status_code == 200
    assert b"personal_data_held" in page.content


def test_credential_store_keeps_the_later_issued_token(shop_a) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from shops.services import TokenPair, credential_store

    later = timezone.now() + timedelta(hours=2)
    credential_store(shop=shop_a, pair=TokenPair("shpat_new", later, "shprt_new", later, "read_orders"))
    # An exchange that started first but commits last (its token already revoked by Shopify).
    credential_store(shop=shop_a, pair=TokenPair("shpat_old", later - timedelta(seconds=3), "shprt_old", later,
                                                 "read_orders"))
    credential = ShopCredential.objects.get(shop=shop_a)
    assert (credential.access_token, credential.refresh_token) == ("shpat_new", "shprt_new")


def test_shop_redact_for_a_reinstalled_shop_keeps_the_new_install(shop_a) -> None:
    seed(shop_a)
    event = record(shop_a, "shop/redact", {"shop_domain": shop_a.domain}, "w-sr-late")
    assert webhook_event_process(event_id=event.pk) == "processed"
    event.refresh_from_db()
    assert event.outcome.startswith("not redacted")
    assert Order.objects.filter(shop=shop_a).count() == 3
    assert ShopCredential.objects.filter(shop=shop_a).exists()
