"""Celery interfaces of the shops app (queue: webhooks)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from shops import services

logger = logging.getLogger(__name__)


@shared_task(name="shops.tasks.webhook_process", ignore_result=True, acks_late=True)
def webhook_process(event_id: int) -> None:
    """Run one recorded delivery's handler; a replay or a race with the sweep is a no-op."""
    services.webhook_event_process(event_id=event_id)


@shared_task(name="shops.tasks.webhook_process_batch", ignore_result=True, acks_late=True)
def webhook_process_batch(event_ids: list[int]) -> None:
    """What the endpoint's publisher sends: the ids committed since its last message."""
    for event_id in event_ids:
        services.webhook_event_process(event_id=event_id)


@shared_task(name="shops.tasks.webhook_sweep", ignore_result=True, expires=55)
def webhook_sweep() -> None:
    """Beat, every minute: deliveries whose task never ran (Redis was down, worker lost)."""
    done = services.webhook_events_sweep(older_than=timedelta(seconds=30))
    if done:
        logger.info("webhook sweep processed %d left-over deliveries", done)
