"""Webhook -> database through the real Celery worker (subprocess) and real Redis."""

from __future__ import annotations

import pytest

from shops import webhooks
from shops.models import CustomerDataReport, Shop, ShopCredential, WebhookEvent
from tests.conftest import wait_for
from tests.shops.conftest import post_webhook, shop_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def real_broker():
    webhooks.publisher.flush()
    webhooks.publisher.url = None
    webhooks.publisher._connection = None
    webhooks.publisher._paused_until = 0.0
    yield
    webhooks.publisher.flush()


def test_webhooks_reach_the_database_through_the_worker(celery_worker_process, real_broker, client) -> None:
    shop = shop_create("acme.myshopify.com")
    assert post_webhook(client, {"previous": [], "current": ["read_orders", "read_all_orders", "read_customers",
                                                            "read_products"]},
                        topic="app/scopes_update", shop=shop.domain, webhook_id="w-1").status_code == 200
    assert post_webhook(client, {"customer": {"id": 7, "email": "x@example.com"}, "orders_requested": [],
                                 "data_request": {"id": 55}},
                        topic="customers/data_request", shop=shop.domain, webhook_id="w-2").status_code == 200
    wait_for(lambda: WebhookEvent.objects.filter(status="processed").count() == 2, timeout=30)
    shop.refresh_from_db()
    assert shop.scopes == "read_orders,read_all_orders,read_customers,read_products"
    report = CustomerDataReport.objects.get(shop=shop)
    assert (report.customer_shopify_id, report.data_request_id) == (7, "55")
    # Last, the uninstall: handled by the worker with no API call, credentials gone.
    assert post_webhook(client, {"id": 1}, topic="app/uninstalled", shop=shop.domain,
                        webhook_id="w-3").status_code == 200
    wait_for(lambda: Shop.objects.get(pk=shop.pk).state == Shop.State.UNINSTALLED, timeout=30)
    assert not ShopCredential.objects.filter(shop=shop).exists()
