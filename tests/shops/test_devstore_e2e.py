"""End to end against devstore: both install flows, embedded auth, token refresh, every webhook topic.

The app runs in Django's live server (this process, test database); devstore runs in-process
on its own port and talks to it over loopback exactly as Shopify would: it mints session
tokens, answers token exchange / code grant / refresh / GraphQL, and POSTs signed webhooks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from devstore.oauth import query_signed
from devstore.testing import DevStore, ShopSpec
from shops import services, webhooks
from shops.models import CustomerDataReport, Shop, ShopCredential, WebhookEvent
from sync.models import Customer, Deletion, Order, Refund, SyncRun
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore:The HMAC key is")]

ACME = "acme.myshopify.com"
BRAVO = "bravo.myshopify.com"


@pytest.fixture
def devstore(live_server, settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevStore]:
    specs = [ShopSpec(name="acme", seed=3, customers=30, months=4, currency="NZD", iana_timezone="Pacific/Auckland",
                      plan="Advanced"),
             ShopSpec(name="bravo", seed=4, customers=20, months=3, currency="EUR", iana_timezone="Europe/Berlin")]
    with DevStore(specs, app_url=live_server.url, retry_scale=0.01) as ds:
        settings.SHOPIFY_API_BASE_URL = ds.base_url
        settings.APP_URL = live_server.url
        settings.SHOPIFY_ADMIN_ORIGIN = ds.base_url
        # A worker started after this fixture (celery_worker_process) reaches the same devstore.
        monkeypatch.setenv("SHOPIFY_API_BASE_URL", ds.base_url)
        monkeypatch.setenv("APP_URL", live_server.url)
        redis.Redis.from_url(django_settings.REDIS_URL).flushdb()
        webhooks.publisher.flush()
        webhooks.publisher.url, webhooks.publisher._connection, webhooks.publisher._paused_until = None, None, 0.0
        yield ds
        ds.wait_webhooks(5)
        webhooks.publisher.flush()


def embedded_load(ds: DevStore, shop: str) -> httpx.Response:
    """What the admin iframe does on open: GET the app home with a fresh id_token."""
    return httpx.get(ds.app_home_url(shop), follow_redirects=False, timeout=30)


def queued_task_args(queue: str) -> list[list[object]]:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        out.append(json.loads(base64.b64decode(message["body"]))[0])
    return out


def test_managed_install_by_token_exchange(devstore: DevStore) -> None:
    devstore.install("acme")
    response = embedded_load(devstore, "acme")
    assert response.status_code == 302
    target = urlparse(response.headers["location"])
    assert target.path == reverse("analytics:overview")
    kept = parse_qs(target.query)
    assert kept["shop"] == [ACME]
    assert kept["embedded"] == ["1"]
    assert set(kept) >= {"shop", "host", "embedded", "id_token"}
    assert response.headers["content-security-policy"] == (
        f"frame-ancestors https://{ACME} https://admin.shopify.com {devstore.base_url}")
    assert "x-frame-options" not in response.headers

    shop = Shop.objects.get(domain=ACME)
    truth = devstore.ground_truth("acme").shop
    assert (shop.name, shop.currency, shop.iana_timezone, shop.plan, shop.state) == (
        truth["name"], "NZD", "Pacific/Auckland", truth["plan"], "installed")
    assert shop.shopify_gid == truth["shopify_gid"]
    credential = ShopCredential.objects.get(shop=shop)
    assert credential.access_token.startswith("shpat_")
    assert credential.refresh_token.startswith("shprt_")
    assert credential.access_token_expires_at is not None  # an expiring offline token
    # Stored encrypted: the ciphertext does not contain the token.
    assert credential.access_token not in credential.access_token_encrypted
    # The token works against the Admin API.
    data = services.admin_graphql(shop_domain=ACME, access_token=services.access_token_get(shop=shop),
                                  query="{ shop { name } }")
    assert data["shop"]["name"] == truth["name"]
    # The first backfill: one pending run, created with the install and enqueued once, after commit.
    run = SyncRun.objects.get(shop=shop, kind=SyncRun.Kind.BACKFILL)
    assert run.status == SyncRun.Status.PENDING
    assert queued_task_args("backfill") == [[run.pk]]

    # A later open does not exchange again (same stored token) and enqueues nothing new.
    before = credential.access_token
    assert embedded_load(devstore, "acme").status_code in (200, 302)
    assert ShopCredential.objects.get(shop=shop).access_token == before


@pytest.fixture
def celery_broker_down() -> Iterator[None]:
    """The app's Celery broker on a closed port (a real refused connection), restored afterwards."""
    from config.celery import app

    def reset() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    reset()
    yield
    app.conf.broker_url = saved
    reset()


