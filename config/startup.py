"""Start-up checks for the long-running processes: gunicorn, the Celery worker and beat.

Each fails in one line that names PostgreSQL or Redis and what to do, before the process
starts serving, instead of a stack trace or a retry loop that only says so in its logs.
"""

from __future__ import annotations

import sys
from typing import Any

from config.errors import StartupError, run_friendly

# Seconds to wait for each server: long enough for a loaded machine, short enough to fail fast.
CONNECT_TIMEOUT = 5


def settings_load() -> None:
    """Import the settings module (production's raises StartupError for a missing variable)."""
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018 - the attribute access is what loads the module


def database_check() -> None:
    """Open and close one connection to the default database, or raise StartupError."""
    from django.db import connections
    from django.db.utils import Error as DatabaseError

    conn = connections.create_connection("default")
    options = {"connect_timeout": CONNECT_TIMEOUT, **conn.settings_dict.get("OPTIONS", {})}
    conn.settings_dict = {**conn.settings_dict, "OPTIONS": options}
    where = _database_where(conn.settings_dict)
    try:
        conn.ensure_connection()
    except DatabaseError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise StartupError(f"cannot reach the database at {where} ({detail}): start PostgreSQL "
                           "or fix DATABASE_URL") from exc
    finally:
        conn.close()  # never hand an open connection to forked workers


def _database_where(settings_dict: dict[str, Any]) -> str:
    """host:port/name, never the password."""
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or "5432"
    return f"{host}:{port}/{settings_dict.get('NAME') or ''}"


def redis_check() -> None:
    """PING the broker, or raise StartupError."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT,
                                  socket_timeout=CONNECT_TIMEOUT)
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartupError(f"cannot reach Redis at {where} ({exc.__class__.__name__}): start Redis "
                           "or fix REDIS_URL") from exc
    finally:
        client.close()


def services_check() -> None:
    """Settings, then PostgreSQL, then Redis: the first problem found, in one line."""
    settings_load()
    database_check()
    redis_check()


def services_check_or_exit() -> None:
    """`services_check`, printing its one-line error to the real stderr and exiting 1 on failure."""
    run_friendly(services_check, stream=sys.__stderr__)
