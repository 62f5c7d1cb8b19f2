"""Calculated query cost and the leaky bucket, over HTTP.

https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits : every response carries
``extensions.cost`` {requestedQueryCost, actualQueryCost, throttleStatus{maximumAvailable,
currentlyAvailable, restoreRate}}; a throttled request is HTTP 200 with
errors[0].extensions.code == "THROTTLED" and actualQueryCost null; a single query may not
cost more than 1,000 points (MAX_COST_EXCEEDED).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.devstore.gql import Api, api_shop


@pytest.fixture
def shop() -> Iterator[Api]:
    with api_shop("costly", customers=60, months=12) as api:
        yield api


def test_cost_extension_on_every_response(shop: Api) -> None:
    status, body = shop.gql("{ orders(first: 10) { nodes { id } } }")
    assert status == 200
    # Connection: 2 + first x (1 per Order object); scalars are free.
    assert body["extensions"] == {"cost": {
        "requestedQueryCost": 12,
        "actualQueryCost": 12,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1988, "restoreRate": 100.0},
    }}
    # Asking for 10 but getting 1 back: the unused part of the requested cost is refunded.
    one = shop.store.ground_truth()["orders"][0]["shopify_id"]
    status, body = shop.gql(f'{{ orders(first: 10, query: "id:{one}") {{ nodes {{ id }} }} }}')
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 12
    assert cost["actualQueryCost"] == 3
    assert cost["throttleStatus"]["currentlyAvailable"] == 1988 - 3
    # Errors met while running carry the extension too...
    status, body = shop.gql('{ orders(first: 1, after: "not-a-cursor") { nodes { id } } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert set(body["extensions"]["cost"]) == {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
    # ...a document Shopify refuses before running does not (recorded: validation errors come alone).
    status, body = shop.gql("{ orders(first: 1) { nodes { nope } } }")
    assert set(body) == {"errors"}


def test_nested_objects_and_mutations_cost(shop: Api) -> None:
    status, body = shop.gql(
        "{ shop { name } orders(first: 5) { edges { cursor node { id customer { id }"
        " totalPriceSet { shopMoney { amount } } } } pageInfo { hasNextPage } } }"
    )
    # shop 1 + orders 2 + 5 x (order 1 + customer 1 + MoneyBag 1 + MoneyV2 1)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 2 + 5 * 4
    status, body = shop.gql(
        'mutation { webhookSubscriptionCreate(topic: ORDERS_CREATE, webhookSubscription: {uri: "https://x.example/h"})'
        " { userErrors { message } } }"
    )
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10


def test_throttled_at_http_200_then_restored(shop: Api) -> None:
    shop.store.faults.update(throttle_bucket_size=50, throttle_restore_rate=10)
    query = "{ orders(first: 30) { nodes { id } } }"  # 32 points
    status, body = shop.gql(query)
    assert "errors" not in body
    assert body["extensions"]["cost"]["throttleStatus"] == {
        "maximumAvailable": 50.0, "currentlyAvailable": 18, "restoreRate": 10.0,
    }
    status, body = shop.gql(query)
    assert status == 200
    assert "data" not in body
    assert body["errors"] == [{
        "message": "Throttled",
        "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
    }]
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 32,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 50.0, "currentlyAvailable": 18, "restoreRate": 10.0},
    }
    shop.clock.advance(1.5)  # 18 + 15 = 33 points
    status, body = shop.gql(query)
    assert "errors" not in body
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1


def test_single_query_over_1000_points(shop: Api) -> None:
    status, body = shop.gql(
        "{ orders(first: 250) { nodes { id customer { id } totalPriceSet { shopMoney { amount } } } } }"
    )
    assert status == 200
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 1002, "maxCost": 1000}
    assert error["message"].startswith(
        "Query cost is 1002, which exceeds the single query max cost limit (1000)."
    )
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1002
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    # Nothing was taken from the bucket.
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 2000


def test_bucket_follows_the_plan() -> None:
    with api_shop("plus", customers=10, months=3, plan="Shopify Plus") as api:
        status, body = api.gql("{ shop { name } }")
        assert body["extensions"]["cost"]["throttleStatus"] == {
            "maximumAvailable": 20000.0, "currentlyAvailable": 19999, "restoreRate": 1000.0,
        }