def test_first_backfill_survives_a_broker_outage_at_install(devstore: DevStore, celery_broker_down: None) -> None:
    from config.celery import app
    from sync import services as sync_services
    from sync.tasks import backfill_resume_stale

    devstore.install("acme")
    response = embedded_load(devstore, "acme")
    assert response.status_code == 302  # the merchant gets in; the outage is ours to absorb
    shop = Shop.objects.get(domain=ACME)
    run = SyncRun.objects.get(shop=shop, kind=SyncRun.Kind.BACKFILL)
    assert run.status == SyncRun.Status.PENDING
    assert queued_task_args("backfill") == []  # nothing reached Redis
    # Nothing else would start it: the incremental sync needs a finished backfill's high-water mark.
    assert sync_services.incremental_run(shop=shop) is None

    # Redis is back; beat's stale-run sweep (every minute, runs older than 2 min) finds the run.
    app.conf.broker_url = django_settings.CELERY_BROKER_URL
    app._pool = None
    app.amqp._producer_pool = None
    assert backfill_resume_stale(older_than_s=0) == 1
    assert queued_task_args("backfill") == [[run.pk]]
    # And the worker's run brings the shop's customers and orders in.
    assert sync_services.backfill_run(run_id=run.pk) == "succeeded"
    truth = devstore.ground_truth("acme")
    assert Order.objects.filter(shop=shop).count() == len(truth.orders)
    assert Customer.objects.filter(shop=shop).count() == len(truth.customers)


def test_install_graphql_goes_through_the_client_and_rides_out_a_5xx(devstore: DevStore) -> None:
    """The install's Admin API calls (shop details, subscriptions) use ShopifyClient: a 503 on the
    first one is retried, not turned into a failed install."""
    devstore.install("acme")
    devstore.set_faults("acme", error_next=1, error_status=503)
    assert embedded_load(devstore, "acme").status_code == 302
    shop = Shop.objects.get(domain=ACME)
    assert (shop.state, shop.name) == ("installed", devstore.ground_truth("acme").shop["name"])
    assert devstore.set_faults("acme").get("error_next") == 0  # the fault was spent on the install
    # A token Shopify refuses is an auth error, not a crash.
    with pytest.raises(services.ShopAuthError):
        services.admin_graphql(shop_domain=ACME, access_token="shpat_not-a-token", query="{ shop { name } }")


def test_embedded_load_before_install_is_refused(devstore: DevStore) -> None:
    # devstore mints a token, but the app is not installed there: the exchange is refused, no shop stored.
    response = embedded_load(devstore, "bravo")
    assert response.status_code == 401  # not a bounce: a fresh token would be refused again
    assert "not installed" in response.text
    assert not Shop.objects.filter(domain=BRAVO, state="installed").exists()
    assert not ShopCredential.objects.exists()


def test_authorization_code_grant(devstore: DevStore, live_server) -> None:
    http = httpx.Client(follow_redirects=False, timeout=30)
    launch = http.get(devstore.install_link("bravo"))
    assert launch.status_code == 302
    install = http.get(live_server.url + launch.headers["location"])
    assert install.status_code == 302
    authorize = install.headers["location"]
    assert authorize.startswith(f"{devstore.base_url}/admin/oauth/authorize?")
    query = parse_qs(urlparse(authorize).query)
    assert query["redirect_uri"] == [f"{live_server.url}/auth/callback"]
    assert query["scope"] == ["read_orders,read_all_orders,read_customers"]
    assert len(query["state"][0]) >= 32
    assert http.get(authorize).status_code == 200  # the consent page
    approved = http.post(authorize, data={"decision": "approve"})
    assert approved.status_code == 302
    callback = approved.headers["location"]
    assert callback.startswith(f"{live_server.url}/auth/callback?")

    done = http.get(callback)
    assert done.status_code == 302
    assert done.headers["location"] == f"{devstore.base_url}/admin/apps/{django_settings.SHOPIFY_API_KEY}?shop={BRAVO}"
    shop = Shop.objects.get(domain=BRAVO)
    assert (shop.state, shop.currency, shop.iana_timezone) == ("installed", "EUR", "Europe/Berlin")
    assert shop.scopes == "read_all_orders,read_customers,read_orders"
    credential = ShopCredential.objects.get(shop=shop)
    assert credential.access_token_expires_at is not None
    token = credential.access_token

    # The same callback again: the state is spent -> 400, and no token is requested.
    registry = devstore.platform.registry
    tokens_before = len(registry.access_tokens)
    assert http.get(callback).status_code == 400
    assert len(registry.access_tokens) == tokens_before
    assert ShopCredential.objects.get(shop=shop).access_token == token


