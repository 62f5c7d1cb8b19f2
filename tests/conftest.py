"""Shared fixtures: a real Celery worker in a subprocess, bound to the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


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
