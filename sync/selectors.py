"""Reads of the sync app (for the Data page, the `sync` command and /healthz)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from shops.models import Shop, WebhookEvent
from sync.models import SyncRun


def run_progress(*, run: SyncRun) -> dict[str, Any]:
    """Seen/written, percent of `objectCount`, and an ETA from the rate so far."""
    percent = None
    eta_s = None
    state = run.state if isinstance(run.state, dict) else {}
    phases = state.get("phases", {})
    # A planned phase with no objectCount yet would make the total too small (100% halfway
    # through a backfill): no percent until each has one (or is done).
    uncounted = [name for name in state.get("planned", [])
                 if not (phases.get(name, {}).get("object_count") or phases.get(name, {}).get("done"))]
    if run.object_count and (not uncounted or run.status != SyncRun.Status.RUNNING):
        percent = min(100.0, 100.0 * run.objects_seen / run.object_count)
        started = run.started_at
        if started and run.objects_seen and run.status == SyncRun.Status.RUNNING:
            elapsed = max(0.001, (timezone.now() - started).total_seconds())
            rate = run.objects_seen / elapsed
            eta_s = max(0.0, (run.object_count - run.objects_seen) / rate) if rate > 0 else None
    phase = next((name for name, ph in phases.items() if not ph.get("done")), None)
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "phase": phase,
        "objects_seen": run.objects_seen,
        "objects_written": run.objects_written,
        "object_count": run.object_count,
        "percent": percent,
        "eta_s": eta_s,
        "history_limited": run.history_limited,
        "error": run.error,
        # Records left out for holding a value Shopify cannot send: {"count", "examples"}.
        "rejected": state.get("rejected") or None,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def runs_open(*, shop: Shop) -> dict[str, SyncRun]:
    """The newest pending or running backfill and refund-line read of the shop, by kind (one query)."""
    out: dict[str, SyncRun] = {}
    for run in (SyncRun.objects.filter(shop=shop, status__in=[SyncRun.Status.PENDING, SyncRun.Status.RUNNING],
                                       kind__in=[SyncRun.Kind.BACKFILL, SyncRun.Kind.REFUND_LINES])
                .order_by("-created_at")):
        out.setdefault(run.kind, run)
    return out


def sync_status(*, shop: Shop) -> dict[str, Any]:
    """Last and next sync, running backfill progress, history limit, recent webhook health."""
    last = (SyncRun.objects.filter(shop=shop, status=SyncRun.Status.SUCCEEDED,
                                   kind__in=[SyncRun.Kind.BACKFILL, SyncRun.Kind.INCREMENTAL, SyncRun.Kind.RECONCILE])
            .order_by("-finished_at").first())
    last_backfill = (SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL)
                     .order_by("-created_at").first())
    open_runs = runs_open(shop=shop)
    running = open_runs.get(SyncRun.Kind.BACKFILL)
    refund_lines = open_runs.get(SyncRun.Kind.REFUND_LINES)
    every: timedelta = settings.SYNC_INCREMENTAL_EVERY
    next_at: datetime | None = (last.finished_at + every) if last and last.finished_at else None
    day_ago = timezone.now() - timedelta(days=1)
    hooks = WebhookEvent.objects.filter(shop=shop, received_at__gte=day_ago).aggregate(
        received=Count("id"),
        processed=Count("id", filter=Q(status=WebhookEvent.Status.PROCESSED)),
        failed=Count("id", filter=Q(status=WebhookEvent.Status.FAILED)),
        rejected=Count("id", filter=Q(status=WebhookEvent.Status.REJECTED)),
        pending=Count("id", filter=Q(status=WebhookEvent.Status.RECEIVED)),
    )
    last_hook = WebhookEvent.objects.filter(shop=shop).order_by("-received_at").values_list(
        "received_at", flat=True).first()
    return {
        "problem": sync_problem(shop=shop),
        "last_sync": run_progress(run=last) if last else None,
        "last_sync_at": last.finished_at if last else None,
        "next_sync_at": next_at,
        "backfill": run_progress(run=running) if running else None,
        "refund_lines": run_progress(run=refund_lines) if refund_lines else None,
        "backfill_done": bool(last_backfill and last_backfill.status == SyncRun.Status.SUCCEEDED),
        "history_limited": bool(last_backfill and last_backfill.history_limited)
        or "read_all_orders" not in shop.granted_scopes,
        "webhooks_24h": {**hooks, "last_received_at": last_hook},
        "needs_reauth_reason": shop.needs_reauth_reason,
        "paused_reason": shop.paused_reason,
        "as_of": time.time(),
    }


KIND_WORDS: dict[str, str] = {
    SyncRun.Kind.BACKFILL: "Importing the order history",
    SyncRun.Kind.REFUND_LINES: "Reading refund line items",
    SyncRun.Kind.INCREMENTAL: "The last sync",
    SyncRun.Kind.RECONCILE: "The check against Shopify",
}


def sync_problem(*, shop: Shop) -> dict[str, Any] | None:
    """What Shopify last refused, in words, while no run of the same kind has succeeded since: the
    newest run that failed, or is running and retrying after an error (one query)."""
    healed = SyncRun.objects.filter(shop=shop, kind=OuterRef("kind"), status=SyncRun.Status.SUCCEEDED,
                                    created_at__gt=OuterRef("created_at"))
    run = (SyncRun.objects.filter(shop=shop).exclude(error="").annotate(healed=Exists(healed))
           .order_by("-created_at").first())
    if run is None or run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.CANCELLED) or run.healed:
        return None
    failed = run.status == SyncRun.Status.FAILED
    return {
        "kind": run.kind,
        "what": KIND_WORDS.get(run.kind, "A sync"),
        "state": "stopped" if failed else "is retrying",
        "failed": failed,
        "error": run.error,
        "at": run.finished_at or run.started_at or run.created_at,
    }
