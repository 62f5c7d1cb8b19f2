"""Celery entry points for analytics: thin, id-based, safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from celery import shared_task
from django.conf import settings

from analytics import services
from shops.models import Shop

logger = logging.getLogger(__name__)

# A burst of syncs and webhooks becomes one refresh this many seconds after the first.
DEBOUNCE_SECONDS = 30
PENDING_KEY = "analytics:refresh-pending:{shop_id}"
PREVIOUS_PREDICTIVE_REUSE = timedelta(hours=24)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(name="analytics.tasks.refresh_shop_later", ignore_result=True)
def refresh_shop_later(shop_id: int) -> bool:
    """Schedule one refresh of the shop's snapshot unless one is already pending; True if scheduled."""
    client = _redis()
    try:
        # The key outlives the countdown so a lost refresh cannot block the next one forever.
        scheduled = bool(client.set(PENDING_KEY.format(shop_id=shop_id), "1", nx=True,
                                    ex=DEBOUNCE_SECONDS + 15 * 60))
    finally:
        client.close()
    if scheduled:
        refresh_shop.apply_async((shop_id,), countdown=DEBOUNCE_SECONDS)
    return scheduled


@shared_task(name="analytics.tasks.refresh_shop", ignore_result=True)
def refresh_shop(shop_id: int) -> None:
    """Recompute today's snapshot with the shop's settings."""
    client = _redis()
    try:
        # Cleared before computing: data arriving during the refresh schedules another one.
        client.delete(PENDING_KEY.format(shop_id=shop_id))
    finally:
        client.close()
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None or shop.state != Shop.State.INSTALLED:
        logger.info("analytics refresh skipped: shop gone or not installed", extra={"shop": shop_id})
        return
    snapshot = services.snapshot_refresh(shop=shop)
    # The pages compare with the previous period: keep its snapshot as fresh as this one's data.
    # That snapshot is also the report of its as-of date, so it carries a predictive block too;
    # the comparison does not show it, so the block is computed at most once a day, not per sync.
    period = timedelta(days=int(snapshot.params.get("period_days", 365)))
    services.snapshot_refresh(shop=shop, as_of=snapshot.as_of - period,
                              predictive_reuse_within=PREVIOUS_PREDICTIVE_REUSE)


@shared_task(name="analytics.tasks.refresh_all", ignore_result=True)
def refresh_all() -> int:
    """Nightly: one refresh task per installed shop (each on its own, so one failure stays local)."""
    ids = list(Shop.objects.installed().values_list("pk", flat=True))
    for shop_id in ids:
        refresh_shop.delay(shop_id)
    return len(ids)
