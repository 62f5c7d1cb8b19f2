"""Shopify's search syntax as devstore applies it (https://shopify.dev/docs/api/usage/search-syntax)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstore.search import Term, search_parse
from tests.devstore.gql import Api, api_shop


def test_parse_terms_quotes_comparators_and_connectives() -> None:
    assert search_parse("updated_at:>='2026-01-01T00:00:00Z' test:false") == [[
        Term("updated_at", ">=", "2026-01-01T00:00:00Z"),
        Term("test", "=", "false"),
    ]]
    assert search_parse('status:cancelled OR -tag:"gift wrap" NOT financial_status:paid') == [
        [Term("status", "=", "cancelled")],
        [Term("tag", "=", "gift wrap", negated=True), Term("financial_status", "=", "paid", negated=True)],
    ]
    assert search_parse("id:<=5 AND created_at:<2026-02-01") == [[
        Term("id", "<=", "5"), Term("created_at", "<", "2026-02-01"),
    ]]
    assert search_parse("") == []
    assert search_parse(None) == []


@pytest.fixture(scope="module")
def shop() -> Iterator[Api]:
    with api_shop("searchy", customers=100, months=18) as api:
        api.store.faults["throttle_bucket_size"] = 10**9
        yield api


def count(shop: Api, query: str, field: str = "ordersCount") -> int:
    status, body = shop.gql(f"query($q: String) {{ c: {field}(query: $q, limit: null) {{ count }} }}", {"q": query})
    assert "errors" not in body, body
    return int(body["data"]["c"]["count"])


def test_or_negation_and_ranges(shop: Api) -> None:
    orders = shop.store.ground_truth()["orders"]
    assert count(shop, "status:cancelled OR test:true") == sum(
        1 for o in orders if o["cancelled_at"] is not None or o["test"]
    )
    assert count(shop, "-status:cancelled") == sum(1 for o in orders if o["cancelled_at"] is None)
    assert count(shop, "financial_status:partially_refunded") == sum(
        1 for o in orders if o["financial_status"] == "PARTIALLY_REFUNDED"
    )
    cut = datetime(2026, 3, 1, tzinfo=UTC)
    assert count(shop, "processed_at:<'2026-03-01T00:00:00Z'") == sum(1 for o in orders if o["processed_at"] < cut)
    tagged = [o for o in orders if "gift" in o["tags"]]
    assert tagged
    assert count(shop, "tag:gift") == len(tagged)
    customer = next(o["customer_shopify_id"] for o in orders if o["customer_shopify_id"])
    assert count(shop, f"customer_id:{customer}") == sum(1 for o in orders if o["customer_shopify_id"] == customer)


def test_customer_filters_and_customer_orders(shop: Api) -> None:
    truth = shop.store.ground_truth()
    customers = truth["customers"]
    assert count(shop, "orders_count:>2", "customersCount") == sum(1 for c in customers if c["number_of_orders"] > 2)
    regular = max(customers, key=lambda c: c["number_of_orders"])
    status, body = shop.gql(
        "query($id: ID!) { customer(id: $id) { numberOfOrders orders(first: 50) { nodes { legacyResourceId } } "
        "lastOrder { legacyResourceId } } }",
        {"id": f"gid://shopify/Customer/{regular['shopify_id']}"},
    )
    mine = [o for o in truth["orders"] if o["customer_shopify_id"] == regular["shopify_id"]]
    data = body["data"]["customer"]
    assert sorted(int(n["legacyResourceId"]) for n in data["orders"]["nodes"]) == sorted(o["shopify_id"] for o in mine)
    latest = max(mine, key=lambda o: (o["created_at"], o["shopify_id"]))
    assert data["lastOrder"]["legacyResourceId"] == str(latest["shopify_id"])
