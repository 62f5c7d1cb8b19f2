"""devstore against live-store recordings: the real schema's refusals and Shopify's calculated cost.

Each recorded scenario (``devstore/reference/captures``) is sent to devstore over HTTP and
compared with the recording by ``tests.devstore.replay.differences`` (status, errors by code,
message, path and field, the shape of ``data`` and ``extensions.cost``). Where devstore must
differ, the test says why in one line. The faults Shopify has no recording for here (unknown
field on QueryRoot, wrong argument type, a field devstore does not serve, MAX_COST_EXCEEDED,
THROTTLED) are pinned against graphql-ruby's wording and the published rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from devstore.conformance import real_schema, requested_cost, schema_errors
from devstore.graphql_api import SCHEMA
from tests.devstore.gql import Api, api_shop
from tests.devstore.replay import differences, load_capture

COUNTS = load_capture("2025-01/customers/customers-count.json")
CATALOG = load_capture("2026-04/orders/order-catalog-count-read.json")
STATUS = load_capture("2026-04/bulk-operations/bulk-operation-status-catalog-cancel.json")
ROOTS = load_capture("2026-04/bulk-operations/bulk-operation-run-mutation-allowed-roots.json")


@pytest.fixture
def shop() -> Iterator[Api]:
    with api_shop("replayed", customers=40, months=6) as api:
        yield api


def post(shop: Api, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = shop.gql(query, variables)
    return {"status": status, "body": body}


# ---------------------------------------------------------------------------------------------
# Counts and their cost


def test_customers_count_replays_as_recorded(shop: Api) -> None:
    call = COUNTS["upstreamCalls"][0]
    answer = post(shop, call["query"], call["variables"])
    # A fresh bucket on both sides: requested 30, actual 30, 1,970 of 2,000 left at 100/s, exactly.
    assert differences(call["response"], answer, exact_cost=True) == []
    # The recording's count (1,232 customers) is the live store's; devstore's shop has its own.
    assert answer["body"]["data"]["total"]["count"] == len(shop.store.ground_truth()["customers"])


def test_order_catalog_count_read_replays_with_devstore_cost_rules(shop: Api) -> None:
    call = CATALOG["upstreamCalls"][0]
    # The recorded tag, name and ids are the live store's: the same searches over devstore's orders.
    order = max(shop.store.ground_truth()["orders"], key=lambda o: o["created_at"])
    variables = {
        **call["variables"],
        "tagQuery": "",
        "nameQuery": f"name:{order['name'].lstrip('#')}",
        "idQuery": f"id:{order['shopify_id']}",
        "combinedQuery": f"id:{order['shopify_id']} financial_status:{order['financial_status'].lower()}",
    }
    answer = post(shop, call["query"], variables)
    diffs = differences(call["response"], answer)
    # Shopify recorded 69 requested / 66 actual. The published rules (connection 2 + first x
    # node, objects 1, pageInfo 0) give 39 for the eight connections, and the recorded count
    # cost (10, customers-count.json) 40 for the four ordersCount: 79. The recording is 10
    # lower, as if the `limit: 1` count were free, and its actual is only 3 below requested
    # where returning 1 of 3 orders should refund 2 per connection; one recording cannot
    # separate those causes, so devstore keeps the published rules and the recorded 10.
    assert diffs == ["extensions.cost.requestedQueryCost: recorded 69, devstore 79"]
    data = answer["body"]["data"]
    assert data["byId"]["nodes"][0]["id"] == f"gid://shopify/Order/{order['shopify_id']}"
    assert data["byIdMiss"]["nodes"] == []
    assert data["combinedAndCount"] == {"count": 1, "precision": "EXACT"}


def test_order_catalog_next_page_replays_as_recorded(shop: Api) -> None:
    call = CATALOG["upstreamCalls"][1]
    first = shop.gql("{ orders(first: 1, sortKey: CREATED_AT, reverse: true) { pageInfo { endCursor } } }")[1]
    # The recorded cursor is the live store's; devstore pages from its own.
    variables = {**call["variables"], "tagQuery": "", "after": first["data"]["orders"]["pageInfo"]["endCursor"]}
    answer = post(shop, call["query"], variables)
    assert differences(call["response"], answer) == []
    assert answer["body"]["extensions"]["cost"]["requestedQueryCost"] == 3
    assert answer["body"]["extensions"]["cost"]["actualQueryCost"] == 3


# ---------------------------------------------------------------------------------------------
# Refusals recorded on a live store


@pytest.mark.parametrize(
    "name", ["bulkOperationMissingId", "bulkOperationCancelMissingId", "bulkOperationRunQueryMissingQuery"]
)
def test_missing_required_argument_replays_as_recorded(shop: Api, name: str) -> None:
    case = STATUS["validations"][name]
    answer = post(shop, case["query"], case["variables"])
    assert differences({"status": case["status"], "body": case["response"]}, answer) == []
    assert answer["body"]["errors"][0]["locations"] == case["response"]["errors"][0]["locations"]


def test_unknown_field_replays_as_recorded(shop: Api) -> None:
    # customerDelete is not served by devstore, but Shopify refuses the document before running it.
    case = ROOTS["cases"]["customerCreate"]["cleanup"]["primary"]
    answer = post(shop, case["query"], case["variables"])
    assert differences({"status": case["status"], "body": case["response"]}, answer) == []
    assert answer["body"] == case["response"]


def test_malformed_id_variable_replays_as_recorded(shop: Api) -> None:
    case = STATUS["reads"]["malformedId"]
    answer = post(shop, case["query"], case["variables"])
    assert answer["body"] == case["response"]


# ---------------------------------------------------------------------------------------------
# Refusals in graphql-ruby's words (no recording of these exact documents)


def test_unknown_field_on_query_root(shop: Api) -> None:
    status, body = shop.gql("query Q { orderz(first: 1) { nodes { id } } }")
    assert status == 200
    assert body == {"errors": [{
        "message": "Field 'orderz' doesn't exist on type 'QueryRoot'",
        "locations": [{"line": 1, "column": 11}],
        "path": ["query Q", "orderz"],
        "extensions": {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": "orderz"},
    }]}


def test_wrong_argument_type(shop: Api) -> None:
    status, body = shop.gql('{ orders(first: "ten") { nodes { id } } }')
    assert body == {"errors": [{
        "message": "Argument 'first' on Field 'orders' has an invalid value (\"ten\"). Expected type 'Int'.",
        "locations": [{"line": 1, "column": 17}],
        "path": ["query", "orders", "first"],
        "extensions": {"code": "argumentLiteralsIncompatible", "typeName": "Field", "argumentName": "first"},
    }]}


def test_variable_of_the_wrong_type(shop: Api) -> None:
    status, body = shop.gql("query Q($n: String) { orders(first: $n) { nodes { id } } }", {"n": "1"})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["variableMismatch"]
    assert body["errors"][0]["message"] == "Type mismatch on variable $n and argument first (String / Int)"
    status, body = shop.gql("query Q($n: Int) { orders(first: $n) { nodes { id } } }", {"n": "ten"})
    assert body["errors"][0]["message"] == "Variable $n of type Int was provided invalid value"
    assert body["errors"][0]["extensions"] == {
        "code": "INVALID_VARIABLE",
        "value": "ten",
        "problems": [{"path": [], "explanation": 'Could not coerce value "ten" to Int'}],
    }
    assert "data" not in body
    # A problem inside an input object is named in the message with its path, as graphql-ruby does.
    status, body = shop.gql(
        "mutation M($s: WebhookSubscriptionInput!) { webhookSubscriptionCreate(topic: ORDERS_CREATE, "
        "webhookSubscription: $s) { userErrors { message } } }",
        {"s": {"uri": 2}},
    )
    assert body["errors"][0]["message"] == (
        "Variable $s of type WebhookSubscriptionInput! was provided invalid value for uri "
        "(Could not coerce value 2 to String)"
    )


def test_refund_processed_at_is_non_null_and_served(shop: Api) -> None:
    assert str(real_schema().type_map["Refund"].fields["processedAt"].type) == "DateTime!"  # type: ignore[attr-defined]
    assert str(SCHEMA.type_map["Refund"].fields["processedAt"].type) == "DateTime!"  # type: ignore[attr-defined]
    refund = shop.store.ground_truth()["refunds"][0]
    status, body = shop.gql(
        "query R($id: ID!) { node(id: $id) { ... on Refund { processedAt createdAt } } }",
        {"id": f"gid://shopify/Refund/{refund['shopify_id']}"},
    )
    assert body["data"]["node"]["processedAt"] == refund["processed_at"].strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Fields of the real schema devstore does not serve: never silent


def test_unserved_root_field_is_access_denied_naming_the_scope(shop: Api) -> None:
    status, body = shop.gql("{ products(first: 5) { nodes { id title } } }")
    assert status == 200
    # products is ProductConnection!: the null reaches the root, as graphql-ruby propagates it.
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "Access denied for products field. Required access: `read_products` access scope."
    assert error["path"] == ["products"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert error["extensions"]["devstoreUnserved"] == "QueryRoot.products"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 7


def test_unserved_nested_field_is_null_with_an_error(shop: Api) -> None:
    status, body = shop.gql("{ orders(first: 2) { nodes { id billingAddress { city } } } }")
    nodes = body["data"]["orders"]["nodes"]
    assert [n["billingAddress"] for n in nodes] == [None, None]
    assert all(n["id"].startswith("gid://shopify/Order/") for n in nodes)
    assert [e["path"] for e in body["errors"]] == [["orders", "nodes", 0, "billingAddress"],
                                                   ["orders", "nodes", 1, "billingAddress"]]
    assert {e["extensions"]["devstoreUnserved"] for e in body["errors"]} == {"Order.billingAddress"}
    assert {e["extensions"]["requiredAccess"] for e in body["errors"]} == {"`read_orders` access scope."}


def test_unserved_field_without_a_known_scope_names_none(shop: Api) -> None:
    status, body = shop.gql("{ shop { name contactEmail } }")
    # contactEmail is String! and shop is Shop!: the null reaches the root.
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "Access denied for contactEmail field."
    assert "requiredAccess" not in error["extensions"]
    assert error["extensions"]["devstoreUnserved"] == "Shop.contactEmail"


def test_unserved_mutation_asks_for_the_write_scope(shop: Api) -> None:
    status, body = shop.gql(
        'mutation { productCreate(product: {title: "x"}) { product { id } userErrors { message } } }'
    )
    assert body["errors"][0]["extensions"]["requiredAccess"] == "`write_products` access scope."
    assert body["data"] == {"productCreate": None}
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10


def test_nodes_cost_one_object_whatever_the_number_of_ids(shop: Api) -> None:
    # Recorded (bulk-operation-status-catalog-cancel.json, nodeReads/mixed): four ids, one unknown, 1 and 1.
    ids = [f"gid://shopify/Order/{o['shopify_id']}" for o in shop.store.ground_truth()["orders"][:3]]
    status, body = shop.gql("query N($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on Order { id name } } }",
                            {"ids": [*ids, "gid://shopify/Order/1"]})
    assert [n and n["id"] for n in body["data"]["nodes"]] == [*ids, None]
    assert (body["extensions"]["cost"]["requestedQueryCost"], body["extensions"]["cost"]["actualQueryCost"]) == (1, 1)


# ---------------------------------------------------------------------------------------------
# The 1,000-point cap and the bucket


def test_max_cost_exceeded_for_250_customer_counts(shop: Api) -> None:
    query = "{ " + " ".join(f"c{i}: customersCount(query: \"id:{i}\") {{ count }}" for i in range(250)) + " }"
    assert requested_cost(query) == 2500
    status, body = shop.gql(query)
    assert status == 200
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 2500, "maxCost": 1000}
    assert error["message"].startswith("Query cost is 2500, which exceeds the single query max cost limit (1000).")
    # Refused before it runs: nothing taken from the bucket.
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 2500,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 2000, "restoreRate": 100.0},
    }


def test_throttled_when_the_bucket_cannot_cover_the_request(shop: Api) -> None:
    query = "{ " + " ".join(f"c{i}: customersCount {{ count }}" for i in range(99)) + " }"  # 990 points
    for left in (1010, 20):
        status, body = shop.gql(query)
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == left
    status, body = shop.gql(query)
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["errors"][0]["message"] == "Throttled"
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 990,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 20, "restoreRate": 100.0},
    }
    # 100 points a second restore it: 9.7 s later 990 are there again.
    shop.clock.advance(9.7)
    status, body = shop.gql(query)
    assert "errors" not in body


# ---------------------------------------------------------------------------------------------
# devstore.conformance without a server


def _recorded_costs() -> list[tuple[str, str, dict[str, Any], int]]:
    """Every recorded (query, variables, requestedQueryCost) in the captures, deduplicated."""
    out: dict[tuple[str, bytes], tuple[str, str, dict[str, Any], int]] = {}

    def walk(node: Any, where: str, query: str | None, variables: dict[str, Any]) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("query"), str):
                query, variables = node["query"], node.get("variables") or {}
            cost = (node.get("extensions") or {}).get("cost") if isinstance(node.get("extensions"), dict) else None
            if cost and query:
                key = (query, orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
                out.setdefault(key, (where, query, variables, cost["requestedQueryCost"]))
            for k, v in node.items():
                walk(v, f"{where}/{k}", query, variables)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", query, variables)

    from tests.devstore.replay import CAPTURES

    for path in sorted(CAPTURES.rglob("*.json")):
        walk(orjson.loads(path.read_bytes()), str(path.relative_to(CAPTURES)), None, {})
    return list(out.values())


# Recorded costs the published rules do not give, and why devstore keeps the rules for them.
COST_DIVERGENCES = {
    # products(first: 250) { nodes { id title } } recorded at 13 (209 returned: 11), far below
    # 2 + 250; Product's per-field cost is unpublished and devstore serves no products.
    "BulkProductsCatalogHydrate": (13, 252),
    # bulkOperations(first: 5) selecting both edges and nodes: 8, one above the rules' 7 (and
    # 5 actual when empty, where the rules give 2): no published rule explains either.
    "BulkOperationsCatalogCapture": (8, 7),
    # See test_order_catalog_count_read_replays_with_devstore_cost_rules.
    "OrderCatalogCountRead": (69, 79),
}


def test_requested_cost_of_every_recorded_document() -> None:
    matched, diverged = 0, []
    for where, query, variables, recorded in _recorded_costs():
        match = re.search(r"(?:query|mutation)\s+(\w+)", query)
        name = match.group(1) if match else ""
        mine = requested_cost(query, variables)
        if name in COST_DIVERGENCES:
            assert (recorded, mine) == COST_DIVERGENCES[name], where
            diverged.append(name)
        else:
            assert mine == recorded, f"{where}: recorded {recorded}, devstore {mine}"
            matched += 1
    assert matched >= 30
    assert set(diverged) == set(COST_DIVERGENCES)


def test_schema_errors_without_a_server() -> None:
    assert schema_errors("{ shop { name } }") == []
    assert schema_errors("{ orders(first: 1) { refunds { id } } }")[0]["extensions"]["code"] == "undefinedField"
    assert schema_errors("{ orders(first: 1) }") == [{
        "message": "Field must have selections (field 'orders' returns OrderConnection but has no selections. "
                   "Did you mean 'orders { ... }'?)",
        "locations": [{"line": 1, "column": 3}],
        "path": ["query", "orders"],
        "extensions": {"code": "selectionMismatch", "nodeName": "field 'orders'", "typeName": "OrderConnection"},
    }]
    assert schema_errors("{ orders(first: 1) { nodes { id } }") == [
        {"message": "Unexpected end of document", "locations": []}
    ]
    assert requested_cost("mutation { bulkOperationRunQuery(query: \"{}\") { bulkOperation { id } } }") == 10

