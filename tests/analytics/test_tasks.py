"""Debounced refresh after syncs, the nightly fan-out, and a refresh run by a real worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings

from analytics import tasks
from analytics.models import AnalyticsSnapshot
from analytics.selectors import shop_today
from tests.analytics.factories import orders_add, shop_make
from tests.conftest import wait_for


@pytest.mark.django_db
def test_refresh_shop_later_schedules_once_until_the_refresh_runs(redis_client):
    shop = shop_make()
    key = tasks.PENDING_KEY.format(shop_id=shop.pk)
    redis_client.delete(key)
    assert tasks.refresh_shop_later(shop.pk) is True
    assert tasks.refresh_shop_later(shop.pk) is False  # a burst of syncs becomes one refresh
    ttl = redis_client.ttl(key)
    assert tasks.DEBOUNCE_SECONDS < ttl <= tasks.DEBOUNCE_SECONDS + 15 * 60
    tasks.refresh_shop(shop.pk)  # what the delayed task does when it runs
    assert redis_client.exists(key) == 0
    assert AnalyticsSnapshot.objects.filter(shop=shop, as_of=shop_today(shop=shop)).count() == 1
    assert tasks.refresh_shop_later(shop.pk) is True
    redis_client.delete(key)


@pytest.mark.django_db
def test_refresh_skips_missing_and_uninstalled_shops(redis_client):
    tasks.refresh_shop(987654321)
    shop = shop_make()
    shop.state = shop.State.UNINSTALLED
    shop.save()
    tasks.refresh_shop(shop.pk)
    assert not AnalyticsSnapshot.objects.exists()


def test_nightly_refresh_is_scheduled_on_the_analytics_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["analytics-nightly"]
    assert entry["task"] == "analytics.tasks.refresh_all"
    assert entry["options"]["queue"] == "analytics"


@pytest.mark.integration
def test_worker_refreshes_the_snapshot(celery_worker_process, redis_client):
    shop = shop_make(domain="worker-shop.myshopify.com")
    recent = shop_today(shop=shop) - timedelta(days=10)
    orders_add(shop, [{"customer": 1, "at": recent.isoformat(), "value": "10"}])
    tasks.refresh_all.delay()
    snapshot = wait_for(lambda: AnalyticsSnapshot.objects.filter(shop=shop).first(), timeout=60)
    assert snapshot.as_of == shop_today(shop=shop)
    assert snapshot.document["clv"]["orders"] == 1
    assert snapshot.has_customers
