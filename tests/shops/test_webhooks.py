"""POST /webhooks: signature first, record once, PII never stored, every bad input answered right."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from shops import webhooks
from shops.models import Shop, WebhookEvent
from shops.services import webhook_event_process, webhook_events_sweep
from tests.shops.conftest import WsgiClient, post_webhook, shop_create, webhook_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["django", "wsgi"])
def client(request: pytest.FixtureRequest, client):
    """Every case twice: through Django's view (test client) and through the lean WSGI path
    that config.wsgi gives gunicorn for POST /webhooks."""
    return client if request.param == "django" else WsgiClient()

ORDER = {"id": 1001, "name": "#1001", "email": "ann@example.com", "customer": {"id": 7, "first_name": "Ann"},
         "total_price": "12.50", "updated_at": "2026-11-22T08:00:00Z"}


@pytest.fixture(autouse=True)
def broker_down(monkeypatch: pytest.MonkeyPatch):
    """Publish to a closed port: recording and answering must not depend on Redis."""
    webhooks.publisher.flush()
    monkeypatch.setattr(webhooks.publisher, "url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(webhooks.publisher, "_connection", None)
    monkeypatch.setattr(webhooks.publisher, "_paused_until", 0.0)
    yield
    webhooks.publisher.flush()
    webhooks.publisher._connection = None
    webhooks.publisher._paused_until = 0.0


def test_missing_or_wrong_hmac_is_401_and_nothing_stored(client, shop_a) -> None:
    body = json.dumps(ORDER).encode()
    headers = webhook_headers(body, topic="orders/create", shop=shop_a.domain)
    del headers["HTTP_X_SHOPIFY_HMAC_SHA256"]
    assert client.generic("POST", "/webhooks", body, content_type="application/json", **headers).status_code == 401
    assert post_webhook(client, ORDER, topic="orders/create", shop=shop_a.domain, secret="wrong").status_code == 401
    tampered = webhook_headers(body, topic="orders/create", shop=shop_a.domain)
    assert client.generic("POST", "/webhooks", body + b" ", content_type="application/json",
                          **tampered).status_code == 401
    # A bad signature is refused before the body is looked at, even when it is not JSON.
    assert post_webhook(client, None, raw=b"not json", topic="orders/create", shop=shop_a.domain,
                        secret="wrong").status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_valid_delivery_recorded_once_without_pii(client, shop_a) -> None:
    response = post_webhook(client, ORDER, topic="orders/create", shop=shop_a.domain, webhook_id="w-1")
    assert response.status_code == 200
    event = WebhookEvent.objects.get(webhook_id="w-1")
    assert (event.shop_id, event.topic, event.status, event.api_version) == (shop_a.pk, "orders/create",
                                                                             "received", "2026-10")
    assert event.triggered_at is not None
    assert event.payload == {"id": 1001, "name": "#1001", "customer": {"id": 7}, "total_price": "12.50",
                             "updated_at": "2026-11-22T08:00:00Z"}
    # The same delivery again (Shopify retries): 200 and still one row.
    again = post_webhook(client, ORDER, topic="orders/create", shop=shop_a.domain, webhook_id="w-1")
    assert again.status_code == 200
    assert WebhookEvent.objects.filter(webhook_id="w-1").count() == 1


def test_previous_secret_accepted_during_rotation(client, shop_a, settings) -> None:
    response = post_webhook(client, ORDER, topic="orders/create", shop=shop_a.domain,
                            secret=settings.SHOPIFY_API_SECRET_PREVIOUS)
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_not_json_is_400_and_recorded_rejected(client, shop_a) -> None:
    response = post_webhook(client, None, raw=b"{not json", topic="orders/create", shop=shop_a.domain,
                            webhook_id="w-bad")
    assert response.status_code == 400
    event = WebhookEvent.objects.get(webhook_id="w-bad")
    assert (event.status, event.payload, event.outcome) == ("rejected", None, "body is not JSON")
    assert post_webhook(client, None, raw=b"[1, 2]", topic="orders/create", shop=shop_a.domain).status_code == 400


def test_body_over_5_mb_is_413(client, shop_a) -> None:
    big = json.dumps({"id": 1, "blob": "x" * (5 * 1024 * 1024)}).encode()
    response = post_webhook(client, None, raw=big, topic="orders/create", shop=shop_a.domain)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0
    # Exactly 5 MB is still accepted.
    pad = 5 * 1024 * 1024 - len(json.dumps({"id": 1, "blob": ""}))
    exact = json.dumps({"id": 1, "blob": "x" * pad}).encode()
    assert len(exact) == 5 * 1024 * 1024
    assert post_webhook(client, None, raw=exact, topic="orders/create", shop=shop_a.domain).status_code == 200


@pytest.mark.parametrize("header", ["evil.com", "acme.myshopify.com.evil.com", "acme.myshopify.com:8443",
                                    "https://acme.myshopify.com", ""])
def test_bad_shop_header_is_400(client, shop_a, header: str) -> None:
    assert post_webhook(client, ORDER, topic="orders/create", shop=header).status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_unknown_and_redacted_shops_are_dropped_with_200(client, db, caplog) -> None:
    caplog.set_level("INFO", logger="shops.webhooks")
    shop_create("gone.myshopify.com", state=Shop.State.REDACTED)
    assert post_webhook(client, ORDER, topic="orders/create", shop="nobody.myshopify.com",
                        webhook_id="w-u").status_code == 200
    assert post_webhook(client, ORDER, topic="orders/create", shop="gone.myshopify.com",
                        webhook_id="w-r").status_code == 200
    unknown, redacted = WebhookEvent.objects.get(webhook_id="w-u"), WebhookEvent.objects.get(webhook_id="w-r")
    assert (unknown.status, unknown.shop_id, unknown.outcome) == ("dropped", None, "unknown or redacted shop")
    assert (redacted.status, redacted.outcome) == ("dropped", "unknown or redacted shop")
    logged = [r for r in caplog.records if r.getMessage() == "webhook dropped"]
    assert [r.shop for r in logged] == ["nobody.myshopify.com", "gone.myshopify.com"]


def test_unknown_topic_is_200_and_logged(client, shop_a, caplog) -> None:
    caplog.set_level("INFO", logger="shops.webhooks")
    assert post_webhook(client, {"id": 1}, topic="products/create", shop=shop_a.domain,
                        webhook_id="w-p").status_code == 200
    event = WebhookEvent.objects.get(webhook_id="w-p")
    assert (event.status, event.outcome) == ("dropped", "unknown topic")
    assert any(r.getMessage() == "webhook dropped" and r.topic == "products/create" for r in caplog.records)


def test_get_is_405(client) -> None:
    assert client.get("/webhooks").status_code == 405


def test_redis_down_still_records_and_sweep_processes(client, shop_a) -> None:
    """Broker unreachable (closed port): answered 200 fast, left 'received', the sweep runs it."""
    import time

    started = time.monotonic()
    response = post_webhook(client, {"id": 1, "previous": [], "current": ["read_orders", "read_all_orders",
                                                                         "read_customers", "read_products"]},
                            topic="app/scopes_update", shop=shop_a.domain, webhook_id="w-down")
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0
    event = WebhookEvent.objects.get(webhook_id="w-down")
    assert event.status == "received"
    # Too recent for the sweep's 30 s grace: nothing happens yet.
    assert webhook_events_sweep() == 0
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=2))
    assert webhook_events_sweep() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 1)
    shop_a.refresh_from_db()
    assert shop_a.scopes == "read_orders,read_all_orders,read_customers,read_products"
    # A second sweep (or a late task) finds nothing left to do.
    assert webhook_events_sweep() == 0
    assert webhook_event_process(event_id=event.pk) is None


def test_sweep_drains_a_backlog_and_spaces_retries(client, shop_a) -> None:
    for i in range(7):
        post_webhook(client, {"previous": [], "current": ["read_orders"]}, topic="app/scopes_update",
                     shop=shop_a.domain, webhook_id=f"w-b{i}")
    bad = post_webhook(client, {"customer": "not-a-dict"}, topic="customers/redact", shop=shop_a.domain,
                       webhook_id="w-bad")
    assert bad.status_code == 200
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    # Batches of 3: all 8 are run in one sweep; the failing one once, not five times.
    assert webhook_events_sweep(limit=3) == 8
    assert WebhookEvent.objects.filter(status="processed").count() == 7
    failed = WebhookEvent.objects.get(webhook_id="w-bad")
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert webhook_events_sweep() == 0  # its last attempt is too recent
    WebhookEvent.objects.filter(pk=failed.pk).update(processed_at=timezone.now() - timedelta(minutes=5))
    assert webhook_events_sweep() == 1
    failed.refresh_from_db()
    assert failed.attempts == 2


def test_lean_path_recovers_from_a_dropped_database_connection(shop_a, caplog, monkeypatch) -> None:
    """With Django's request signals connected and persistent connections, as under gunicorn: a
    connection PostgreSQL dropped costs one 500 (Shopify retries it), is replaced, and the retry
    is recorded."""
    import psycopg
    from django.db import connection

    caplog.set_level("ERROR", logger="shops.webhooks")
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    wsgi = WsgiClient(recycle_connections=True)

    def deliver(webhook_id: str) -> int:
        return post_webhook(wsgi, ORDER, topic="orders/create", shop=shop_a.domain, webhook_id=webhook_id).status_code

    assert deliver("w-before") == 200
    assert connection.connection is not None  # kept for the next request
    pid = connection.connection.info.backend_pid
    with psycopg.connect(connection.connection.info.dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert deliver("w-retry") == 500
    assert any(r.getMessage() == "webhook endpoint failed" for r in caplog.records)
    assert deliver("w-retry") == 200
    assert set(WebhookEvent.objects.values_list("webhook_id", flat=True)) == {"w-before", "w-retry"}


@pytest.mark.parametrize("depth", [65, 255, 1000, 1024])
def test_deeply_nested_json_is_400_and_recorded_rejected(client, shop_a, depth: int) -> None:
    """Issue 14: nesting orjson cannot write back (255+) or the PII strip cannot recurse through
    was a 500, never recorded, so Shopify retried it for four hours."""
    body = b'{"id": 1, "a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    response = post_webhook(client, None, raw=body, topic="orders/create", shop=shop_a.domain, webhook_id="w-deep")
    assert response.status_code == 400
    event = WebhookEvent.objects.get(webhook_id="w-deep")
    assert (event.status, event.payload, event.outcome) == ("rejected", None, "JSON nested deeper than 64 levels")


def test_json_nested_as_deep_as_allowed_is_recorded(client, shop_a) -> None:
    body = b'{"id": 1, "a": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert post_webhook(client, None, raw=body, topic="orders/create", shop=shop_a.domain,
                        webhook_id="w-64").status_code == 200
    assert WebhookEvent.objects.get(webhook_id="w-64").status == "received"


@pytest.mark.parametrize("raw", [b'{"id": 1, "note_x": "a\\u0000b"}', b'{"id": 1, "k\\u0000": 1}'])
def test_nul_character_in_json_is_400_and_recorded_rejected(client, shop_a, raw: bytes) -> None:
    """PostgreSQL's jsonb cannot hold U+0000: storing it was a 500 (and Shopify's retries)."""
    response = post_webhook(client, None, raw=raw, topic="orders/create", shop=shop_a.domain, webhook_id="w-nul")
    assert response.status_code == 400
    event = WebhookEvent.objects.get(webhook_id="w-nul")
    assert (event.status, event.payload, event.outcome) == ("rejected", None, "a string holds a NUL character")
