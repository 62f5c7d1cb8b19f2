"""Operational endpoints."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from config.health import health_status


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when PostgreSQL and Redis both answer, 503 otherwise, with each one's status."""
    status = health_status(connection=connection)
    ok = all(part == "ok" for part in status.values())
    return JsonResponse({"status": "ok" if ok else "degraded", **status}, status=200 if ok else 503)
