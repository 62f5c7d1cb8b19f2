"""Structured (JSON) logs carrying shop, task and sync-run ids.

Context is set with `log_context(shop=..., sync_run=...)`; the Celery task id is
picked up automatically. Secrets never reach a log: callers log ids, not payloads,
and `ContextFilter` drops any extra whose name looks like a credential.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("tenure_log_context", default={})  # noqa: B039
_SECRET_WORDS = ("token", "secret", "password", "authorization", "hmac", "email", "phone")


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Attach ids (shop, sync_run, webhook, ...) to every log record inside the block."""
    merged = {**_context.get(), **{k: v for k, v in values.items() if v is not None}}
    reset = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(reset)


class ContextFilter(logging.Filter):
    """Adds the current context and Celery task id; strips credential-looking extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            setattr(record, key, value)
        try:
            from celery import current_task

            if current_task and current_task.request and current_task.request.id:
                record.task_id = current_task.request.id
                record.task = current_task.name
        except Exception:  # noqa: S110,BLE001 - logging must never fail
            pass
        for key in list(record.__dict__):
            if any(word in key.lower() for word in _SECRET_WORDS):
                record.__dict__[key] = "[redacted]"
        return True


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "asctime": "time", "name": "logger"})
        super().__init__(*args, **kwargs)


class RequestContextMiddleware:
    """Puts the shop domain (when the request names one) into the log context."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        shop = request.GET.get("shop") or request.headers.get("X-Shopify-Shop-Domain")
        with log_context(shop=shop, path=request.path):
            return self.get_response(request)
