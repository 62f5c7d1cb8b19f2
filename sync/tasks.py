"""Celery interfaces of the sync app: parse arguments, call a service.

Queues (config/settings/base.py routes): `backfill_*` tasks run on the `backfill` queue, the
rest on `sync`, so a long backfill never delays another shop's incremental sync or a webhook.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from shops.models import Shop
from sync import services
from sync.client import ShopifyTransientError

logger = logging.getLogger(__name__)


@shared_task(name="sync.tasks.worker_heartbeat", ignore_result=True, expires=120)
def worker_heartbeat(queue: str = "sync") -> None:
    """Beat sends this to each queue; the row it writes proves that queue's worker runs."""
    from celery import current_task

    hostname = (current_task.request.hostname or "") if current_task else ""
    services.worker_heartbeat_record(queue=queue, hostname=hostname, now=timezone.now())


@shared_task(name="sync.tasks.backfill_start", ignore_result=True)
def backfill_start(shop_id: int, full: bool = False) -> int | None:
    """Create (or find the unfinished) backfill of a shop and run it on the backfill queue."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None or shop.state != Shop.State.INSTALLED:
        logger.info("backfill_start: shop %s gone or not installed", shop_id)
        return None
    run = services.backfill_create(shop=shop, full=full)
    backfill_run.delay(run.pk)
    return run.pk


@shared_task(name="sync.tasks.backfill_run", bind=True, ignore_result=True, max_retries=8,
             soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def backfill_run(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return services.backfill_run(run_id=run_id)
    except ShopifyTransientError as exc:
        # Resumes from the committed chunk.
        raise self.retry(exc=exc, countdown=min(600, 15 * 2 ** self.request.retries)) from exc


@shared_task(name="sync.tasks.backfill_refund_lines", bind=True, ignore_result=True, max_retries=8)
def backfill_refund_lines(self, shop_id: int) -> str:  # type: ignore[no-untyped-def]
    """One slice of reading refund line items a bulk file could not carry; queues the next slice."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None or shop.state != Shop.State.INSTALLED or shop.paused_reason:
        return "skipped"
    try:
        outcome = services.refund_lines_run(shop=shop)
    except ShopifyTransientError as exc:
        raise self.retry(exc=exc, countdown=min(600, 15 * 2 ** self.request.retries)) from exc
    if outcome == "more":
        backfill_refund_lines.delay(shop_id)
    return outcome


@shared_task(name="sync.tasks.backfill_resume_stale", ignore_result=True, expires=55)
def backfill_resume_stale(older_than_s: float = 120.0) -> int:
    """Re-enqueue backfills whose worker died (no lock held, no progress for a while)."""
    ids = services.backfill_stale(older_than=timedelta(seconds=older_than_s))
    for run_id in ids:
        backfill_run.delay(run_id)
    return len(ids)


@shared_task(name="sync.tasks.incremental_sync", bind=True, ignore_result=True, max_retries=3)
def incremental_sync(self, shop_id: int) -> str:  # type: ignore[no-untyped-def]
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None or shop.state != Shop.State.INSTALLED or shop.paused_reason:
        return "skipped"
    try:
        run = services.incremental_run(shop=shop)
    except ShopifyTransientError as exc:
        raise self.retry(exc=exc, countdown=60) from exc
    return "locked or no backfill yet" if run is None else str(run.status)


@shared_task(name="sync.tasks.incremental_sync_all", ignore_result=True)
def incremental_sync_all() -> int:
    """Beat: one small task per installed shop (bounded work per task)."""
    ids = services.installed_shop_ids()
    expires = int(services.sync_interval().total_seconds())
    for shop_id in ids:
        incremental_sync.apply_async((shop_id,), expires=expires)
    return len(ids)


@shared_task(name="sync.tasks.reconcile_shop", ignore_result=True, soft_time_limit=3600, time_limit=3700)
def reconcile_shop(shop_id: int) -> str:
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None or shop.state != Shop.State.INSTALLED or shop.paused_reason:
        return "skipped"
    run = services.reconcile_run(shop=shop)
    return "locked" if run is None else str(run.status)


@shared_task(name="sync.tasks.reconcile_all", ignore_result=True)
def reconcile_all() -> int:
    ids = services.installed_shop_ids()
    for shop_id in ids:
        reconcile_shop.apply_async((shop_id,), expires=12 * 3600)
    return len(ids)



@shared_task(name="sync.tasks.paused_shops_probe", ignore_result=True, expires=290)
def paused_shops_probe() -> int:
    """Beat: one small task per paused shop whose next probe is due."""
    ids = services.paused_shops_due()
    for shop_id in ids:
        shop_probe.apply_async((shop_id,), expires=290)
    return len(ids)


@shared_task(name="sync.tasks.shop_probe", ignore_result=True)
def shop_probe(shop_id: int) -> str:
    """Ask Shopify about one paused shop; once it answers, its syncs resume at once."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None or shop.state != Shop.State.INSTALLED:
        return "skipped"
    outcome = services.shop_pause_probe(shop=shop)
    if outcome is None:
        return "not due"
    if not outcome:
        return "still paused"
    if services.backfill_needed(shop=shop):
        backfill_start.delay(shop_id)
    else:
        incremental_sync.delay(shop_id)
    return "resumed"
