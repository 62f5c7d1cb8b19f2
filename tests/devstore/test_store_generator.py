"""The generated shop: deterministic, buy-till-you-die shaped, full of Shopify's traps, self-consistent."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest

from devstore.store import RFM_GROUPS, ShopStore
from tests.devstore.gql import NOW, small_shop


@pytest.fixture(scope="module")
def shop() -> ShopStore:
    store, _ = small_shop(customers=400, months=30)
    return store


@pytest.fixture(scope="module")
def truth(shop: ShopStore) -> dict:
    return shop.ground_truth()


def test_same_seed_same_shop_other_seed_other_shop() -> None:
    a = ShopStore.generate(name="a", seed=11, customers=80, months=12, now=NOW).ground_truth()
    b = ShopStore.generate(name="a", seed=11, customers=80, months=12, now=NOW).ground_truth()
    c = ShopStore.generate(name="a", seed=12, customers=80, months=12, now=NOW).ground_truth()
    assert a["orders"] == b["orders"]
    assert a["customers"] == b["customers"]
    assert a["refunds"] == b["refunds"]
    assert a["orders"] != c["orders"]


def test_exact_order_count_when_asked() -> None:
    store = ShopStore.generate(name="sized", seed=3, customers=500, orders=2345, months=24, now=NOW)
    assert store.order_count() == 2345
    # Guests are part of the total, roughly 8 %.
    guests = store.reader().execute("SELECT count(*) FROM orders WHERE customer_id IS NULL").fetchone()[0]
    assert 100 < guests < 300


def test_buy_till_you_die_shape(truth: dict) -> None:
    per_customer = Counter(o["customer_shopify_id"] for o in truth["orders"] if o["customer_shopify_id"])
    counts = Counter(per_customer.values())
    # Mostly one-off buyers, a long tail of repeaters.
    assert counts[1] > counts[2] > 0
    assert max(per_customer.values()) >= 6
    last: dict[int, float] = {}
    for o in truth["orders"]:
        cid = o["customer_shopify_id"]
        if cid:
            last[cid] = max(last.get(cid, 0.0), o["created_at"].timestamp())
    # Some repeat buyers stopped long ago (dropped out), others bought recently.
    repeaters = [cid for cid, n in per_customer.items() if n >= 3]
    stopped = [cid for cid in repeaters if NOW - last[cid] > 180 * 86400]
    recent = [cid for cid in repeaters if NOW - last[cid] < 60 * 86400]
    assert stopped
    assert recent
    # Prospects: customers without orders.
    assert any(c["number_of_orders"] == 0 for c in truth["customers"])


def test_spend_is_skewed(truth: dict) -> None:
    totals = sorted(o["total"] for o in truth["orders"])
    median = totals[len(totals) // 2]
    mean = sum(totals) / len(totals)
    assert mean > median  # right-skewed
    assert totals[-1] > 4 * median


def test_traps_are_present(truth: dict) -> None:
    orders = truth["orders"]
    assert any(o["customer_shopify_id"] is None for o in orders), "guest checkouts"
    assert any(o["test"] for o in orders), "test orders"
    assert any(o["cancelled_at"] is not None for o in orders), "cancelled orders"
    assert any(o["financial_status"] == "VOIDED" for o in orders)
    assert any(o["financial_status"] == "PARTIALLY_REFUNDED" for o in orders)
    assert any(o["financial_status"] == "REFUNDED" for o in orders)
    assert any(o["processed_at"] < o["created_at"] for o in orders), "imported orders"
    assert any(o["updated_at"] - o["created_at"] > timedelta(days=1) for o in orders), "edits move updatedAt"
    presentment = {o["presentment_currency"] for o in orders}
    assert "NZD" in presentment
    assert len(presentment) >= 3
    assert {o["currency"] for o in orders} == {"NZD"}
    assert any(o["tags"] for o in orders)


def test_refunds_are_dated_after_their_order(truth: dict) -> None:
    orders = {o["shopify_id"]: o for o in truth["orders"]}
    assert truth["refunds"]
    for r in truth["refunds"]:
        order = orders[r["order_shopify_id"]]
        assert r["created_at"] > order["created_at"]
        assert r["created_at"] <= order["updated_at"]
        assert Decimal(0) < r["subtotal_amount"] <= r["amount"]


def test_ground_truth_is_consistent(truth: dict) -> None:
    by_order: dict[int, list[dict]] = defaultdict(list)
    for r in truth["refunds"]:
        by_order[r["order_shopify_id"]].append(r)
    edited = []
    for o in truth["orders"]:
        refunds = by_order[o["shopify_id"]]
        assert o["total_refunded"] == sum((r["amount"] for r in refunds), Decimal(0))
        # An order edit moves the current line items (and so both current amounts) by one delta,
        # with no refund; subtotal and total keep the checkout's amounts.
        edit = o["current_subtotal"] - (o["subtotal"] - sum((r["subtotal_amount"] for r in refunds), Decimal(0)))
        assert o["current_total"] == o["total"] + edit - o["total_refunded"]
        if edit:
            edited.append(o)
            assert not refunds
            assert o["current_subtotal"] > 0
            assert o["updated_at"] > o["created_at"]
            assert o["financial_status"] == "PAID"
        assert o["total"] >= o["subtotal"]
        if o["financial_status"] == "REFUNDED":
            assert o["current_total"] == 0
        assert o["name"].startswith("#")
    # Some edits added items, some removed them.
    assert any(o["current_total"] > o["total"] for o in edited)
    assert any(o["current_total"] < o["total"] for o in edited)
    ids = [o["shopify_id"] for o in truth["orders"]]
    assert len(ids) == len(set(ids))


def test_customer_figures_as_shopify_reports_them(truth: dict) -> None:
    orders_of: dict[int, list[dict]] = defaultdict(list)
    for o in truth["orders"]:
        if o["customer_shopify_id"]:
            orders_of[o["customer_shopify_id"]].append(o)
    for c in truth["customers"]:
        mine = orders_of[c["shopify_id"]]
        assert c["number_of_orders"] == sum(1 for o in mine if not o["test"])
        kept = [o for o in mine if not o["test"] and o["financial_status"] != "VOIDED"]
        assert c["amount_spent"] == sum((o["current_total"] for o in kept), Decimal(0))
        assert c["amount_spent_currency"] == "NZD"
        assert c["rfm_group"] in RFM_GROUPS
        assert (c["rfm_group"] == "PROSPECTS") == (c["number_of_orders"] == 0)
        assert c["created_at"] <= c["updated_at"]
        if mine:
            assert c["created_at"] <= min(o["created_at"] for o in mine)
    groups = Counter(c["rfm_group"] for c in truth["customers"])
    assert len(groups) >= 8


def test_erased_customers_leave_orders_without_a_customer(shop: ShopStore, truth: dict) -> None:
    known = {c["shopify_id"] for c in truth["customers"]}
    assert all(o["customer_shopify_id"] in known for o in truth["orders"] if o["customer_shopify_id"])
    # The generator erased some buyers (GDPR): their records are gone, their orders remain, customerless.
    assert shop.erased_customer_ids
    assert not known & set(shop.erased_customer_ids)
    orders = {o["shopify_id"]: o for o in truth["orders"]}
    assert shop.erased_customer_order_ids
    assert all(orders[oid]["customer_shopify_id"] is None for oid in shop.erased_customer_order_ids)


def test_shop_record(truth: dict) -> None:
    assert truth["shop"] == {
        "domain": "acme.myshopify.com",
        "name": "Acme",
        "currency": "NZD",
        "iana_timezone": "Pacific/Auckland",
        "plan": "Basic",
        "shopify_gid": truth["shop"]["shopify_gid"],
    }
    assert truth["shop"]["shopify_gid"].startswith("gid://shopify/Shop/")


def test_zero_decimal_shop_currency() -> None:
    store = ShopStore.generate(name="tokyo", seed=5, customers=60, months=12, currency="JPY",
                               iana_timezone="Asia/Tokyo", now=NOW)
    truth = store.ground_truth()
    totals = sorted(o["total"] for o in truth["orders"])
    assert all(t == t.to_integral_value() for t in totals)  # yen have no minor unit
    assert 2_000 < totals[len(totals) // 2] < 50_000  # a typical order is thousands of yen
    assert truth["shop"]["currency"] == "JPY"
