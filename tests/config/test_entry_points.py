"""Every long-running entry point fails in one line, never a traceback, and exits non-zero.

gunicorn (config.wsgi via gunicorn.conf.py), the Celery worker and beat, each started as the
operator would start them, with production settings: a missing variable, an unreachable
PostgreSQL and an unreachable Redis.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests import conftest
from tests.config.test_settings import FULL

ROOT = Path(__file__).resolve().parents[2]
DEAD_DATABASE = "postgres://postgres@127.0.0.1:1/nothing"
DEAD_REDIS = "redis://127.0.0.1:1/0"
# gunicorn's own progress lines ("[2026-...] [pid] [INFO] Starting gunicorn ...") are not errors.
GUNICORN_INFO = re.compile(r"^\[[^]]+\] \[\d+\] \[INFO\] ")


def entry_points(tmp_path: Path) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    return {
        "gunicorn": [str(bin_dir / "gunicorn"), "config.wsgi:application", "--bind", "127.0.0.1:0",
                     "--workers", "1", "--no-control-socket"],
        "worker": [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                   "--without-heartbeat", "--without-gossip", "--without-mingle", "-Q", "default"],
        "beat": [sys.executable, "-m", "celery", "-A", "config", "beat", "-s", str(tmp_path / "beat-schedule")],
    }


def start(argv: list[str], env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in FULL}
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    # A process that ignored the problem would keep running (or respawning): the timeout fails the test.
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # noqa: S603


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip() and not GUNICORN_INFO.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tenure: error: "), lines[0]
    return lines[0]


def reachable() -> dict[str, str]:
    return {**FULL, "DATABASE_URL": conftest.test_database_url(), "REDIS_URL": settings.REDIS_URL}


@pytest.mark.parametrize(("name", "missing"), [("gunicorn", "APP_URL"), ("worker", "ALLOWED_HOSTS"),
                                               ("beat", "TOKEN_ENCRYPTION_KEY")])
def test_missing_setting_is_one_line(name: str, missing: str, tmp_path: Path) -> None:
    env = {k: v for k, v in reachable().items() if k != missing}
    line = the_error_line(start(entry_points(tmp_path)[name], env))
    assert f"missing required setting {missing}" in line


@pytest.mark.parametrize("name", ["gunicorn", "worker", "beat"])
def test_unreachable_database_is_one_line(name: str, tmp_path: Path) -> None:
    line = the_error_line(start(entry_points(tmp_path)[name], {**reachable(), "DATABASE_URL": DEAD_DATABASE}))
    assert "cannot reach the database at 127.0.0.1:1/nothing" in line
    assert "DATABASE_URL" in line


@pytest.mark.parametrize("name", ["gunicorn", "worker", "beat"])
def test_unreachable_redis_is_one_line(name: str, tmp_path: Path) -> None:
    line = the_error_line(start(entry_points(tmp_path)[name], {**reachable(), "REDIS_URL": DEAD_REDIS}))
    assert "cannot reach Redis at 127.0.0.1:1" in line
    assert "REDIS_URL" in line


def test_gunicorn_without_its_config_file_stops_instead_of_respawning(tmp_path: Path) -> None:
    """Run with another config file, the worker's own check still stops the master (exit 3)."""
    conf = tmp_path / "other.conf.py"
    conf.write_text("")
    env = {k: v for k, v in reachable().items() if k != "ALLOWED_HOSTS"}
    result = start([*entry_points(tmp_path)["gunicorn"], "-c", str(conf)], env)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tenure: error: ")]
    assert len(errors) == 1, result.stderr
    assert "ALLOWED_HOSTS" in errors[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthz(port: int) -> int | None:
    """/healthz's status as a proxy would ask it (the production host, HTTPS forwarded), None if nobody answers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz",  # noqa: S310 - loopback only
                                     headers={"Host": "tenure.example.com", "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_gunicorn_serves_when_everything_is_there(tmp_path: Path) -> None:
    """The checks pass on a good configuration: a worker boots and /healthz answers 200 through it."""
    port = _free_port()
    argv = [f"127.0.0.1:{port}" if arg == "127.0.0.1:0" else arg for arg in entry_points(tmp_path)["gunicorn"]]
    argv += ["--graceful-timeout", "10"]
    env = {k: v for k, v in os.environ.items() if k not in FULL}
    env.update(reachable())
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)  # noqa: S603
    lines: list[str] = []
    # Drain stderr on a thread: a full pipe would block gunicorn's logging (and its shutdown).
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        status = None
        deadline = time.monotonic() + 60
        while status is None and proc.poll() is None and time.monotonic() < deadline:
            status = _healthz(port)
            if status is None:
                time.sleep(0.2)
        assert status == 200, "".join(lines)
        assert proc.poll() is None
    finally:
        # Terminated only once a worker serves: a SIGTERM that reaches a worker before it has set
        # its own handlers is lost, and the master then waits the whole graceful timeout for it.
        proc.terminate()
        proc.wait(timeout=60)
        reader.join(timeout=5)
    output = "".join(lines)
    assert "tenure: error" not in output, output
    assert "Traceback" not in output, output
