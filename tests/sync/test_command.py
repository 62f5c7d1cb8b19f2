import re
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sync.models import SyncRun
from sync.progress import progress_line
from tests.sync.exact import mismatches

# One redraw of the bar (sync/progress.py, not a tty: one line per change).
BAR = re.compile(r"^backfill \[[#.]{30}\] (?P<pct>[ \d.]{5}|  \.\.\.)%  (?P<seen>[\d,]+)(?:/(?P<count>[\d,]+))? read, "
                 r"(?P<written>[\d,]+) written(?:  ETA (?P<eta_m>\d+):(?P<eta_s>\d\d))?(?:  (?P<phase>\w+))?"
                 r"  (?P<status>\w+)$")


def test_sync_command_backfills_with_a_progress_bar_then_syncs_incrementally(devshop, transactional_db):
    out = StringIO()
    call_command("sync", "acme", stdout=out)
    text = out.getvalue()
    assert "backfill [" in text
    assert "100.0%" in text
    assert "backfill done" in text
    assert not mismatches(devshop.shop, devshop.truth())
    devshop.live(30)
    out = StringIO()
    call_command("sync", "acme.myshopify.com", stdout=out)
    assert "incremental done" in out.getvalue()
    assert not mismatches(devshop.shop, devshop.truth())
    assert SyncRun.objects.filter(kind="incremental", status="succeeded").count() == 1


def test_sync_command_full_runs_a_new_full_backfill_with_percent_and_eta(devshop, transactional_db):
    call_command("sync", "acme", stdout=StringIO())
    (first,) = SyncRun.objects.filter(shop=devshop.shop, kind="backfill")
    assert first.status == "succeeded"
    assert first.state["full"] is False
    truth = devshop.truth()
    customers = len(truth["customers"])
    total = customers + len(truth["orders"])  # one JSONL line each (refunds are inside their order's line)

    # Every devstore request (bulk polls and result downloads) takes 1.5 s: the bar, redrawn every
    # 0.5 s, is seen between the customers being written and the orders file arriving.
    devshop.faults(slow_ms=1500)
    out = StringIO()
    call_command("sync", "acme", "--full", stdout=out)

    # A second backfill, not an incremental sync: the whole shop is read again.
    runs = list(SyncRun.objects.filter(shop=devshop.shop).order_by("created_at"))
    assert [(r.kind, r.status) for r in runs] == [("backfill", "succeeded"), ("backfill", "succeeded")]
    full = runs[1]
    assert full.pk != first.pk
    assert full.state["full"] is True
    assert full.objects_seen == full.object_count == total
    assert full.started_at > first.finished_at
    assert not mismatches(devshop.shop, truth)

    lines = out.getvalue().splitlines()
    assert lines[-1] == f"backfill done: {total + len(truth['refunds']):,} rows written"  # refunds are rows
    bars = [BAR.match(line) for line in lines[:-1]]
    assert all(bars), lines
    # The last redraw is the finished run, at 100%, with no ETA left.
    final = bars[-1]
    assert (final["status"], final["pct"], final["seen"], final["count"]) == (
        "succeeded", "100.0", f"{total:,}", f"{total:,}")
    assert final["eta_m"] is None
    # While the orders file is on its way: the customers are read, the percent is of both
    # phases' objectCount, and an ETA from the rate so far is shown.
    waiting = [b for b in bars if b["status"] == "running" and b["seen"] == f"{customers:,}"
               and b["count"] == f"{total:,}"]
    assert waiting, lines
    assert waiting[0]["pct"] == f"{100 * customers / total:5.1f}"
    assert waiting[0]["phase"] == "orders"
    assert waiting[0]["eta_m"] is not None
    assert int(waiting[0]["eta_m"]) * 60 + int(waiting[0]["eta_s"]) > 0


def _running(*, seen, count, elapsed_s, now, status=SyncRun.Status.RUNNING):
    return SyncRun(kind=SyncRun.Kind.BACKFILL, status=status, started_at=now - timedelta(seconds=elapsed_s),
                   objects_seen=seen, objects_written=seen, object_count=count,
                   state={"phases": {"customers": {"done": True}, "orders": {}}})


def test_progress_line_eta_is_the_remaining_objects_at_the_rate_so_far(monkeypatch):
    now = timezone.now()
    monkeypatch.setattr("sync.selectors.timezone", SimpleNamespace(now=lambda: now))
    # 250 of 1,000 after 10 s: 25/s, 750 left -> 30 s; the bar is int(30 * 25%) = 7 cells.
    line = progress_line(_running(seen=250, count=1000, elapsed_s=10, now=now))
    assert line == ("backfill [#######.......................]  25.0%  250/1,000 read, 250 written"
                    "  ETA 0:30  orders  running")
    # 100 of 1,000 after 20 s: 5/s, 900 left -> 180 s = 3:00 (and 10.0%, 3 cells).
    assert progress_line(_running(seen=100, count=1000, elapsed_s=20, now=now)).startswith(
        "backfill [###...........................]  10.0%  100/1,000 read")
    assert "  ETA 3:00  " in progress_line(_running(seen=100, count=1000, elapsed_s=20, now=now))
    # 1 of 3,000 after 1 s: 2,999 s left = 49 min 59 s.
    assert "  ETA 49:59  " in progress_line(_running(seen=1, count=3000, elapsed_s=1, now=now))
    # Nothing read yet, no objectCount yet, or finished: no ETA.
    assert "ETA" not in progress_line(_running(seen=0, count=1000, elapsed_s=10, now=now))
    unknown = progress_line(_running(seen=0, count=None, elapsed_s=10, now=now))
    assert unknown == "backfill [..............................]   ...%  0 read, 0 written  orders  running"
    done = progress_line(_running(seen=1000, count=1000, elapsed_s=40, now=now, status=SyncRun.Status.SUCCEEDED))
    assert done == ("backfill [##############################] 100.0%  1,000/1,000 read, 1,000 written"
                    "  orders  succeeded")


def test_no_percent_until_every_planned_phase_is_counted(monkeypatch):
    """Customers done and counted, the orders operation not yet: 118 of 118 is not 100% of the run."""
    now = timezone.now()
    monkeypatch.setattr("sync.selectors.timezone", SimpleNamespace(now=lambda: now))
    run = _running(seen=118, count=118, elapsed_s=10, now=now)
    run.state = {"planned": ["customers", "orders"],
                 "phases": {"customers": {"done": True, "object_count": 118}, "orders": {}}}
    assert progress_line(run) == ("backfill [..............................]   ...%  118/118 read, 118 written"
                                  "  orders  running")
    run.state["phases"]["orders"] = {"object_count": 289}
    run.object_count = 118 + 289
    assert progress_line(run).startswith("backfill [########......................]  29.0%  118/407 read")


def test_sync_command_refuses_unknown_shop(transactional_db):
    with pytest.raises(CommandError, match="no shop"):
        call_command("sync", "nobody")