def _signed_callback(devstore: DevStore, live_server, **params: str) -> str:
    return f"{live_server.url}/auth/callback?{query_signed(params, devstore.api_secret)}"


def test_code_grant_bad_inputs_request_no_token(devstore: DevStore, live_server) -> None:
    registry = devstore.platform.registry
    code = registry.code_issue(BRAVO, frozenset({"read_orders", "read_all_orders", "read_customers"}),
                               f"{live_server.url}/auth/callback")
    now = str(int(time.time()))
    base = {"code": code, "host": "x", "shop": BRAVO, "timestamp": now}
    # A state we never issued.
    assert httpx.get(_signed_callback(devstore, live_server, **base, state="made-up")).status_code == 400
    # A real state, but the request is older than 24 h.
    state = services.oauth_state_create(shop_domain=BRAVO)
    stale = {**base, "state": state, "timestamp": str(int(time.time()) - 25 * 3600)}
    assert httpx.get(_signed_callback(devstore, live_server, **stale)).status_code == 400
    # A real state issued for another shop.
    other = services.oauth_state_create(shop_domain=ACME)
    assert httpx.get(_signed_callback(devstore, live_server, **base, state=other)).status_code == 400
    # A forged hmac.
    forged = f"{live_server.url}/auth/callback?{urlencode({**base, 'state': state, 'hmac': '0' * 64})}"
    assert httpx.get(forged).status_code == 400
    assert registry.codes[code].used is False  # never exchanged
    assert not ShopCredential.objects.exists()


def _code_grant_callback(devstore: DevStore, live_server, scopes: set[str]) -> tuple[str, httpx.Response]:
    """Consent that granted `scopes`: a code for them, a real state, the signed callback as Shopify sends it."""
    code = devstore.platform.registry.code_issue(BRAVO, frozenset(scopes), f"{live_server.url}/auth/callback")
    state = services.oauth_state_create(shop_domain=BRAVO)
    params = {"code": code, "host": "x", "shop": BRAVO, "state": state, "timestamp": str(int(time.time()))}
    return code, httpx.get(_signed_callback(devstore, live_server, **params), timeout=30)


@pytest.mark.parametrize("granted", [{"read_orders"}, {"read_customers", "read_all_orders"}, set()],
                         ids=["read_orders-only", "no-read_orders", "nothing"])
def test_code_grant_with_too_few_scopes_stores_no_token(devstore: DevStore, live_server, granted: set[str]) -> None:
    assert not set(django_settings.SHOPIFY_SCOPES_REQUIRED) <= granted
    registry = devstore.platform.registry
    tokens_before = len(registry.access_tokens)
    code, response = _code_grant_callback(devstore, live_server, granted)
    # The exchange happened (the code is spent, Shopify issued a token) and only then was the grant refused.
    assert registry.codes[code].used is True
    assert len(registry.access_tokens) == tokens_before + 1
    # 403 naming what is missing, for the merchant to approve again.
    assert response.status_code == 403
    missing = [s for s in django_settings.SHOPIFY_SCOPES_REQUIRED if s not in granted]
    assert f"needs access to {', '.join(missing)}" in response.text
    assert "Nothing was installed" in response.text
    assert "location" not in response.headers
    assert not ShopCredential.objects.exists()
    assert not Shop.objects.filter(domain=BRAVO, state=Shop.State.INSTALLED).exists()
    assert not SyncRun.objects.exists()
    assert queued_task_args("backfill") == []


