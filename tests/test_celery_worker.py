"""A real Celery worker (separate process, Redis broker) runs a task that writes to PostgreSQL."""

import pytest

from sync.models import WorkerHeartbeat
from sync.tasks import worker_heartbeat
from tests.conftest import wait_for


@pytest.mark.integration
def test_worker_runs_task_that_writes_to_database(celery_worker_process) -> None:
    assert not WorkerHeartbeat.objects.exists()
    worker_heartbeat.apply_async(args=("webhooks",), queue="webhooks")
    beat = wait_for(lambda: WorkerHeartbeat.objects.filter(queue="webhooks").first(), timeout=30)
    assert beat.hostname.startswith("test-")
    # Idempotent: a replay moves the time, never adds a row.
    first_seen = beat.seen_at
    worker_heartbeat.apply_async(args=("webhooks",), queue="webhooks")
    wait_for(lambda: WorkerHeartbeat.objects.get(queue="webhooks").seen_at > first_seen, timeout=30)
    assert WorkerHeartbeat.objects.count() == 1
