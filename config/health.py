"""Liveness of the two services the app cannot work without."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db.utils import Error as DatabaseError


def database_status(*, connection: Any) -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


def redis_status(*, url: str | None = None) -> str:
    try:
        client = redis.Redis.from_url(url or settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except redis.RedisError as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


def health_status(*, connection: Any) -> dict[str, str]:
    return {"database": database_status(connection=connection), "redis": redis_status()}
