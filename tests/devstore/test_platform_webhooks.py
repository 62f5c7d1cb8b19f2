"""Contract tests for devstore's webhook deliveries: headers, signature, retries, fault knobs.

- headers and signature: https://shopify.dev/docs/apps/build/webhooks/delivery-structure and
  https://shopify.dev/docs/apps/build/webhooks/verify-deliveries
- "retried a total of 8 times over 4 hours using an exponential backoff schedule ... with the
  original payload": https://shopify.dev/changelog/updates-to-webhook-retry-mechanism
- compliance payloads: https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from shopify_app import verify_webhook_req

from devstore.testing import DevStore, ShopSpec, wait_until
from shops.security import webhook_hmac_valid
from tests.devstore.platform_support import API_KEY, SECRET, Receiver, ShopClient, receiver_serve

TOML = """
name = "Tenure"
application_url = "https://example.invalid"
[access_scopes]
scopes = "read_orders,read_all_orders,read_customers"
[webhooks]
api_version = "2026-10"
  [[webhooks.subscriptions]]
  topics = ["app/uninstalled", "orders/create", "orders/updated", "orders/cancelled", "orders/delete",
            "refunds/create", "customers/create", "customers/update", "customers/delete"]
  uri = "/webhooks"
  [[webhooks.subscriptions]]
  compliance_topics = ["customers/data_request", "customers/redact", "shop/redact"]
  uri = "/webhooks/compliance"
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiver_serve() as state:
        yield state


@pytest.fixture
def toml_path(tmp_path: Path) -> Path:
    path = tmp_path / "shopify.app.toml"
    path.write_text(TOML)
    return path


def devstore(receiver: Receiver, toml_path: Path, **kwargs: Any) -> DevStore:
    options: dict[str, Any] = {"api_key": API_KEY, "api_secret": SECRET, "app_url": receiver.url,
                               "toml_path": toml_path, "retry_scale": 1e-4}
    options.update(kwargs)
    return DevStore([ShopSpec(name="acme", customers=30, months=3, currency="NZD",
                              iana_timezone="Pacific/Auckland")], **options)


def test_deliveries_carry_shopify_headers_and_a_verifiable_signature(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path, webhook_concurrency=1) as ds:
        ds.install("acme")
        events = ds.live_step("acme", events=5)
        assert ds.wait_webhooks(10)
    assert len(receiver.received) == len(events) > 0
    assert receiver.topics() == [topic for topic, _ in events]  # one sender at a time keeps the order here
    for got, (topic, payload) in zip(receiver.received, events, strict=True):
        assert got.path == "/webhooks"
        h = got.headers
        assert h["X-Shopify-Topic"] == topic
        assert h["X-Shopify-Shop-Domain"] == "acme.myshopify.com"
        assert h["X-Shopify-API-Version"] == "2026-10"
        assert h["Content-Type"] == "application/json"
        uuid.UUID(h["X-Shopify-Webhook-Id"])
        uuid.UUID(h["X-Shopify-Event-Id"])
        assert datetime.fromisoformat(h["X-Shopify-Triggered-At"]).tzinfo is not None
        assert got.json() == json.loads(json.dumps(payload, default=str))
        # The app's verifier and the SDK's both accept the base64 HMAC of the raw body.
        assert webhook_hmac_valid(got.body, h["X-Shopify-Hmac-Sha256"], secret=SECRET)
        result = verify_webhook_req({"method": "POST", "headers": h, "url": receiver.url + got.path,
                                     "body": got.body.decode()}, {"client_id": API_KEY, "client_secret": SECRET})
        assert result.ok, result.log
        assert result.shop == "acme"
    assert len({r.headers["X-Shopify-Webhook-Id"] for r in receiver.received}) == len(events)


