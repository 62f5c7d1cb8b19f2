"""Bad start-up conditions give one line that names the thing and what to do."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests import conftest

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def reachable() -> dict[str, str]:
    """The servers this test run uses (system or embedded), so only the broken one is broken."""
    return {"DATABASE_URL": conftest.test_database_url(), "REDIS_URL": settings.REDIS_URL}


def test_unreachable_database_is_one_line() -> None:
    result = run_manage("migrate", env={**reachable(), "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing"})
    assert_one_line(result, "database", "DATABASE_URL")


def test_unreachable_redis_is_one_line_for_demo() -> None:
    result = run_manage("demo", "--exit-when-up", "--port", "1",
                        env={**reachable(), "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_one_line(result, "Redis", "REDIS_URL")


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_manage("demo", "--exit-when-up", "--port", str(port),
                            env=reachable())
    assert_one_line(result, f"port {port}", "PORT")
