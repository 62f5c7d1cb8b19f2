"""A shop Shopify paused (402 frozen, 423 locked) is probed with backoff and resumes when it answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from shops.models import Shop
from sync import services, tasks
from sync.client import ShopifyClient, ShopifyShopPausedError
from sync.models import PauseProbe, SyncRun
from tests.sync.conftest import queued

pytestmark = pytest.mark.django_db

QUERY = "query { orders(first: 1) { nodes { id } } }"


def _pause(devshop, status: int) -> None:
    """Shopify starts answering `status` to everything; a sync request meets it first."""
    devshop.faults(error_rate=1.0, error_status=status)
    with ShopifyClient.for_shop(devshop.shop) as client, pytest.raises(ShopifyShopPausedError):
        client.graphql(QUERY)
    devshop.shop.refresh_from_db()


def _counting_factory(calls: list[int]):
    def factory(shop: Shop) -> ShopifyClient:
        calls.append(shop.pk)
        return ShopifyClient.for_shop(shop, backoff_base=0.001, backoff_cap=0.01)

    return factory


@pytest.mark.parametrize("status", [402, 423])
def test_paused_shop_is_probed_with_backoff_and_resumes_when_shopify_answers(devshop, status):
    shop = devshop.shop
    _pause(devshop, status)
    assert shop.paused_reason
    assert shop.pk not in services.installed_shop_ids()
    calls: list[int] = []
    factory = _counting_factory(calls)
    t0 = timezone.now()

    assert services.paused_shops_due(now=t0) == [shop.pk]  # never probed: at once
    assert services.shop_pause_probe(shop=shop, client_factory=factory, now=t0) is False
    probe = PauseProbe.objects.get(shop=shop)
    assert (probe.attempts, probe.next_at) == (1, t0 + timedelta(minutes=5))
    assert "ShopifyShopPausedError" in probe.last_error
    # Not due yet: no request at all.
    assert services.paused_shops_due(now=t0 + timedelta(minutes=4)) == []
    assert services.shop_pause_probe(shop=shop, client_factory=factory, now=t0 + timedelta(minutes=4)) is None
    assert len(calls) == 1

    t1 = t0 + timedelta(minutes=5)
    assert services.shop_pause_probe(shop=shop, client_factory=factory, now=t1) is False
    assert PauseProbe.objects.get(shop=shop).next_at == t1 + timedelta(minutes=10)  # twice the wait

    devshop.faults(error_rate=0.0, error_status=None)  # the merchant paid the bill
    t2 = t1 + timedelta(minutes=10)
    assert services.shop_pause_probe(shop=shop, client_factory=factory, now=t2) is True
    shop.refresh_from_db()
    assert shop.paused_reason == ""
    assert shop.pk in services.installed_shop_ids()
    assert not PauseProbe.objects.filter(shop=shop).exists()
    assert len(calls) == 3


def test_backoff_doubles_up_to_twelve_hours(devshop):
    _pause(devshop, 402)
    factory = _counting_factory([])
    now = timezone.now()
    waits = []
    for _ in range(10):
        assert services.shop_pause_probe(shop=devshop.shop, client_factory=factory, now=now) is False
        probe = PauseProbe.objects.get(shop=devshop.shop)
        waits.append((probe.next_at - now) / timedelta(minutes=1))
        now = probe.next_at
    assert waits == [5, 10, 20, 40, 80, 160, 320, 640, 720, 720]


def test_probe_task_resumes_the_shops_syncs(devshop, redis_client):
    shop = devshop.shop
    _pause(devshop, 423)
    redis_client.flushdb()
    assert tasks.paused_shops_probe() == 1
    assert queued(redis_client, "sync") == [("sync.tasks.shop_probe", [shop.pk])]
    redis_client.flushdb()

    assert tasks.shop_probe(shop.pk) == "still paused"
    assert tasks.paused_shops_probe() == 0  # backing off
    devshop.faults(error_rate=0.0, error_status=None)
    PauseProbe.objects.filter(shop=shop).update(next_at=timezone.now())
    # No backfill ever succeeded (it would have failed paused): the probe starts one.
    assert tasks.shop_probe(shop.pk) == "resumed"
    assert queued(redis_client, "backfill") == [("sync.tasks.backfill_start", [shop.pk])]
    Shop.objects.filter(pk=shop.pk).update(paused_reason="locked again")
    SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.SUCCEEDED)
    redis_client.flushdb()
    assert tasks.shop_probe(shop.pk) == "resumed"
    assert queued(redis_client, "sync") == [("sync.tasks.incremental_sync", [shop.pk])]


def test_probe_is_on_the_beat_schedule():
    from django.conf import settings

    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["sync-paused-probe"]
    assert entry["task"] in app.tasks
    assert entry["options"]["queue"] == "sync"
    assert entry["options"]["expires"] < entry["schedule"]