def test_a_failing_endpoint_gets_retries_with_growing_gaps_and_the_same_delivery(
    receiver: Receiver, toml_path: Path
) -> None:
    receiver.status = lambda n: 500 if n <= 3 else 200
    with devstore(receiver, toml_path, retry_scale=1e-3) as ds:  # gaps 60, 120, 240 ms
        ds.install("acme")
        ds.emit("customers/update", {"id": 1, "admin_graphql_api_id": "gid://shopify/Customer/1"}, shop="acme")
        assert ds.wait_webhooks(10)
        log = ds.deliveries("acme")
    assert len(receiver.received) == 4
    assert len({r.headers["X-Shopify-Webhook-Id"] for r in receiver.received}) == 1
    assert len({r.headers["X-Shopify-Triggered-At"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= 0.055
    assert gaps[1] >= 0.115
    assert gaps[2] >= 0.235
    assert gaps[0] < gaps[1] < gaps[2]
    assert log[0]["state"] == "delivered"
    assert [a["status"] for a in log[0]["attempts"]] == [500, 500, 500, 200]


def test_a_dead_endpoint_gets_one_try_and_eight_retries_then_the_delivery_fails(
    receiver: Receiver, toml_path: Path
) -> None:
    receiver.status = lambda n: 503
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        ds.emit("orders/delete", {"id": 5}, shop="acme")
        assert ds.wait_webhooks(10)
        log = ds.deliveries("acme")
    assert len(receiver.received) == 9
    assert log[0]["state"] == "failed"
    assert len(log[0]["attempts"]) == 9


def test_a_slow_endpoint_times_out_and_is_retried(receiver: Receiver, toml_path: Path) -> None:
    receiver.delay_s = lambda n: 0.6 if n == 1 else 0.0
    with devstore(receiver, toml_path, webhook_timeout_s=0.2) as ds:
        ds.install("acme")
        ds.emit("orders/create", {"id": 9}, shop="acme")
        assert ds.wait_webhooks(10)
        attempts = ds.deliveries("acme")[0]["attempts"]
    assert attempts[0]["status"] is None
    assert "timed out" in attempts[0]["error"]
    assert attempts[-1]["status"] == 200


def test_duplicate_knob_sends_the_same_delivery_twice(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        ds.set_faults("acme", webhook_duplicate_rate=1.0)
        ds.emit("orders/updated", {"id": 1}, shop="acme")
        assert ds.wait_webhooks(10)
    assert len(receiver.received) == 2
    first, second = receiver.received
    for header in ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id", "X-Shopify-Hmac-Sha256"):
        assert first.headers[header] == second.headers[header]
    assert first.body == second.body


def test_out_of_order_knob_lets_a_later_event_overtake(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        ds.set_faults("acme", webhook_out_of_order_rate=1.0, webhook_reorder_delay_ms=300)
        ds.emit("orders/updated", {"id": 1, "updated_at": "2026-01-01T00:00:00Z"}, shop="acme")
        ds.set_faults("acme", webhook_out_of_order_rate=0)
        ds.emit("orders/updated", {"id": 1, "updated_at": "2026-01-01T00:05:00Z"}, shop="acme")
        assert ds.wait_webhooks(10)
    assert [r.json()["updated_at"] for r in receiver.received] == ["2026-01-01T00:05:00Z", "2026-01-01T00:00:00Z"]
    older, newer = receiver.received[1], receiver.received[0]
    assert older.headers["X-Shopify-Triggered-At"] < newer.headers["X-Shopify-Triggered-At"]


def test_drop_knob_loses_deliveries_and_logs_them(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        ds.set_faults("acme", webhook_drop_rate=1.0)
        ds.emit("orders/create", {"id": 1}, shop="acme")
        ds.emit("orders/create", {"id": 2}, shop="acme")
        ds.set_faults("acme", webhook_drop_rate=None)
        ds.emit("orders/create", {"id": 3}, shop="acme")
        assert ds.wait_webhooks(10)
        states = [d["state"] for d in ds.deliveries("acme")]
    assert [r.json()["id"] for r in receiver.received] == [3]
    assert states == ["dropped", "dropped", "delivered"]


def test_rates_are_shares_of_deliveries(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path, webhook_concurrency=8) as ds:
        ds.install("acme")
        ds.set_faults("acme", webhook_drop_rate=0.25)
        for i in range(200):
            ds.emit("orders/create", {"id": i}, shop="acme")
        assert ds.wait_webhooks(20)
    assert 25 <= 200 - len(receiver.received) <= 75  # 50 expected; seeded, so stable


def test_uninstall_sends_app_uninstalled_and_stops_shop_deliveries(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        assert ds.uninstall("acme")
        assert ds.wait_webhooks(10)
        assert receiver.topics() == ["app/uninstalled"]
        payload = receiver.received[0].json()
        assert payload["myshopify_domain"] == "acme.myshopify.com"
        assert payload["currency"] == "NZD"
        assert isinstance(payload["id"], int)
        ds.live_step("acme", events=3)
        ds.emit("orders/create", {"id": 1}, shop="acme")
        assert ds.wait_webhooks(10)
    assert receiver.topics() == ["app/uninstalled"]  # nothing after the uninstall


def test_nothing_is_delivered_before_install(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.live_step("acme", events=3)
        assert ds.wait_webhooks(5)
    assert receiver.received == []


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
def test_compliance_webhooks_have_shopifys_payloads(receiver: Receiver, toml_path: Path, topic: str) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        customer = ds.ground_truth("acme").customers[0]["shopify_id"]
        ds.trigger_compliance(topic, "acme", customer_id=customer)
        assert ds.wait_webhooks(10)
        shop_id = int(ds.ground_truth("acme").shop["shopify_gid"].rsplit("/", 1)[1])
        orders = sorted(o["shopify_id"] for o in ds.ground_truth("acme").orders if o["customer_shopify_id"] == customer)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.path == "/webhooks/compliance"
    assert got.topic == topic
    payload = got.json()
    if topic == "shop/redact":
        assert payload == {"shop_id": shop_id, "shop_domain": "acme.myshopify.com"}
        return
    assert set(payload["customer"]) == {"id", "email", "phone"}
    assert payload["customer"]["id"] == customer
    if topic == "customers/redact":
        assert set(payload) == {"shop_id", "shop_domain", "customer", "orders_to_redact"}
        assert payload["orders_to_redact"] == orders
    else:
        assert set(payload) == {"shop_id", "shop_domain", "customer", "orders_requested", "data_request"}
        assert payload["orders_requested"] == orders
        assert isinstance(payload["data_request"]["id"], int)


SUBSCRIBE = """mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic } userErrors { field message } } }"""


def test_api_created_subscriptions_get_deliveries_too(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        token = ds.platform.registry.grant_tokens("acme.myshopify.com",
                                                  ds.platform.registry.grants["acme.myshopify.com"],
                                                  expiring=True)["access_token"]
        response = ShopClient(ds.base_url, "acme.myshopify.com").graphql(
            token, SUBSCRIBE, {"topic": "BULK_OPERATIONS_FINISH", "sub": {"uri": receiver.url + "/hooks/bulk"}})
        assert response.json()["data"]["webhookSubscriptionCreate"]["userErrors"] == []
        ds.emit("bulk_operations/finish", {"admin_graphql_api_id": "gid://shopify/BulkOperation/1"}, shop="acme")
        assert ds.wait_webhooks(10)
        assert [r.path for r in receiver.received] == ["/hooks/bulk"]
        ds.uninstall("acme")  # drops the app's API-created subscriptions
        ds.install("acme")
        ds.emit("bulk_operations/finish", {"admin_graphql_api_id": "gid://shopify/BulkOperation/2"}, shop="acme")
        assert ds.wait_webhooks(10)
    assert [r.path for r in receiver.received] == ["/hooks/bulk", "/webhooks"]  # then app/uninstalled only


def test_live_mode_keeps_trading_in_the_background(receiver: Receiver, toml_path: Path) -> None:
    with devstore(receiver, toml_path, live=True, live_interval_s=0.05, live_events=2) as ds:
        ds.install("acme")
        before = len(ds.ground_truth("acme").orders)
        assert wait_until(lambda: len(receiver.received) >= 6, timeout=10)
        after = len(ds.ground_truth("acme").orders)
    assert after >= before
    assert {r.headers["X-Shopify-Shop-Domain"] for r in receiver.received} == {"acme.myshopify.com"}


def test_live_step_is_deterministic_for_a_seed(receiver: Receiver, toml_path: Path) -> None:
    def run() -> list[str]:
        spec = ShopSpec(name="acme", seed=11, customers=25, months=2, now=1_795_132_800)
        with DevStore([spec], api_key=API_KEY, api_secret=SECRET, app_url=receiver.url, toml_path=toml_path) as ds:
            return [topic for topic, _ in ds.live_step("acme", events=12)]

    first, second = run(), run()
    assert first == second
    assert len(first) >= 12


def test_changed_grant_sends_app_scopes_update(receiver: Receiver, toml_path: Path) -> None:
    toml_path.write_text(TOML.replace('"app/uninstalled",', '"app/uninstalled", "app/scopes_update",'))
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        ds.install("acme")  # same scopes: nothing to say
        ds.install("acme", scopes="read_orders,read_customers")
        assert ds.wait_webhooks(10)
    assert receiver.topics() == ["app/scopes_update"]
    payload = receiver.received[0].json()
    assert payload["previous"] == ["read_all_orders", "read_customers", "read_orders"]
    assert payload["current"] == ["read_customers", "read_orders"]
    assert {"id", "shop_id", "updated_at"} <= set(payload)


def test_the_delivery_log_forgets_old_finished_deliveries(receiver: Receiver, toml_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from devstore import webhooks

    monkeypatch.setattr(webhooks, "LOG_LIMIT", 10)
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        ds.set_faults("acme", webhook_drop_rate=1.0)  # finished at once
        for i in range(30):
            ds.emit("orders/create", {"id": i}, shop="acme")
        log = ds.deliveries("acme")
    assert len(log) <= 10
    assert [d["seq"] for d in log] == sorted({d["seq"] for d in log})
    assert log[-1]["seq"] == 30
    assert log[-1]["payload"] == {"id": 29}


def test_a_finished_bulk_operation_is_delivered_as_bulk_operations_finish(receiver: Receiver,
                                                                          toml_path: Path) -> None:
    toml_path.write_text(TOML.replace('"app/uninstalled",', '"app/uninstalled", "bulk_operations/finish",'))
    run = """mutation { bulkOperationRunQuery(query: \"\"\"{ customers { edges { node { id } } } }\"\"\") {
      bulkOperation { id } userErrors { message } } }"""
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        registry = ds.platform.registry
        token = registry.grant_tokens("acme.myshopify.com", registry.grants["acme.myshopify.com"],
                                      expiring=False)["access_token"]
        started = ShopClient(ds.base_url, "acme.myshopify.com").graphql(token, run).json()
        op_id = started["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
        assert wait_until(lambda: "bulk_operations/finish" in receiver.topics(), timeout=20)
    got = next(r for r in receiver.received if r.topic == "bulk_operations/finish")
    assert got.json()["admin_graphql_api_id"] == op_id
    assert got.json()["status"] == "completed"


def test_include_fields_trims_the_payload_of_an_api_subscription(receiver: Receiver, toml_path: Path) -> None:
    toml_path.write_text(TOML.replace('"orders/updated", ', ""))
    with devstore(receiver, toml_path) as ds:
        ds.install("acme")
        registry = ds.platform.registry
        token = registry.grant_tokens("acme.myshopify.com", registry.grants["acme.myshopify.com"],
                                      expiring=False)["access_token"]
        created = ShopClient(ds.base_url, "acme.myshopify.com").graphql(token, SUBSCRIBE, {
            "topic": "ORDERS_UPDATED",
            "sub": {"uri": receiver.url + "/slim", "includeFields": ["id", "updated_at"]}}).json()
        assert created["data"]["webhookSubscriptionCreate"]["userErrors"] == []
        ds.emit("orders/updated", {"id": 7, "updated_at": "2026-01-01T00:00:00Z", "total_price": "9.99"}, shop="acme")
        assert ds.wait_webhooks(10)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.path == "/slim"
    assert got.json() == {"id": 7, "updated_at": "2026-01-01T00:00:00Z"}
    assert webhook_hmac_valid(got.body, got.headers["X-Shopify-Hmac-Sha256"], secret=SECRET)
