"""Writes of the sync app."""

from __future__ import annotations

from datetime import datetime

from sync.models import WorkerHeartbeat


def worker_heartbeat_record(*, queue: str, hostname: str, now: datetime) -> WorkerHeartbeat:
    """Upsert the heartbeat row of one queue; replaying it only moves the time forward."""
    beat, _ = WorkerHeartbeat.objects.update_or_create(queue=queue, defaults={"seen_at": now, "hostname": hostname})
    return beat
