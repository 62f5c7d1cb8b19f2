"""Structured (JSON) logs carrying shop, task and sync-run ids.

Context is set with `log_context(shop=..., sync_run=...)`; the Celery task id is
picked up automatically. Secrets never reach a log: callers log ids, not payloads, and
`SecretsFilter` (on the root logger and on every handler) blanks session tokens, HMACs, OAuth
codes, access tokens and Authorization headers wherever they appear in a record: its message,
its extras (Django's `request`, rendered with its full URL), its traceback.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("tenure_log_context", default={})  # noqa: B039
_SECRET_WORDS = ("token", "secret", "password", "authorization", "hmac", "email", "phone")
REDACTED = "[redacted]"
# Query (or form) parameters holding a credential: the session token on every embedded load, the
# OAuth and webhook HMACs, the OAuth code, Shopify's admin session. `[?&]` keeps `status_code=`.
_SECRET_PARAM = re.compile(r"(?i)([?&](?:id_token|hmac|code|session)=)[^&\s'\"#<>]*")
# A header as it shows in a dict repr, a raw request or a message: `'Authorization': 'Bearer x'`.
_SECRET_HEADER = re.compile(
    r"(?i)((?:authorization|x-shopify-access-token)['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic)\s+)?[^'\",\s}]+")
# Tokens wherever else they turn up: Shopify access tokens (shpat_, shpua_, ...) and JWTs.
_SECRET_VALUE = re.compile(r"\bshp[a-z]{2}_[A-Za-z0-9]+|\beyJ[\w-]*\.[\w-]+\.[\w-]*")
# What LogRecord sets itself; anything else on a record is an extra.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


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
    """Adds the current context and Celery task id (SecretsFilter, after it, scrubs them)."""

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
        return True


def secrets_scrub(text: str) -> str:
    """`text` with every credential-looking parameter, header and token value blanked."""
    text = _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", text)
    text = _SECRET_HEADER.sub(rf"\g<1>{REDACTED}", text)
    return _SECRET_VALUE.sub(REDACTED, text)


def _value_scrub(value: Any) -> Any:
    """Strings scrubbed, containers walked; an object whose text holds a secret (Django's request
    renders its full URL) is replaced by that text scrubbed, any other kept as it is."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return secrets_scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if any(w in str(k).lower() for w in _SECRET_WORDS) else _value_scrub(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value_scrub(v) for v in value]
    text = str(value)
    scrubbed = secrets_scrub(text)
    return value if scrubbed == text else scrubbed


class SecretsFilter(logging.Filter):
    """The one place secrets leave log records: installed on the root logger, on every handler the
    settings configure, and on the handlers Celery installs (config.celery). Idempotent, as a record
    passes it once per handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict) and not record.args:
            record.msg = _value_scrub(record.msg)  # the JSON formatter spreads a dict message into fields
        else:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is logged as written, still scrubbed
                message = str(record.msg)
            record.msg, record.args = secrets_scrub(message), ()
        for key in [k for k in record.__dict__ if k not in _RECORD_ATTRS]:
            if any(word in key.lower() for word in _SECRET_WORDS):
                record.__dict__[key] = REDACTED
            else:
                record.__dict__[key] = _value_scrub(record.__dict__[key])
        if record.exc_info:
            # Formatted here, scrubbed, kept as exc_text: both formatters print exc_text when
            # exc_info is gone, and exception messages carry URLs and headers.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = secrets_scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = secrets_scrub(record.stack_info)
        return True


def secrets_filter_install(logger: logging.Logger) -> None:
    """Put SecretsFilter on `logger` and its handlers (for handlers set up outside LOGGING)."""
    for target in (logger, *logger.handlers):
        if not any(isinstance(f, SecretsFilter) for f in target.filters):
            target.addFilter(SecretsFilter())


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
