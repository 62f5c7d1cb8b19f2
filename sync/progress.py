"""A text progress bar for a SyncRun (the `sync` and `demo` commands)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sync.models import SyncRun
from sync.selectors import run_progress

WIDTH = 30


class Out(Protocol):
    def write(self, msg: str, /) -> object: ...
    def flush(self) -> object: ...
    def isatty(self) -> bool: ...


def progress_line(run: SyncRun) -> str:
    p = run_progress(run=run)
    percent = p["percent"]
    filled = int(WIDTH * (percent or 0) / 100)
    bar = "#" * filled + "." * (WIDTH - filled)
    total = f"/{p['object_count']:,}" if p["object_count"] else ""
    eta = ""
    if p["eta_s"] is not None:
        minutes, seconds = divmod(int(p["eta_s"]), 60)
        eta = f"  ETA {minutes}:{seconds:02d}"
    pct = f"{percent:5.1f}%" if percent is not None else "  ...%"
    phase = f"  {p['phase']}" if p["phase"] else ""
    limited = "  (history limited to 60 days: no read_all_orders)" if p["history_limited"] else ""
    return (f"{run.kind} [{bar}] {pct}  {p['objects_seen']:,}{total} read, {p['objects_written']:,} written"
            f"{eta}{phase}  {p['status']}{limited}")


def progress_watch(*, run_id: int, out: Out, every: float = 0.5, timeout: float = 24 * 3600,
                   alive: Callable[[], None] | None = None) -> SyncRun:
    """Redraw the bar until the run finishes; returns the finished run."""
    tty = out.isatty()
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        run = SyncRun.objects.get(pk=run_id)
        line = progress_line(run)
        if tty:
            out.write("\r" + line.ljust(len(last)))
        elif line != last:
            out.write(line + "\n")
        out.flush()
        last = line
        if run.status not in (SyncRun.Status.PENDING, SyncRun.Status.RUNNING):
            if tty:
                out.write("\n")
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"sync run {run_id} still {run.status}")
        if alive is not None:
            alive()
        time.sleep(every)
