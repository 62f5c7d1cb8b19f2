"""Tasks land on their own queues in Redis, so a long backfill never delays a webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from analytics.tasks import refresh_shop
from config.celery import app
from shops.tasks import webhook_process, webhook_sweep
from sync.tasks import backfill_run, backfill_start, incremental_sync, reconcile_shop

QUEUES = ("default", "webhooks", "sync", "backfill", "analytics")


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*QUEUES)
    yield client
    client.delete(*QUEUES)


def queued(client: redis.Redis) -> dict[str, list[str]]:
    """Task names waiting in each queue's Redis list (kombu's Redis transport keeps one per queue)."""
    return {queue: [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]
            for queue in QUEUES if client.llen(queue)}


def test_each_task_is_published_to_its_queue(broker: redis.Redis) -> None:
    backfill_start.delay(1)
    backfill_run.delay(1)
    webhook_process.delay(1)
    webhook_sweep.delay()
    refresh_shop.delay(1)
    incremental_sync.delay(1)
    reconcile_shop.delay(1)
    assert queued(broker) == {
        "backfill": ["sync.tasks.backfill_run", "sync.tasks.backfill_start"],  # LPUSH: newest first
        "webhooks": ["shops.tasks.webhook_sweep", "shops.tasks.webhook_process"],
        "analytics": ["analytics.tasks.refresh_shop"],
        "sync": ["sync.tasks.reconcile_shop", "sync.tasks.incremental_sync"],
    }


def test_every_registered_task_has_a_queue_a_worker_listens_to() -> None:
    app.loader.import_default_modules()
    ours = [name for name in app.tasks if name.split(".")[0] in {"shops", "sync", "analytics"}]
    assert ours
    for name in ours:
        route = app.amqp.router.route({}, name)
        assert route["queue"].name in QUEUES[1:], name


def test_beat_entries_name_a_real_queue() -> None:
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["options"]["queue"] in QUEUES[1:], name  # type: ignore[index]
