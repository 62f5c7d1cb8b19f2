"""Shared fixtures: a real Celery worker in a subprocess, bound to the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
# Every Admin GraphQL request devstore receives during the run (devstore.journal), read by the
# Shopify guard at the end of the session (tests/shopify_guard.py).
JOURNAL = ROOT / "var" / f"shopify-requests-{os.getpid()}.jsonl"


def pytest_configure(config: pytest.Config) -> None:
    JOURNAL.parent.mkdir(parents=True, exist_ok=True)
    JOURNAL.unlink(missing_ok=True)
    os.environ["DEVSTORE_JOURNAL"] = str(JOURNAL)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when the app sent any document a live store would refuse, whatever devstore said."""
    from tests.shopify_guard import journal_problems

    checked, problems = journal_problems(JOURNAL)
    JOURNAL.unlink(missing_ok=True)
    session.config.stash[_GUARD] = (checked, problems)
    if problems and session.exitstatus == 0:
        session.exitstatus = 1


_GUARD = pytest.StashKey[tuple[int, dict[str, list[str]]]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    checked, problems = config.stash.get(_GUARD, (0, {}))
    if not checked:
        return
    terminalreporter.section("Shopify guard")
    if not problems:
        terminalreporter.write_line(f"{checked} distinct Admin GraphQL requests the app sent: every one valid on "
                                    "Shopify's real schema, its bulk rules and its cost cap")
        return
    terminalreporter.write_line(f"{len(problems)} document(s) the app sent would be refused by a live store:", red=True)
    for document, said in problems.items():
        terminalreporter.write_line(f"- {document}")
        for line in said:
            terminalreporter.write_line(f"    {line}")


def test_database_url() -> str:
    """A libpq URL for the test database pytest-django created (host may be a socket dir)."""
    s = connection.settings_dict
    from urllib.parse import quote

    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or "5432"
    user = quote(s.get("USER") or "postgres")
    password = quote(s.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        return f"postgres://{auth}/{s['NAME']}?host={quote(host, safe='')}&port={port}"
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def celery_worker_process(transactional_db: None, redis_client: redis.Redis) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery worker` as a separate process on every queue, against the test DB and real Redis."""
    # Start from an empty broker DB so leftovers of another run are not consumed here.
    redis_client.flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "TENURE_TEST_WORKER": "1",
    }
    log = open(ROOT / "var" / "test-worker.log", "wb") if (ROOT / "var").is_dir() else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "-Q", "default,webhooks,sync,backfill,analytics", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-n", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        from config.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early with code {proc.returncode}")
            replies = app.control.ping(timeout=0.5)
            if any(f"test-{os.getpid()}@" in name for reply in replies for name in reply):
                break
        else:
            raise RuntimeError("celery worker did not come up within 60 s")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll until `predicate()` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")
