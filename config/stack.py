"""Run the app's processes together (web, worker, beat) and stop them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config.errors import StartupError
from config.services import VAR_DIR, port_open

BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    """Child processes started for the demo; `stop()` ends every one of them."""

    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else None  # noqa: SIM115 - owned by the child for its life
        proc = subprocess.Popen(  # noqa: S603
            list(argv), cwd=BASE_DIR, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StartupError(f"{name} exited with code {proc.returncode}; see {VAR_DIR / name}.log")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def ensure_port_free(port: int, *, what: str) -> None:
    if port_open("127.0.0.1", port):
        raise StartupError(f"port {port} is already in use, so the {what} cannot listen there: "
                           f"stop what uses it or set PORT to another port")


def web_argv(port: int) -> list[str]:
    workers = os.environ.get("TENURE_WEB_WORKERS") or "2"
    threads = os.environ.get("TENURE_WEB_THREADS") or "4"
    argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", workers, "--threads", threads, "--worker-class", "gthread",
            "--graceful-timeout", "5", "--timeout", "60"]
    # The access log costs ~0.25 ms of CPU per request (a quarter of a webhook's budget); opt in.
    if os.environ.get("TENURE_ACCESS_LOG") == "1":
        argv += ["--access-logfile", "-"]
    return argv


# The demo's Celery workers (name, queues, concurrency): webhooks never wait behind a backfill,
# which has a worker of its own; two pool processes for webhooks let a report refresh run beside
# them. One pool process for sync and backfill keeps memory modest (one demo shop syncs one
# thing at a time anyway). docs/DEPLOY.md scales the same split out per queue.
WORKERS = (
    ("webhooks", "default,webhooks,analytics", 2),
    ("sync", "sync,backfill", 1),
)


def worker_argv(queues: str, *, name: str, concurrency: int = 2) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "-Q", queues,
            "--concurrency", str(concurrency), "-n", f"{name}@%h"]


def beat_argv() -> list[str]:
    schedule = VAR_DIR / "celerybeat-schedule"
    return [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO", "-s", str(schedule)]


def wait_http_ok(url: str, *, seconds: float, stack: Stack) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise StartupError(f"{url} did not answer 200 within {seconds:.0f} s; see {VAR_DIR / 'web.log'}")


def preflight() -> None:
    """Fail in one line, before starting anything, when PostgreSQL or Redis cannot be reached."""
    from config.startup import database_check, redis_check

    database_check()
    redis_check()
