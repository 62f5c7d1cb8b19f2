"""POST /webhooks: verify the raw body, record the delivery, enqueue its handler, answer 200.

Kept lean on purpose (Shopify waits 5 s at most, and a busy shop sends bursts): no
ORM model instances, one ``INSERT ... ON CONFLICT DO NOTHING`` that also resolves the
shop, and the Celery message only after the row is committed. If Redis is down the
row is still written and the answer is still 200; ``shops.tasks.webhook_sweep`` runs
what was left.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from kombu import pools
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from config.logging import log_context
from shops.privacy import payload_strip_pii
from shops.security import shop_domain_clean, webhook_hmac_valid
from shops.services import HANDLERS

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024

# The shop is resolved inside the INSERT: one round trip whatever the outcome.
_INSERT = """
INSERT INTO shops_webhookevent
    (webhook_id, shop_id, shop_domain, topic, api_version, triggered_at, received_at,
     status, attempts, payload, outcome)
SELECT %(webhook_id)s::text, s.id, %(shop)s::text, %(topic)s::text, %(api_version)s::text,
       %(triggered_at)s::timestamptz, now(),
       CASE WHEN %(status)s::text <> '' THEN %(status)s::text
            WHEN s.id IS NULL OR s.state = 'redacted' THEN 'dropped'
            ELSE 'received' END,
       0, %(payload)s::jsonb,
       CASE WHEN %(outcome)s::text <> '' THEN %(outcome)s::text
            WHEN s.id IS NULL OR s.state = 'redacted' THEN 'unknown or redacted shop'
            ELSE '' END
FROM (SELECT 1) AS one LEFT JOIN shops_shop s ON s.domain = %(shop)s::text
ON CONFLICT (webhook_id) DO NOTHING
RETURNING id, status
"""


def _text(response: str, status: int) -> HttpResponse:
    return HttpResponse(response, status=status, content_type="text/plain")


def _triggered_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class _BatchPublisher:
    """Publishes committed event ids to Celery from a background thread, in small batches.

    A Celery publish costs more CPU than the rest of the request together, so the
    request only appends the id of its committed row to an in-process queue and
    answers; one thread per process sends whatever accumulated as one
    ``webhook_process_batch`` task. Publishing uses a broker connection that fails in
    milliseconds; after a failure it pauses a few seconds. Nothing is lost either way:
    ids that never reach Redis (broker down, process killed) belong to rows still
    marked ``received``, which ``shops.tasks.webhook_sweep`` processes.
    """

    PAUSE_AFTER_FAILURE = 5.0
    MAX_BATCH = 200
    LINGER = 0.01

    def __init__(self, url: str | None = None) -> None:
        self.url = url  # None: the app's broker
        self._connection: Any = None
        self._cond = threading.Condition()
        self._pending: list[int] = []
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._paused_until = 0.0

    def _conn(self) -> Any:
        from config.celery import app

        if self._connection is None:
            options = {**(app.conf.broker_transport_options or {}), "max_retries": 1, "interval_start": 0,
                       "interval_step": 0.1, "connect_retries_timeout": 1, "socket_connect_timeout": 1,
                       "socket_timeout": 2}
            self._connection = app.connection_for_write(url=self.url, transport_options=options)
        return self._connection

    def submit(self, event_id: int) -> None:
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # First use in this process (gunicorn forks after import): start its sender.
                self._pid = os.getpid()
                self._pending, self._in_flight, self._connection = [], 0, None
                self._thread = threading.Thread(target=self._run, name="webhook-publisher", daemon=True)
                self._thread.start()
            self._pending.append(event_id)
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was sent (or given up on); for tests and benches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
            # Let a burst accumulate: one message per LINGER instead of one per delivery.
            time.sleep(self.LINGER)
            with self._cond:
                batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH:]
                self._in_flight = len(batch)
            self._send(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _send(self, batch: list[int]) -> None:
        from shops.tasks import webhook_process_batch

        if time.monotonic() < self._paused_until:
            return
        try:
            with pools.producers[self._conn()].acquire(block=True, timeout=1) as producer:
                webhook_process_batch.apply_async((batch,), producer=producer, retry=False)
        except (KombuError, RedisError, OSError):
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_FAILURE
            logger.warning("broker unreachable: %d webhook(s) left for the sweep", len(batch))
        except Exception:  # never let the sender thread die; the sweep covers the batch
            logger.exception("webhook publish failed; the sweep will process the batch")


publisher = _BatchPublisher()


@dataclass(frozen=True)
class Delivery:
    """What the endpoint reads of one POST: the raw body and Shopify's headers, untrusted."""

    body: bytes
    hmac: str | None
    shop: str | None
    webhook_id: str | None
    topic: str | None
    api_version: str | None
    triggered_at: str | None

    @classmethod
    def read(cls, body: bytes, header: Callable[[str], str | None]) -> Delivery:
        """`header(name)`: the request's header of that name (e.g. "X-Shopify-Topic"), or None."""
        return cls(body=body, hmac=header("X-Shopify-Hmac-Sha256"), shop=header("X-Shopify-Shop-Domain"),
                   webhook_id=header("X-Shopify-Webhook-Id"), topic=header("X-Shopify-Topic"),
                   api_version=header("X-Shopify-Api-Version"), triggered_at=header("X-Shopify-Triggered-At"))


