"""Webhook deliveries as Shopify makes them: signed POSTs, a 5 s timeout, 8 retries.

https://shopify.dev/docs/apps/build/webhooks/subscribe/https: Shopify POSTs the REST payload
with ``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body keyed
with the app's client secret), ``X-Shopify-Shop-Domain``, ``X-Shopify-API-Version``,
``X-Shopify-Webhook-Id``, ``X-Shopify-Triggered-At`` and ``X-Shopify-Event-Id``; it waits
five seconds for a 2xx and otherwise retries 8 times over the next 4 hours.

The retry schedule is compressible (``retry_scale``, tests use ~1e-4) and per-shop fault knobs
(``store.faults``) duplicate, reorder or drop deliveries:

- ``webhook_duplicate_rate``: the same delivery (same webhook and event id) is sent twice;
- ``webhook_out_of_order_rate``: the delivery is held back ``webhook_reorder_delay_ms`` so
  later events overtake it;
- ``webhook_drop_rate``: the delivery is never sent (logged as ``dropped``).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import http.client
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# 1 + 8 attempts; the gaps double from a minute and end four hours after the first try.
DEFAULT_RETRY_SCHEDULE_S = (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3840.0, 6780.0)
DELIVERY_TIMEOUT_S = 5.0
# The log keeps finished deliveries up to this many (a live demo runs for hours); pending ones always.
LOG_LIMIT = 20_000
CONNECT_TIMEOUT_S = 1.0  # "1 second to accept the connection and 5 seconds to respond"
USER_AGENT = "Shopify-Captain-Hook"


def body_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def iso_now() -> str:
    # Shopify sends sub-second precision (e.g. 2023-03-29T18:00:27.877041743Z); microseconds here.
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Delivery:
    seq: int
    shop: str
    topic: str
    url: str
    body: bytes
    webhook_id: str
    event_id: str
    triggered_at: str
    api_version: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    state: str = "pending"  # pending, delivered, failed, dropped
    duplicate: bool = False
    delayed: bool = False

    def headers(self, secret: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Shopify-Topic": self.topic,
            "X-Shopify-Hmac-Sha256": body_hmac(self.body, secret),
            "X-Shopify-Shop-Domain": self.shop,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": self.webhook_id,
            "X-Shopify-Event-Id": self.event_id,
            "X-Shopify-Triggered-At": self.triggered_at,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "shop": self.shop, "topic": self.topic, "url": self.url,
            "webhook_id": self.webhook_id, "event_id": self.event_id, "triggered_at": self.triggered_at,
            "state": self.state, "duplicate": self.duplicate, "delayed": self.delayed,
            "attempts": [dict(a) for a in self.attempts], "payload": json.loads(self.body),
        }


class WebhookDispatcher:
    """A scheduler thread plus a small pool of senders; every delivery is kept in ``log``."""

    def __init__(
        self, *, secret: Callable[[], str], faults: Callable[[str], dict[str, Any]],
        retry_scale: float = 1.0, retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE_S,
        timeout_s: float = DELIVERY_TIMEOUT_S, concurrency: int = 4, seed: int = 0,
    ) -> None:
        self._secret = secret
        self._faults = faults
        self.retry_scale = retry_scale
        self.retry_schedule = tuple(retry_schedule)
        self.timeout_s = timeout_s
        self.log: list[Delivery] = []
        self._seq = 0
        self._heap: list[tuple[float, int, int, Delivery]] = []  # (due, order, attempt, delivery)
        self._order = 0
        self._cond = threading.Condition()
        self._inflight = 0
        self._stopped = False
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="devstore-webhook")
        self._thread = threading.Thread(target=self._run, name="devstore-webhooks", daemon=True)
        self._thread.start()

    # -- producing -------------------------------------------------------------------------

    def emit(self, *, shop: str, topic: str, payload: dict[str, Any], urls: Sequence[str | tuple[str, Sequence[str]]],
             api_version: str, triggered_at: str | None = None) -> list[Delivery]:
        """Queue one event for every subscription; returns the deliveries (fault knobs applied).

        A subscription is a URL, or (URL, include_fields): then only those top-level fields are sent.
        """
        if not urls:
            return []
        full = json.dumps(payload, separators=(",", ":"), default=str).encode()
        event_id = str(uuid.uuid4())
        triggered = triggered_at or iso_now()
        faults = self._faults(shop)
        out = []
        with self._cond:
            for target in urls:
                url, fields = (target, ()) if isinstance(target, str) else target
                body = full if not fields else json.dumps(
                    {k: payload[k] for k in fields if k in payload}, separators=(",", ":"), default=str).encode()
                delivery = Delivery(seq=self._next_seq(), shop=shop, topic=topic, url=url, body=body,
                                    webhook_id=str(uuid.uuid4()), event_id=event_id, triggered_at=triggered,
                                    api_version=api_version)
                self.log.append(delivery)
                out.append(delivery)
                if self._rng.random() < float(faults.get("webhook_drop_rate") or 0):
                    delivery.state = "dropped"
                    continue
                delay = 0.0
                if self._rng.random() < float(faults.get("webhook_out_of_order_rate") or 0):
                    delivery.delayed = True
                    delay = float(faults.get("webhook_reorder_delay_ms") or 300) / 1000
                self._push(delivery, time.monotonic() + delay, attempt=0)
                if self._rng.random() < float(faults.get("webhook_duplicate_rate") or 0):
                    twin = Delivery(seq=self._next_seq(), shop=shop, topic=topic, url=url, body=body,
                                    webhook_id=delivery.webhook_id, event_id=event_id, triggered_at=triggered,
                                    api_version=api_version, duplicate=True)
                    self.log.append(twin)
                    out.append(twin)
                    self._push(twin, time.monotonic() + delay + 0.01, attempt=0)
            if len(self.log) > LOG_LIMIT:
                self._trim()
            self._cond.notify_all()
        return out

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _trim(self) -> None:
        """Forget the oldest finished half of the log."""
        excess = len(self.log) - LOG_LIMIT // 2
        kept: list[Delivery] = []
        for delivery in self.log:
            if excess > 0 and delivery.state != "pending":
                excess -= 1
                continue
            kept.append(delivery)
        self.log = kept

    def _push(self, delivery: Delivery, due: float, *, attempt: int) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, attempt, delivery))

    # -- running ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, attempt, delivery = heapq.heappop(self._heap)
                self._inflight += 1
            try:
                self._pool.submit(self._attempt, delivery, attempt)
            except RuntimeError:  # pool shut down while stopping
                with self._cond:
                    self._inflight -= 1
                return

    def _attempt(self, delivery: Delivery, attempt: int) -> None:
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            status = self._post(delivery)
        except (OSError, http.client.HTTPException) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        with self._cond:
            delivery.attempts.append({
                "attempt": attempt + 1, "at": iso_now(), "status": status, "error": error,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            })
            if ok:
                delivery.state = "delivered"
            elif attempt < len(self.retry_schedule) and not self._stopped:
                self._push(delivery, time.monotonic() + self.retry_schedule[attempt] * self.retry_scale,
                           attempt=attempt + 1)
            else:
                delivery.state = "failed"
            self._inflight -= 1
            self._cond.notify_all()

    def _post(self, delivery: Delivery) -> int:
        parts = urlsplit(delivery.url)
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=min(CONNECT_TIMEOUT_S, self.timeout_s))
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout_s)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("POST", path, body=delivery.body, headers=delivery.headers(self._secret()))
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    # -- observing -------------------------------------------------------------------------

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._inflight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until nothing is queued or in flight (retries included); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def summaries(self, *, shop: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [d.summary() for d in self.log
                    if (shop is None or d.shop == shop) and (topic is None or d.topic == topic)]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)