def test_code_grant_with_too_few_scopes_on_an_installed_shop_flags_it(devstore: DevStore, live_server) -> None:
    """Shopify may retire the token we hold when it issues the short one: the shop is flagged for
    the merchant to approve again, instead of the next sync finding a dead token."""
    _, first = _code_grant_callback(devstore, live_server, set(django_settings.SHOPIFY_SCOPES_REQUIRED))
    assert first.status_code == 302
    _, short = _code_grant_callback(devstore, live_server, {"read_orders"})
    assert short.status_code == 403
    shop = Shop.objects.get(domain=BRAVO)
    assert shop.state == Shop.State.INSTALLED
    assert shop.needs_reauth_reason.startswith("Shopify granted too little access (missing read_customers)")
    # Approving the full access again clears it.
    _, again = _code_grant_callback(devstore, live_server, set(django_settings.SHOPIFY_SCOPES_REQUIRED))
    assert again.status_code == 302
    shop.refresh_from_db()
    assert shop.needs_reauth_reason == ""


def test_code_grant_with_the_required_scopes_installs(devstore: DevStore, live_server) -> None:
    """The control for the test above: the same callback with the required scopes (no read_all_orders) installs."""
    _, response = _code_grant_callback(devstore, live_server, set(django_settings.SHOPIFY_SCOPES_REQUIRED))
    assert response.status_code == 302
    shop = Shop.objects.get(domain=BRAVO, state=Shop.State.INSTALLED)
    assert shop.scopes == "read_customers,read_orders"
    assert ShopCredential.objects.get(shop=shop).scopes == shop.scopes


@pytest.mark.parametrize("shop", [
    "evil.com", "bravo.myshopify.com.evil.com", "bravo.myshopify.com:443", "https://bravo.myshopify.com",
    "bravo.myshopify.com/admin", "evil.com/bravo.myshopify.com", "bravo.myshopify.com@evil.com",
])
def test_install_with_bad_shop_is_400_before_any_redirect(devstore: DevStore, live_server, shop: str) -> None:
    params = {"shop": shop, "timestamp": str(int(time.time()))}
    response = httpx.get(f"{live_server.url}/auth/install?{query_signed(params, devstore.api_secret)}")
    assert response.status_code == 400
    assert "location" not in response.headers
    stale = {"shop": BRAVO, "timestamp": str(int(time.time()) - 90_000)}
    assert httpx.get(f"{live_server.url}/auth/install?{query_signed(stale, devstore.api_secret)}").status_code == 400


def test_refresh_before_expiry_one_refresh_for_two_workers(devstore: DevStore) -> None:
    devstore.install("acme")
    embedded_load(devstore, "acme")
    shop = Shop.objects.get(domain=ACME)
    old = ShopCredential.objects.get(shop=shop)
    ShopCredential.objects.filter(pk=old.pk).update(access_token_expires_at=timezone.now() + timedelta(seconds=60))
    registry = devstore.platform.registry
    refresh_tokens_before = len(registry.refresh_tokens)

    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(services.access_token_get(shop=Shop.objects.get(pk=shop.pk)))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(set(results)) == 1
    assert results[0] != old.access_token
    # Exactly one refresh happened: one new refresh token at devstore.
    assert len(registry.refresh_tokens) == refresh_tokens_before + 1
    new = ShopCredential.objects.get(shop=shop)
    assert new.access_token == results[0]
    assert new.refresh_token != old.refresh_token
    assert new.access_token_expires_at > timezone.now() + timedelta(minutes=30)
    assert services.admin_graphql(shop_domain=ACME, access_token=new.access_token, query="{ shop { name } }")


def test_failed_refresh_marks_shop_and_reopening_repairs(devstore: DevStore) -> None:
    devstore.install("acme")
    embedded_load(devstore, "acme")
    shop = Shop.objects.get(domain=ACME)
    devstore.set_faults("acme", revoked_token=True)  # every token of the shop dies, refresh tokens too
    with pytest.raises(services.ShopAuthError):
        services.credential_refresh(shop=shop, force=True)
    shop.refresh_from_db()
    assert "token refresh failed" in shop.needs_reauth_reason
    # Opening the app exchanges a new session token and clears the mark.
    devstore.set_faults("acme", revoked_token=None)
    assert embedded_load(devstore, "acme").status_code in (200, 302)
    shop.refresh_from_db()
    assert shop.needs_reauth_reason == ""
    assert services.admin_graphql(shop_domain=ACME, access_token=services.access_token_get(shop=shop),
                                  query="{ shop { name } }")


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _shop_money(money_set: dict[str, Any]) -> Decimal:
    return Decimal(money_set["shop_money"]["amount"])