def _record(params: dict[str, Any]) -> tuple[int, str] | None:
    """Run the INSERT on Django's connection; None for a duplicate delivery.

    Through a server-side-binding cursor with a prepared statement: the ~2.5 KB payload is
    not quoted into the SQL text in Python, and PostgreSQL plans the statement once per
    connection. Errors still go through Django's wrapper, so a broken connection is marked
    and replaced at the next request.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_INSERT, params, prepare=True)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


# Shopify's payloads nest about eight levels (refund > line item > tax line > price set > money);
# orjson writes at most 255 and the recursive PII strip would hit Python's limit near 1,000.
MAX_JSON_DEPTH = 64


def _json_unstorable(value: Any) -> str | None:
    """Why a parsed body cannot be stored and handled, or None.

    Walked with a stack, not recursion, so the walk itself has no depth limit. PostgreSQL's
    jsonb refuses a NUL character (\\u0000) in any string, key or value.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "a string holds a NUL character"
            continue
        if isinstance(node, dict):
            children: list[Any] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def webhook_accept(delivery: Delivery) -> tuple[int, str]:
    """Verify, record and enqueue one delivery; the HTTP status and text to answer with."""
    # Nothing from the request is trusted or parsed before the signature checks out.
    if not webhook_hmac_valid(delivery.body, delivery.hmac, secret=settings.SHOPIFY_API_SECRET or "",
                              previous_secret=settings.SHOPIFY_API_SECRET_PREVIOUS):
        return 401, "Unauthorized"

    shop = shop_domain_clean(delivery.shop)
    webhook_id = delivery.webhook_id or ""
    topic = delivery.topic or ""
    if shop is None or not webhook_id or len(webhook_id) > 255 or not topic or len(topic) > 100:
        logger.warning("webhook with a valid signature but bad headers",
                       extra={"shop_header": (delivery.shop or "")[:100]})
        return 400, "Bad Request"

    status = outcome = ""
    payload: bytes | None = None
    try:
        parsed = orjson.loads(delivery.body)
    except orjson.JSONDecodeError:
        status, outcome = "rejected", "body is not JSON"
    else:
        if not isinstance(parsed, dict):
            status, outcome = "rejected", "body is not a JSON object"
        elif (problem := _json_unstorable(parsed)) is not None:
            status, outcome = "rejected", problem
        else:
            payload = orjson.dumps(payload_strip_pii(parsed))
            if topic not in HANDLERS:
                status, outcome = "dropped", "unknown topic"

    row = _record({
        "webhook_id": webhook_id, "shop": shop, "topic": topic,
        "api_version": (delivery.api_version or "")[:20],
        "triggered_at": _triggered_at(delivery.triggered_at),
        "status": status, "outcome": outcome, "payload": payload.decode() if payload is not None else None,
    })
    if row is None:
        return 200, "OK (duplicate)"
    event_id, recorded = row
    if recorded == "received":
        transaction.on_commit(lambda: publisher.submit(event_id))
    elif recorded == "rejected":
        logger.warning("webhook rejected: %s", outcome, extra={"webhook": webhook_id, "topic": topic})
        return 400, "Bad Request"
    else:
        logger.info("webhook dropped", extra={"webhook": webhook_id, "topic": topic, "shop": shop})
    return 200, "OK"


def _body_read(declared: str | None, read: Callable[[int], bytes]) -> bytes | None:
    """The raw body, or None when it is over MAX_BODY_BYTES (413). A declared length is what
    there is to read (a keep-alive stream has no end of its own)."""
    if declared and declared.isdigit():
        if int(declared) > MAX_BODY_BYTES:
            return None
        return read(int(declared))
    body = read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


@csrf_exempt
def webhook_receive(request: HttpRequest) -> HttpResponse:
    """The endpoint as a Django view (test client, any server that skips config.wsgi's fast path)."""
    if request.method != "POST":
        return _text("Method not allowed", 405)
    body = _body_read(request.META.get("CONTENT_LENGTH"), request.read)
    if body is None:
        return _text("Payload too large", 413)
    status, text = webhook_accept(Delivery.read(body, request.headers.get))
    return _text(text, status)


_PLAIN = [("Content-Type", "text/plain"), ("X-Content-Type-Options", "nosniff")]
_REASONS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 413: "413 Payload Too Large",
            500: "500 Internal Server Error"}


def webhook_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """POST /webhooks as a bare WSGI app: the view's checks and answers without Django's request,
    middleware, URL resolver and signals, which cost about as much CPU as the delivery itself.

    config.wsgi routes POSTs to /webhooks here. What the skipped middleware does is not needed on
    this path: the HMAC authenticates the request (no session, CSRF, user or Host to check) and
    the answer is a short text for Shopify, not a page. Django's request signals are still sent,
    so the database connection is recycled as for any request (CONN_MAX_AGE, errors).
    """
    request_started.send(sender=None, environ=environ)
    try:
        with log_context(shop=environ.get("HTTP_X_SHOPIFY_SHOP_DOMAIN"), path="/webhooks"):
            status, text = _wsgi_accept(environ)
    except Exception:
        logger.exception("webhook endpoint failed")
        status, text = 500, "Internal Server Error"
    finally:
        request_finished.send(sender=None)
    body = text.encode()
    start_response(_REASONS[status], [*_PLAIN, ("Content-Length", str(len(body)))])
    return [body]


def _wsgi_accept(environ: dict[str, Any]) -> tuple[int, str]:
    body = _body_read(environ.get("CONTENT_LENGTH"), environ["wsgi.input"].read)
    if body is None:
        return 413, "Payload too large"
    return webhook_accept(Delivery.read(body, lambda name: environ.get("HTTP_" + name.upper().replace("-", "_"))))
