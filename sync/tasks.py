"""Celery interfaces of the sync app: parse arguments, call a service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from sync import services


@shared_task(name="sync.tasks.worker_heartbeat", ignore_result=True, expires=120)
def worker_heartbeat(queue: str = "sync") -> None:
    """Beat sends this to each queue; the row it writes proves that queue's worker runs."""
    from celery import current_task

    hostname = (current_task.request.hostname or "") if current_task else ""
    services.worker_heartbeat_record(queue=queue, hostname=hostname, now=timezone.now())