def _refund_shop_amounts(refund: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """(total, line-item subtotal) of a REST refund in shop money, added up from its parts."""
    lines = refund["refund_line_items"]
    subtotal = sum((_shop_money(line["subtotal_set"]) for line in lines), Decimal(0))
    total = (subtotal + sum((_shop_money(line["total_tax_set"]) for line in lines), Decimal(0))
             + sum((_shop_money(s["subtotal_amount_set"]) for s in refund["refund_shipping_lines"]), Decimal(0))
             + _shop_money(refund["total_duties_set"]))
    return total, subtotal


# Every topic live trading can produce (devstore/live.py), and the ones each run must have.
LIVE_TOPICS = frozenset({"orders/create", "orders/updated", "orders/cancelled", "orders/delete", "refunds/create",
                         "customers/create", "customers/update", "customers/delete"})
CUSTOMER_LIVE_TOPICS = frozenset({"customers/create", "customers/update", "customers/delete"})


def live_trade(ds: DevStore, shop: str, *, steps: int = 8, events: int = 25) -> list[tuple[str, dict[str, Any]]]:
    """Live trading until every topic it can produce has occurred (at most `steps` steps)."""
    produced: list[tuple[str, dict[str, Any]]] = []
    for _ in range(steps):
        produced += ds.live_step(shop, events=events)
        if {topic for topic, _ in produced} >= LIVE_TOPICS:
            break
    return produced


def live_expected(produced: list[tuple[str, dict[str, Any]]]) -> tuple[
        dict[int, dict[str, Any] | None], dict[int, dict[str, Any]], dict[int, dict[str, Any] | None]]:
    """What trading left behind, from its events in order: each order's and customer's last payload
    (None once deleted), and every refund created."""
    orders: dict[int, dict[str, Any] | None] = {}
    refunds: dict[int, dict[str, Any]] = {}
    customers: dict[int, dict[str, Any] | None] = {}
    for topic, payload in produced:
        if topic in ("orders/create", "orders/updated", "orders/cancelled"):
            orders[payload["id"]] = payload
        elif topic == "orders/delete":
            orders[payload["id"]] = None
        elif topic == "refunds/create":
            refunds[payload["id"]] = payload
        elif topic in ("customers/create", "customers/update"):
            customers[payload["id"]] = payload
        elif topic == "customers/delete":
            customers[payload["id"]] = None
        else:
            raise AssertionError(f"live trading produced a topic this test does not know: {topic}")
    return orders, refunds, customers


def assert_live_trading_applied(shop: Shop, produced: list[tuple[str, dict[str, Any]]]) -> None:
    """The database holds what the events say, column by column where the app stores it."""
    orders, refunds, customers = live_expected(produced)
    deleted_orders = {oid for oid, payload in orders.items() if payload is None}
    for oid, payload in orders.items():
        row = Order.objects.filter(shop=shop, shopify_id=oid).first()
        if payload is None:
            assert row is None, f"order {oid} was deleted"
            assert not Refund.objects.filter(shop=shop, order_shopify_id=oid).exists()
            assert Deletion.objects.filter(shop=shop, kind=Deletion.Kind.ORDER, shopify_id=oid).exists()
            continue
        assert row is not None, f"order {oid} missing"
        customer = payload["customer"]
        expected = {
            "updated_at": _when(payload["updated_at"]), "cancelled_at": _when(payload["cancelled_at"]),
            "financial_status": payload["financial_status"].upper(), "test": payload["test"],
            "customer_shopify_id": customer["id"] if customer else None,
            "subtotal": _shop_money(payload["subtotal_price_set"]),
            "current_subtotal": _shop_money(payload["current_subtotal_price_set"]),
            "total": Decimal(payload["total_price"]), "current_total": Decimal(payload["current_total_price"]),
            "total_refunded": sum((_refund_shop_amounts(r)[0] for r in payload["refunds"]), Decimal(0)),
            "tags": [t.strip() for t in payload["tags"].split(",") if t.strip()],
        }
        assert {k: getattr(row, k) for k in expected} == expected, f"order {oid}"
        held = set(Refund.objects.filter(shop=shop, order_shopify_id=oid).values_list("shopify_id", flat=True))
        assert held == {r["id"] for r in payload["refunds"]}, f"refunds of order {oid}"
    for rid, payload in refunds.items():
        row = Refund.objects.filter(shop=shop, shopify_id=rid).first()
        if payload["order_id"] in deleted_orders:
            assert row is None, f"refund {rid} of a deleted order"
            continue
        assert row is not None, f"refund {rid} missing"
        total, subtotal = _refund_shop_amounts(payload)
        assert total > 0
        expected = {"order_shopify_id": payload["order_id"], "created_at": _when(payload["created_at"]),
                    "processed_at": _when(payload["processed_at"]), "amount": total, "subtotal_amount": subtotal}
        assert {k: getattr(row, k) for k in expected} == expected, f"refund {rid}"
    for cid, payload in customers.items():
        row = Customer.objects.filter(shop=shop, shopify_id=cid).first()
        if payload is None:
            assert row is None, f"customer {cid} was deleted"
            assert Deletion.objects.filter(shop=shop, kind=Deletion.Kind.CUSTOMER, shopify_id=cid).exists()
            continue
        assert row is not None, f"customer {cid} missing"
        # REST customer payloads carry only dates the app keeps (no stats, no tags since 2025-01).
        assert (row.created_at, row.updated_at) == (_when(payload["created_at"]), _when(payload["updated_at"])), (
            f"customer {cid}")


def scopes_update_through_worker(ds: DevStore, shop: Shop, scopes: list[str]) -> WebhookEvent:
    """The merchant changes the app's grant in Shopify; devstore sends app/scopes_update, the worker handles it."""
    seen = set(WebhookEvent.objects.filter(topic="app/scopes_update").values_list("pk", flat=True))
    ds.install("acme", scopes=scopes)
    assert ds.wait_webhooks(10)
    event = wait_for(lambda: WebhookEvent.objects.filter(topic="app/scopes_update", processed_at__isnull=False)
                     .exclude(pk__in=seen).first(), timeout=30)
    assert event.status == WebhookEvent.Status.PROCESSED, event.outcome
    assert event.payload["current"] == sorted(scopes)
    shop.refresh_from_db()
    return event


def test_every_webhook_topic_through_the_worker(devstore: DevStore, celery_worker_process) -> None:
    devstore.install("acme")
    assert embedded_load(devstore, "acme").status_code in (200, 302)
    shop = Shop.objects.get(domain=ACME)
    # The first backfill (run by the worker) finishes first: from here on, only webhooks bring changes in.
    backfill = SyncRun.objects.get(shop=shop, kind=SyncRun.Kind.BACKFILL)
    wait_for(lambda: SyncRun.objects.get(pk=backfill.pk).status == SyncRun.Status.SUCCEEDED, timeout=120)

    # Trading: orders/create, orders/updated, refunds/create, customers/* as the shop generates them.
    produced = live_trade(devstore, "acme")
    topics = {topic for topic, _ in produced}
    assert topics >= {"orders/create", "orders/updated", "refunds/create"}
    assert topics & CUSTOMER_LIVE_TOPICS
    assert devstore.wait_webhooks(60)
    delivered = {d["webhook_id"]: d["topic"] for d in devstore.deliveries("acme") if d["topic"] in topics}
    assert set(delivered.values()) == topics
    wait_for(lambda: WebhookEvent.objects.filter(webhook_id__in=delivered, processed_at__isnull=False).count()
             == len(delivered), timeout=120)
    # Every delivery recorded once under its topic and processed.
    assert dict(WebhookEvent.objects.filter(webhook_id__in=delivered).values_list("webhook_id", "topic")) == delivered
    assert set(WebhookEvent.objects.filter(webhook_id__in=delivered).values_list("status", flat=True)) == {
        WebhookEvent.Status.PROCESSED}
    assert not WebhookEvent.objects.filter(status__in=["failed", "rejected"]).exists()
    created = [payload for topic, payload in produced if topic == "orders/create"]
    assert created
    assert_live_trading_applied(shop, produced)
    assert not WebhookEvent.objects.filter(payload__icontains="@").exists()  # no emails stored

    # Compliance: data request, customer redact.
    # The first backfill (enqueued by the install, run by the worker) brings the customers in.
    def customer_with_orders() -> int | None:
        ids = Order.objects.filter(shop=shop, customer_shopify_id__isnull=False).values_list("customer_shopify_id",
                                                                                              flat=True)
        return next((cid for cid in ids if Customer.objects.filter(shop=shop, shopify_id=cid).exists()), None)

    customer_id = wait_for(customer_with_orders, timeout=90)
    devstore.trigger_compliance("customers/data_request", "acme", customer_id=customer_id)
    report = wait_for(lambda: CustomerDataReport.objects.filter(shop=shop, customer_shopify_id=customer_id).first(),
                      timeout=30)
    assert report.report["orders"]
    assert {o["shopify_id"] for o in report.report["orders"]} == set(
        Order.objects.filter(shop=shop, customer_shopify_id=customer_id).values_list("shopify_id", flat=True))
    devstore.trigger_compliance("customers/redact", "acme", customer_id=customer_id)
    wait_for(lambda: WebhookEvent.objects.filter(topic="customers/redact", status="processed").exists(), timeout=30)
    assert not Customer.objects.filter(shop=shop, shopify_id=customer_id).exists()
    assert not Order.objects.filter(shop=shop, customer_shopify_id=customer_id).exists()

    # Uninstall: app/uninstalled, then shop/redact, then a reinstall that starts clean.
    devstore.uninstall("acme")
    wait_for(lambda: Shop.objects.get(pk=shop.pk).state == "uninstalled", timeout=30)
    assert not ShopCredential.objects.filter(shop=shop).exists()
    devstore.trigger_compliance("shop/redact", "acme")
    wait_for(lambda: Shop.objects.get(pk=shop.pk).state == "redacted", timeout=30)
    assert not Order.objects.filter(shop=shop).exists()
    assert not Customer.objects.filter(shop=shop).exists()

    devstore.install("acme")
    assert embedded_load(devstore, "acme").status_code in (200, 302)
    shop.refresh_from_db()
    assert (shop.state, shop.needs_reauth_reason, shop.redacted_at, shop.uninstalled_at) == ("installed", "", None,
                                                                                             None)
    assert shop.name == devstore.ground_truth("acme").shop["name"]
    assert ShopCredential.objects.filter(shop=shop).count() == 1
    # An event type we do not handle: 200, recorded as dropped.
    devstore.platform.event(ACME, "products/create", {"id": 1}, urls=[f"{django_settings.APP_URL}/webhooks"])
    assert devstore.wait_webhooks(10)
    wait_for(lambda: WebhookEvent.objects.filter(topic="products/create", status="dropped").exists(), timeout=10)

    # app/scopes_update: the merchant changes the grant in Shopify; the shop follows each change.
    assert shop.granted_scopes == {"read_orders", "read_all_orders", "read_customers"}
    reinstall = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL).latest("created_at")
    wait_for(lambda: SyncRun.objects.get(pk=reinstall.pk).status == SyncRun.Status.SUCCEEDED, timeout=120)
    event = scopes_update_through_worker(devstore, shop, ["read_customers", "read_orders"])
    assert "read_all_orders revoked" in event.outcome
    assert (shop.scopes, shop.needs_reauth_reason) == ("read_customers,read_orders", "")
    assert ShopCredential.objects.get(shop=shop).scopes == "read_customers,read_orders"
    event = scopes_update_through_worker(devstore, shop, ["read_orders"])  # a required scope taken away
    assert shop.scopes == "read_orders"
    assert shop.needs_reauth_reason.startswith("scopes reduced to read_orders")
    assert shop.state == Shop.State.INSTALLED
    event = scopes_update_through_worker(devstore, shop, ["read_all_orders", "read_customers", "read_orders"])
    assert (shop.scopes, shop.needs_reauth_reason) == ("read_all_orders,read_customers,read_orders", "")
    assert ShopCredential.objects.get(shop=shop).scopes == shop.scopes
    assert "read_all_orders granted" in event.outcome
    # read_all_orders back: a new backfill fetches the full history, through the worker.
    full = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL).latest("created_at")
    assert full.pk != reinstall.pk
    assert f"backfill #{full.pk}" in event.outcome
    wait_for(lambda: SyncRun.objects.get(pk=full.pk).status == SyncRun.Status.SUCCEEDED, timeout=120)
    full.refresh_from_db()
    assert not full.history_limited
    assert Order.objects.filter(shop=shop).count() == len(devstore.ground_truth("acme").orders)


