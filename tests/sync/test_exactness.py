"""End to end: install, backfill, live trading with faulty webhooks, one incremental sync: DB == devstore.

Everything runs through the real pieces: the app's install view, the webhook endpoint on a live
server, a Celery worker subprocess, devstore over HTTP with injected 5xx and throttling.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from devstore.testing import DevStore, ShopSpec
from shops.models import WebhookEvent
from sync.models import SyncRun
from tests.conftest import wait_for
from tests.sync.conftest import app_install
from tests.sync.exact import mismatches

pytestmark = pytest.mark.timeout(300)

SPECS = [
    ShopSpec(name="exact-nz", seed=11, customers=150, months=20, currency="NZD", iana_timezone="Pacific/Auckland"),
    ShopSpec(name="exact-jp", seed=5, customers=80, months=14, currency="JPY", iana_timezone="Asia/Tokyo"),
]
BACKFILL_ERRORS = 3
FAULTS = {"error_rate": 0.05, "throttle_bucket_size": 400, "throttle_restore_rate": 200,
          "webhook_duplicate_rate": 0.15, "webhook_out_of_order_rate": 0.2, "webhook_reorder_delay_ms": 150,
          "webhook_drop_rate": 0.1}


@pytest.fixture
def devstore_live(live_server: Any, settings: Any) -> Iterator[DevStore]:
    ds = DevStore(SPECS, app_url=live_server.url, retry_scale=1e-4).start()
    settings.SHOPIFY_API_BASE_URL = ds.base_url
    settings.APP_URL = live_server.url
    previous = os.environ.get("SHOPIFY_API_BASE_URL")
    os.environ["SHOPIFY_API_BASE_URL"] = ds.base_url  # for the worker subprocesses
    try:
        yield ds
    finally:
        if previous is None:
            os.environ.pop("SHOPIFY_API_BASE_URL", None)
        else:
            os.environ["SHOPIFY_API_BASE_URL"] = previous
        ds.close()


def _run_done(shop: Any, kind: str) -> SyncRun | None:
    run = SyncRun.objects.filter(shop=shop, kind=kind).order_by("-created_at").first()
    if run is not None and run.status in (SyncRun.Status.FAILED, SyncRun.Status.CANCELLED):
        pytest.fail(f"{kind} {run.status}: {run.error}")
    return run if run is not None and run.status == SyncRun.Status.SUCCEEDED else None


def _webhooks_settled(ds: DevStore) -> bool:
    ds.wait_webhooks(timeout=30)
    return not WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).exists()


def test_backfill_live_trading_and_one_incremental_equal_ground_truth(devstore_live: DevStore, client: Any,
                                                                      sync_worker: Any) -> None:
    from sync.tasks import incremental_sync

    ds = devstore_live
    shops = []
    for spec in SPECS:
        shops.append(app_install(client, ds, spec.domain))
        # The backfill the install started rides out 5xx too: the next three Admin API requests
        # of the shop (its bulk operation, polls or result download) fail.
        ds.set_faults(spec.domain, error_next=BACKFILL_ERRORS, error_status=502)
    for shop in shops:
        run = wait_for(lambda shop=shop: _run_done(shop, SyncRun.Kind.BACKFILL), timeout=120)
        assert run.state["client"]["retries"] >= BACKFILL_ERRORS, run.state["client"]
        assert not mismatches(shop, ds.store(shop.domain).ground_truth())
    for spec in SPECS:
        ds.set_faults(spec.domain, error_next=0, error_status=None, **FAULTS)
    for _ in range(4):
        for spec in SPECS:
            ds.live_step(spec.domain, events=40)
    wait_for(lambda: _webhooks_settled(ds), timeout=90, interval=0.5)
    delivered = ds.deliveries()
    states = {d["state"] for d in delivered}
    assert "dropped" in states, states  # the faults really happened
    for shop in shops:
        # Webhooks alone cannot be exact (some were dropped): the incremental sync closes the gap.
        before = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.INCREMENTAL).count()
        incremental_sync.delay(shop.pk)
        wait_for(lambda shop=shop, before=before: SyncRun.objects.filter(
            shop=shop, kind=SyncRun.Kind.INCREMENTAL).count() > before and _run_done(shop, SyncRun.Kind.INCREMENTAL),
            timeout=120)
    for shop in shops:
        problems = mismatches(shop, ds.store(shop.domain).ground_truth())
        assert not problems, "\n".join(problems[:40])
