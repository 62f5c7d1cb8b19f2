"""POST /webhooks: verify the raw body, record the delivery, enqueue its handler, answer 200.

Kept lean on purpose (Shopify waits 5 s at most, and a busy shop sends bursts): no
ORM model instances, one ``INSERT ... ON CONFLICT DO NOTHING`` that also resolves the
shop, and the Celery message only after the row is committed. If Redis is down the
row is still written and the answer is still 200; ``shops.tasks.webhook_sweep`` runs
what was left.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from kombu import pools
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

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


class _FastPublisher:
    """Publishes webhook tasks on a broker connection that fails in milliseconds.

    Celery's default publisher retries a dead broker for seconds, longer than Shopify
    waits. Here one quick attempt is made; after a failure, publishing is skipped for
    a few seconds (the rows are committed, and the sweep runs them once Redis is back).
    """

    PAUSE_AFTER_FAILURE = 5.0

    def __init__(self, url: str | None = None) -> None:
        self.url = url  # None: the app's broker
        self._connection: Any = None
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def _conn(self) -> Any:
        from config.celery import app

        with self._lock:
            if self._connection is None:
                options = {**(app.conf.broker_transport_options or {}), "max_retries": 1, "interval_start": 0,
                           "interval_step": 0.1, "connect_retries_timeout": 1, "socket_connect_timeout": 1,
                           "socket_timeout": 2}
                self._connection = app.connection_for_write(url=self.url, transport_options=options)
            return self._connection

    def publish(self, event_id: int) -> bool:
        from shops.tasks import webhook_process

        if time.monotonic() < self._paused_until:
            return False
        try:
            with pools.producers[self._conn()].acquire(block=True, timeout=1) as producer:
                webhook_process.apply_async((event_id,), producer=producer, retry=False)
        except (KombuError, RedisError, OSError):
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_FAILURE
            logger.warning("broker unreachable: webhook left for the sweep", extra={"event": event_id})
            return False
        return True


publisher = _FastPublisher()


@csrf_exempt
def webhook_receive(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _text("Method not allowed", 405)
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _text("Payload too large", 413)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _text("Payload too large", 413)

    # Nothing from the request is trusted or parsed before the signature checks out.
    if not webhook_hmac_valid(body, request.headers.get("X-Shopify-Hmac-Sha256"),
                              secret=settings.SHOPIFY_API_SECRET or "",
                              previous_secret=settings.SHOPIFY_API_SECRET_PREVIOUS):
        return _text("Unauthorized", 401)

    shop = shop_domain_clean(request.headers.get("X-Shopify-Shop-Domain"))
    webhook_id = request.headers.get("X-Shopify-Webhook-Id") or ""
    topic = request.headers.get("X-Shopify-Topic") or ""
    if shop is None or not webhook_id or len(webhook_id) > 255 or not topic or len(topic) > 100:
        logger.warning("webhook with a valid signature but bad headers",
                       extra={"shop_header": (request.headers.get("X-Shopify-Shop-Domain") or "")[:100]})
        return _text("Bad Request", 400)

    status = outcome = ""
    payload: bytes | None = None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
        status, outcome = "rejected", "body is not JSON"
    else:
        if not isinstance(parsed, dict):
            status, outcome = "rejected", "body is not a JSON object"
        else:
            payload = orjson.dumps(payload_strip_pii(parsed))
            if topic not in HANDLERS:
                status, outcome = "dropped", "unknown topic"

    params = {
        "webhook_id": webhook_id, "shop": shop, "topic": topic,
        "api_version": (request.headers.get("X-Shopify-Api-Version") or "")[:20],
        "triggered_at": _triggered_at(request.headers.get("X-Shopify-Triggered-At")),
        "status": status, "outcome": outcome, "payload": payload.decode() if payload is not None else None,
    }
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, params)
        row = cursor.fetchone()

    if row is None:
        return _text("OK (duplicate)", 200)
    event_id, recorded = row
    if recorded == "received":
        transaction.on_commit(lambda: publisher.publish(event_id))
    elif recorded == "rejected":
        logger.warning("webhook rejected: %s", outcome, extra={"webhook": webhook_id, "topic": topic})
        return _text("Bad Request", 400)
    else:
        logger.info("webhook dropped", extra={"webhook": webhook_id, "topic": topic, "shop": shop})
    return _text("OK", 200)