@pytest.mark.urls("tests.shops.urls_embedded")
def test_devstore_session_tokens_on_an_embedded_page(devstore: DevStore, live_server) -> None:
    devstore.install("acme")
    embedded_load(devstore, "acme")
    ok = httpx.get(f"{live_server.url}/t/orders", headers={"Authorization": f"Bearer {devstore.session_token('acme')}"})
    assert ok.status_code == 200
    assert ok.json()["shop"] == ACME
    assert ok.headers["content-security-policy"].startswith(f"frame-ancestors https://{ACME} ")
    # bravo is not installed in the app: its (valid) token gets nothing.
    refused = httpx.get(f"{live_server.url}/t/orders",
                        headers={"Authorization": f"Bearer {devstore.session_token('bravo')}"})
    assert refused.status_code == 401
    assert "orders" not in refused.text
    # The admin frame's document load (id_token in the query) works on any embedded page too.
    page = httpx.get(devstore.app_home_url("acme", path="/t/orders"))
    assert page.json()["shop"] == ACME


def test_reinstall_after_uninstall_starts_clean(devstore: DevStore) -> None:
    devstore.install("acme")
    embedded_load(devstore, "acme")
    shop = Shop.objects.get(domain=ACME)
    now = timezone.now()
    Order.objects.create(shop=shop, shopify_id=424242, processed_at=now, created_at=now, updated_at=now)
    services.shop_uninstall(shop=shop)
    Shop.objects.filter(pk=shop.pk).update(needs_reauth_reason="stale")
    redis.Redis.from_url(django_settings.REDIS_URL).delete("backfill")

    devstore.install("acme")
    assert embedded_load(devstore, "acme").status_code in (200, 302)
    shop.refresh_from_db()
    assert (shop.state, shop.uninstalled_at, shop.needs_reauth_reason) == ("installed", None, "")
    # What we held from before may have changed unseen: gone, and a fresh backfill is queued.
    assert not Order.objects.filter(shop=shop, shopify_id=424242).exists()
    run = SyncRun.objects.get(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.PENDING)
    assert queued_task_args("backfill") == [[run.pk]]
    assert ShopCredential.objects.filter(shop=shop).count() == 1


