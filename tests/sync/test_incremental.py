"""Incremental syncs: pages or a bulk operation by the number of changes, then the analytics refresh."""

from __future__ import annotations

import pytest

from sync import services
from sync.models import SyncRun
from tests.sync.conftest import queued
from tests.sync.exact import mismatches


def _backfill(devshop):
    run = services.backfill_create(shop=devshop.shop)
    assert services.backfill_run(run_id=run.pk) == "succeeded", SyncRun.objects.get(pk=run.pk).error


@pytest.mark.parametrize(("switch_at", "mode"), [(10_000, "pages"), (5, "bulk")])
def test_changes_read_by_pages_or_by_a_bulk_operation_end_exact(devshop, transactional_db, settings, switch_at,
                                                                mode):
    _backfill(devshop)
    devshop.live(60)  # no webhook applied: the sync alone must catch up, deletions included
    settings.SYNC_BULK_SWITCH_AT = switch_at
    run = services.incremental_run(shop=devshop.shop)
    assert run is not None
    assert run.status == "succeeded", run.error
    assert run.state["mode"] == mode
    changed = max(run.state["changed_orders"], run.state["changed_customers"])
    assert (changed > switch_at) == (mode == "bulk")
    problems = mismatches(devshop.shop, devshop.truth())
    assert not problems, "\n".join(problems[:30])


def test_a_successful_sync_queues_the_debounced_analytics_refresh(devshop, transactional_db, redis_client):
    _backfill(devshop)
    redis_client.flushdb()
    devshop.live(10)
    run = services.incremental_run(shop=devshop.shop)
    assert run is not None
    assert run.status == "succeeded", run.error
    assert queued(redis_client, "analytics") == [("analytics.tasks.refresh_shop_later", [devshop.shop.pk])]


def test_a_failed_sync_queues_no_refresh(devshop, transactional_db, redis_client):
    _backfill(devshop)
    redis_client.flushdb()
    devshop.faults(revoked_token=True)
    run = services.incremental_run(shop=devshop.shop)
    assert run is not None
    assert run.status == "failed"
    assert queued(redis_client, "analytics") == []


def test_the_refresh_waits_for_the_commit(devshop, transactional_db, redis_client):
    from django.db import transaction

    redis_client.flushdb()
    with transaction.atomic():
        services.analytics_refresh_later(shop_id=devshop.shop.pk)
        assert queued(redis_client, "analytics") == []
    assert queued(redis_client, "analytics") == [("analytics.tasks.refresh_shop_later", [devshop.shop.pk])]
