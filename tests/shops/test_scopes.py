"""Scopes: read_orders and read_customers are required, read_all_orders is optional.

Against devstore end to end: install without read_all_orders (the sync keeps to 60 days and
says so), grant it later (a backfill fetches the full history), revoke it (what we hold stays,
and reconciliation does not mistake the hidden history for deletions), and an install with
too few required scopes is refused.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from devstore.testing import DevStore
from shops.models import Shop, ShopCredential, WebhookEvent
from shops.services import shop_scopes_update, webhook_event_process
from sync import selectors
from sync import services as sync_services
from sync.models import Order, SyncRun
from tests.conftest import wait_for
from tests.shops.conftest import shop_create
from tests.shops.test_devstore_e2e import ACME, devstore, embedded_load, queued_task_args  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore:The HMAC key is")]

ALL = "read_orders,read_all_orders,read_customers"
REQUIRED_ONLY = "read_orders,read_customers"
WINDOW = timedelta(days=60)


def backfill_latest(shop: Shop) -> SyncRun:
    return SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL).latest("created_at")


def scopes_update_process(ds: DevStore, shop: Shop, scopes: str) -> WebhookEvent:
    """The merchant changes the grant in Shopify; its app/scopes_update delivery is handled."""
    seen = set(WebhookEvent.objects.filter(topic="app/scopes_update").values_list("pk", flat=True))
    ds.install("acme", scopes=scopes)
    ds.wait_webhooks(10)
    event = wait_for(lambda: WebhookEvent.objects.filter(topic="app/scopes_update").exclude(pk__in=seen).first())
    webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED, event.outcome
    shop.refresh_from_db()
    return event


def test_install_without_read_all_orders_then_granting_it_fetches_the_full_history(devstore: DevStore) -> None:  # noqa: F811
    devstore.install("acme", scopes=REQUIRED_ONLY)
    assert embedded_load(devstore, "acme").status_code == 302
    shop = Shop.objects.get(domain=ACME, state=Shop.State.INSTALLED)
    assert shop.granted_scopes == {"read_orders", "read_customers"}
    first = backfill_latest(shop)
    assert sync_services.backfill_run(run_id=first.pk) == "succeeded"
    first.refresh_from_db()
    assert first.history_limited
    truth = devstore.ground_truth("acme")
    floor = timezone.now() - WINDOW
    held = set(Order.objects.filter(shop=shop).values_list("shopify_id", flat=True))
    # Exactly the last 60 days (an hour's slack either side of the moving boundary).
    assert {o["shopify_id"] for o in truth.orders if o["created_at"] > floor + timedelta(hours=1)} <= held
    assert held <= {o["shopify_id"] for o in truth.orders if o["created_at"] > floor - timedelta(hours=1)}
    assert len(held) < len(truth.orders)  # the shop has older orders that we cannot see yet
    assert selectors.sync_status(shop=shop)["history_limited"]

    event = scopes_update_process(devstore, shop, ALL)
    assert "read_all_orders" in shop.granted_scopes
    assert "read_all_orders granted" in event.outcome
    second = backfill_latest(shop)
    assert second.pk != first.pk
    assert second.status == SyncRun.Status.PENDING
    assert [second.pk] in queued_task_args("backfill")
    assert sync_services.backfill_run(run_id=second.pk) == "succeeded"
    second.refresh_from_db()
    assert not second.history_limited
    assert Order.objects.filter(shop=shop).count() == len(truth.orders)
    assert not selectors.sync_status(shop=shop)["history_limited"]


def test_revoking_read_all_orders_keeps_the_history_and_reconciliation_keeps_to_60_days(
        devstore: DevStore) -> None:  # noqa: F811
    devstore.install("acme", scopes=ALL)
    embedded_load(devstore, "acme")
    shop = Shop.objects.get(domain=ACME)
    assert sync_services.backfill_run(run_id=backfill_latest(shop).pk) == "succeeded"
    held = Order.objects.filter(shop=shop).count()
    assert held == len(devstore.ground_truth("acme").orders)
    # Orders 60-90 days old: inside the daily reconciliation's 90 days, outside the visible window.
    cutoff = timezone.now() - WINDOW
    assert Order.objects.filter(shop=shop, created_at__lt=cutoff,
                                created_at__gt=cutoff - timedelta(days=30)).exists()

    event = scopes_update_process(devstore, shop, REQUIRED_ONLY)
    assert "read_all_orders revoked" in event.outcome
    assert shop.needs_reauth_reason == ""  # the required scopes are all still there
    assert not SyncRun.objects.filter(shop=shop, status=SyncRun.Status.PENDING).exists()
    assert selectors.sync_status(shop=shop)["history_limited"]
    run = sync_services.reconcile_run(shop=shop)
    assert run is not None
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert Order.objects.filter(shop=shop).count() == held


def test_install_with_too_few_required_scopes_is_refused(devstore: DevStore) -> None:  # noqa: F811
    devstore.install("acme", scopes="read_orders,read_all_orders")
    response = embedded_load(devstore, "acme")
    assert response.status_code == 403
    assert "Tenure needs access to read_customers" in response.text
    assert "frame-ancestors https://acme.myshopify.com" in response.headers["Content-Security-Policy"]
    assert not Shop.objects.filter(domain=ACME, state=Shop.State.INSTALLED).exists()
    assert not ShopCredential.objects.exists()
    assert not SyncRun.objects.exists()


def test_required_scopes_back_clear_only_the_scopes_reason(db: None) -> None:
    shop = shop_create("scopes.myshopify.com")
    shop_scopes_update(shop=shop, payload={"current": ["read_orders"]})
    assert shop.needs_reauth_reason.startswith("scopes reduced")
    shop_scopes_update(shop=shop, payload={"current": ["read_orders", "read_customers"]})
    shop.refresh_from_db()
    assert shop.needs_reauth_reason == ""
    Shop.objects.filter(pk=shop.pk).update(needs_reauth_reason="token refresh failed")
    shop.refresh_from_db()
    shop_scopes_update(shop=shop, payload={"current": ["read_orders", "read_customers", "read_all_orders"]})
    shop.refresh_from_db()
    assert shop.needs_reauth_reason == "token refresh failed"


def test_scopes_updates_out_of_order_keep_the_newest(db: None) -> None:
    """Two changes delivered out of order: the older one, processed last, does not undo the newer."""
    shop = shop_create("order.myshopify.com")

    def delivery(webhook_id: str, current: list[str], at: str) -> WebhookEvent:
        return WebhookEvent.objects.create(
            webhook_id=webhook_id, shop=shop, shop_domain=shop.domain, topic="app/scopes_update",
            received_at=timezone.now(), status=WebhookEvent.Status.RECEIVED,
            payload={"previous": [], "current": current, "updated_at": at})

    older = delivery("w-old", ["read_orders"], "2026-12-01T10:00:00.000Z")
    newer = delivery("w-new", ["read_orders", "read_customers"], "2026-12-01T10:00:05.000Z")
    assert webhook_event_process(event_id=newer.pk) == "processed"
    assert webhook_event_process(event_id=older.pk) == "processed"
    shop.refresh_from_db()
    assert (shop.scopes, shop.needs_reauth_reason) == ("read_orders,read_customers", "")
    older.refresh_from_db()
    assert older.outcome.startswith("older than the scopes change of 2026-12-01T10:00:05")
    # In order, each applies.
    latest = delivery("w-latest", ["read_orders"], "2026-12-01T10:00:09.000Z")
    webhook_event_process(event_id=latest.pk)
    shop.refresh_from_db()
    assert shop.scopes == "read_orders"
    assert shop.needs_reauth_reason.startswith("scopes reduced")