def test_per_shop_webhook_subscription_is_created_and_delivered(devstore: DevStore, live_server,
                                                                celery_worker_process) -> None:
    devstore.install("acme")
    embedded_load(devstore, "acme")
    shop = Shop.objects.get(domain=ACME)
    # shop/update is the one topic shopify.app.toml does not declare: the install subscribed it.
    assert "shop/update" not in services.app_declared_webhook_topics()
    subs = devstore.store("acme").webhook_subscriptions
    assert [(s["topic_rest"], s["uri"]) for s in subs] == [("shop/update", f"{live_server.url}/webhooks")]
    # Subscribing again (a reinstall) is harmless.
    token = services.access_token_get(shop=shop)
    assert services.webhooks_subscribe(shop_domain=ACME, access_token=token) == ["shop/update"]
    # The merchant moves the shop to another zone: the event reaches us and the shop follows.
    payload = {"id": 1, "name": "Acme Two", "currency": "NZD", "iana_timezone": "Pacific/Chatham",
               "plan_display_name": "Plus", "email": "owner@example.com", "shop_owner": "Dev Merchant"}
    deliveries = devstore.emit("shop/update", payload, "acme")
    assert [d["url"] for d in deliveries] == [f"{live_server.url}/webhooks"]
    assert devstore.wait_webhooks(10)
    wait_for(lambda: Shop.objects.get(pk=shop.pk).iana_timezone == "Pacific/Chatham", timeout=30)
    shop.refresh_from_db()
    assert (shop.name, shop.plan) == ("Acme Two", "Plus")
    event = WebhookEvent.objects.get(topic="shop/update")
    assert event.outcome == "updated name, iana_timezone, plan"
    assert event.payload == {"id": 1, "name": "Acme Two", "currency": "NZD", "iana_timezone": "Pacific/Chatham",
                             "plan_display_name": "Plus"}


def test_refresh_retries_once_with_the_previous_refresh_token(devstore: DevStore) -> None:
    devstore.install("acme")
    embedded_load(devstore, "acme")
    shop = Shop.objects.get(domain=ACME)
    credential = ShopCredential.objects.get(shop=shop)
    issued = credential.refresh_token
    # What we hold as current is not valid at Shopify (say, a response we never fully got);
    # the one before it still is.
    credential.refresh_token = "shprt_never_issued"  # noqa: S105
    credential.previous_refresh_token_encrypted = services.crypto_encrypt(issued)
    credential.save()
    token = services.credential_refresh(shop=shop, force=True)
    credential.refresh_from_db()
    assert credential.access_token == token
    assert credential.refresh_token not in (issued, "shprt_never_issued")
    shop.refresh_from_db()
    assert shop.needs_reauth_reason == ""
    assert services.admin_graphql(shop_domain=ACME, access_token=token, query="{ shop { name } }")
