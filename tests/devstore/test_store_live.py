"""Live trading: the shop changes and live_step returns REST-shaped webhook payloads.

Payload shapes follow the webhook reference examples (API 2026-10):
https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-orders/create
https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-refunds/create
https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-customers/create
https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-orders/delete
"""

from __future__ import annotations

import random
import re
from collections import Counter
from decimal import Decimal

import orjson
import pytest

from devstore import live
from devstore.store import ShopStore
from tests.devstore.gql import ALL_SCOPES, small_shop

MONEY_REST = re.compile(r"^\d+\.\d{2}$")
LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def money_set_ok(value: dict, pres: str) -> None:
    assert set(value) == {"shop_money", "presentment_money"}
    assert value["shop_money"]["currency_code"] == "NZD"
    assert MONEY_REST.match(value["shop_money"]["amount"])
    assert value["presentment_money"]["currency_code"] == pres
    assert isinstance(value["presentment_money"]["amount"], str)


@pytest.fixture(scope="module")
def traded() -> tuple[ShopStore, list[tuple[str, dict]]]:
    store, clock = small_shop(name="live", customers=150)
    events = store.live_step(150, random.Random(5))
    return store, events


def test_every_topic_occurs(traded: tuple[ShopStore, list]) -> None:
    _, events = traded
    topics = Counter(t for t, _ in events)
    for topic in ("orders/create", "orders/updated", "orders/cancelled", "orders/delete", "refunds/create",
                  "customers/create", "customers/update", "customers/delete"):
        assert topics[topic] > 0, topic


def test_order_payload_shape(traded: tuple[ShopStore, list]) -> None:
    store, events = traded
    payload = next(p for t, p in events if t == "orders/create" and p["customer"] is not None)
    assert isinstance(payload["id"], int)
    assert payload["admin_graphql_api_id"] == f"gid://shopify/Order/{payload['id']}"
    assert payload["name"] == f"#{payload['order_number']}"
    for key in ("subtotal_price", "total_price", "current_total_price", "current_subtotal_price", "total_tax"):
        assert MONEY_REST.match(payload[key]), key
    for key in ("subtotal_price_set", "total_price_set", "current_total_price_set", "current_subtotal_price_set"):
        money_set_ok(payload[key], payload["presentment_currency"])
    assert payload["currency"] == "NZD"
    assert payload["financial_status"] == "paid"
    assert isinstance(payload["test"], bool)
    assert isinstance(payload["tags"], str)
    for key in ("created_at", "updated_at", "processed_at"):
        assert LOCAL_TIME.match(payload[key]), key
        assert payload[key].endswith("+13:00")  # Pacific/Auckland in November (NZDT)
    assert payload["cancelled_at"] is None
    customer = payload["customer"]
    assert isinstance(customer["id"], int)
    assert customer["admin_graphql_api_id"] == f"gid://shopify/Customer/{customer['id']}"
    assert payload["refunds"] == []
    assert isinstance(payload["line_items"][0]["id"], int)


def test_refund_payload_shape(traded: tuple[ShopStore, list]) -> None:
    _, events = traded
    payload = next(p for t, p in events if t == "refunds/create" and p["refund_line_items"])
    assert isinstance(payload["id"], int)
    assert payload["admin_graphql_api_id"] == f"gid://shopify/Refund/{payload['id']}"
    assert isinstance(payload["order_id"], int)
    assert LOCAL_TIME.match(payload["created_at"])
    item = payload["refund_line_items"][0]
    # The docs' example carries subtotal/total_tax as JSON numbers, the *_set amounts as strings.
    assert isinstance(item["subtotal"], float)
    assert isinstance(item["line_item_id"], int)
    assert MONEY_REST.match(item["subtotal_set"]["shop_money"]["amount"])
    (txn,) = payload["transactions"]
    assert txn["kind"] == "refund"
    assert txn["status"] == "success"
    assert isinstance(txn["amount"], str)


def test_customer_and_delete_payloads(traded: tuple[ShopStore, list]) -> None:
    _, events = traded
    created = next(p for t, p in events if t == "customers/create")
    assert isinstance(created["id"], int)
    assert created["admin_graphql_api_id"] == f"gid://shopify/Customer/{created['id']}"
    assert LOCAL_TIME.match(created["created_at"])
    assert created["state"] in {"enabled", "disabled"}
    deleted = next(p for t, p in events if t == "customers/delete")
    assert deleted["admin_graphql_api_id"] == f"gid://shopify/Customer/{deleted['id']}"
    order_deleted = next(p for t, p in events if t == "orders/delete")
    assert set(order_deleted) == {"id"}
    assert isinstance(order_deleted["id"], int)


