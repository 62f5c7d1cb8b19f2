"""A worker killed (SIGKILL) in the middle of a backfill: a new worker resumes it, exactly."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from devstore.testing import DevStore, ShopSpec
from sync.models import Order, SyncRun
from tests.conftest import wait_for
from tests.sync.conftest import app_install, worker_start
from tests.sync.exact import mismatches

pytestmark = pytest.mark.timeout(300)

SPEC = ShopSpec(name="resume", seed=3, customers=2500, months=24, currency="EUR", iana_timezone="Europe/Berlin")


@pytest.fixture
def devstore_one(live_server: Any, settings: Any) -> Iterator[DevStore]:
    ds = DevStore([SPEC], app_url=live_server.url, retry_scale=1e-4).start()
    settings.SHOPIFY_API_BASE_URL = ds.base_url
    previous = os.environ.get("SHOPIFY_API_BASE_URL")
    os.environ["SHOPIFY_API_BASE_URL"] = ds.base_url
    try:
        yield ds
    finally:
        if previous is None:
            os.environ.pop("SHOPIFY_API_BASE_URL", None)
        else:
            os.environ["SHOPIFY_API_BASE_URL"] = previous
        ds.close()


def _orders_phase(shop: Any) -> dict[str, Any]:
    run = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL).first()
    return {} if run is None else run.state.get("phases", {}).get("orders", {})


def test_killed_worker_mid_backfill_resumes_without_duplicates_or_gaps(devstore_one: DevStore, client: Any,
                                                                       redis_client: Any) -> None:
    from sync.tasks import backfill_resume_stale

    ds = devstore_one
    redis_client.flushdb()
    # Small chunks so the kill lands between two committed chunks of the orders file.
    env = {"TENURE_SYNC_CHUNK_BYTES": "32768"}
    first = worker_start("resume-a", env)
    second = None
    try:
        shop = app_install(client, ds, SPEC.domain)
        wait_for(lambda: int(_orders_phase(shop).get("lines", 0)) > 0, timeout=120, interval=0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        run = SyncRun.objects.get(shop=shop, kind=SyncRun.Kind.BACKFILL)
        op_before = run.state["phases"]["orders"]["op"]
        lines_before = run.state["phases"]["orders"]["lines"]
        assert run.status == SyncRun.Status.RUNNING
        truth = ds.ground_truth(SPEC.domain)
        assert 0 < Order.objects.filter(shop=shop).count() < len(truth.orders)  # really cut in the middle

        second = worker_start("resume-b", env)
        backfill_resume_stale.delay(0)
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).status == SyncRun.Status.SUCCEEDED, timeout=120)
        run.refresh_from_db()
        assert run.state["resumes"] == 1
        assert run.state["phases"]["orders"]["op"] == op_before  # the same bulk operation, resumed
        assert run.state["phases"]["orders"]["lines"] > lines_before
        # Each line counted once: seen == lines of both files.
        assert run.objects_seen == run.state["phases"]["orders"]["lines"] + run.state["phases"]["customers"]["lines"]
        problems = mismatches(shop, ds.store(SPEC.domain).ground_truth())
        assert not problems, "\n".join(problems[:40])
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