def test_ground_truth_follows_the_events(traded: tuple[ShopStore, list]) -> None:
    store, events = traded
    truth = store.ground_truth()
    orders = {o["shopify_id"]: o for o in truth["orders"]}
    customers = {c["shopify_id"] for c in truth["customers"]}
    deleted_orders = {p["id"] for t, p in events if t == "orders/delete"}
    deleted_customers = {p["id"] for t, p in events if t == "customers/delete"}
    assert deleted_orders
    assert not deleted_orders & set(orders)
    assert deleted_customers
    assert not deleted_customers & customers
    last_update: dict[int, dict] = {}
    for topic, payload in events:
        if topic in ("orders/create", "orders/updated", "orders/cancelled"):
            last_update[payload["id"]] = payload
    for oid, payload in last_update.items():
        if oid in deleted_orders:
            continue
        assert orders[oid]["current_total"] == Decimal(payload["current_total_price"])
        if payload["presentment_currency"] == "NZD":  # transactions are in presentment money
            assert orders[oid]["total_refunded"] == sum(
                (Decimal(t["amount"]) for r in payload["refunds"] for t in r["transactions"]), Decimal(0)
            )
    refunds = {r["shopify_id"] for r in truth["refunds"]}
    for topic, payload in events:
        if topic == "refunds/create" and payload["order_id"] not in deleted_orders:
            assert payload["id"] in refunds


def test_same_rng_same_events() -> None:
    a, _ = small_shop(name="twin", customers=60)
    b, _ = small_shop(name="twin", customers=60)
    ev_a = a.live_step(30, random.Random(9))
    ev_b = b.live_step(30, random.Random(9))
    assert [t for t, _ in ev_a] == [t for t, _ in ev_b]
    assert [p.get("id") for _, p in ev_a] == [p.get("id") for _, p in ev_b]



def test_live_order_edits_move_the_current_amounts_without_a_refund() -> None:
    """Order editing (items added or removed): currentSubtotalPriceSet/currentTotalPriceSet and
    updatedAt move, subtotal/total keep the checkout's amounts, no refund is created; the
    orders/updated payload, the GraphQL answer and the ground truth agree."""
    store, _ = small_shop(name="edits", customers=80)
    rng = random.Random(3)
    moved = []
    for _ in range(40):
        before = store.ground_truth()
        ((topic, payload),) = live._edit(store, rng)
        assert topic == "orders/updated"
        after = store.ground_truth()
        old = next(o for o in before["orders"] if o["shopify_id"] == payload["id"])
        new = next(o for o in after["orders"] if o["shopify_id"] == payload["id"])
        assert new["updated_at"] > old["updated_at"]
        assert (new["subtotal"], new["total"], new["total_refunded"]) == (
            old["subtotal"], old["total"], old["total_refunded"])
        assert len(after["refunds"]) == len(before["refunds"])
        assert Decimal(payload["current_total_price"]) == new["current_total"]
        assert Decimal(payload["current_subtotal_price"]) == new["current_subtotal"]
        delta = new["current_total"] - old["current_total"]
        assert new["current_subtotal"] - old["current_subtotal"] == delta
        if delta:
            moved.append(new)
            assert new["current_subtotal"] > 0
    assert len(moved) >= 10  # most edits change what was bought, not only a tag
    query = ("query($id: ID!) { node(id: $id) { ... on Order { currentSubtotalPriceSet { shopMoney { amount } } "
             "currentTotalPriceSet { shopMoney { amount } } totalPriceSet { shopMoney { amount } } } } }")
    for new in moved[-3:]:
        body = orjson.dumps({"query": query, "variables": {"id": f"gid://shopify/Order/{new['shopify_id']}"}})
        status, _, answer = store.handle_graphql(ALL_SCOPES, body)
        assert status == 200
        node = orjson.loads(answer)["data"]["node"]
        assert Decimal(node["currentTotalPriceSet"]["shopMoney"]["amount"]) == new["current_total"]
        assert Decimal(node["currentSubtotalPriceSet"]["shopMoney"]["amount"]) == new["current_subtotal"]
        assert Decimal(node["totalPriceSet"]["shopMoney"]["amount"]) == new["total"]
