"""Admin GraphQL reads against devstore: shapes, pagination, search syntax, counts, node, scopes.

Reference pages (API 2026-10):
https://shopify.dev/docs/api/admin-graphql/2026-10/queries/orders
https://shopify.dev/docs/api/admin-graphql/2026-10/queries/customers
https://shopify.dev/docs/api/usage/pagination-graphql
https://shopify.dev/docs/api/usage/search-syntax
https://shopify.dev/docs/api/admin-graphql/2026-10/objects/MoneyBag
https://shopify.dev/docs/apps/launch/protected-customer-data
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.devstore.gql import BASIC_SCOPES, NOW, Api, api_shop

DECIMAL = re.compile(r"^\d+\.\d{1,2}$")
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def shop() -> Iterator[Api]:
    with api_shop("api", customers=150, months=24) as api:
        # The clock is frozen here, so the cost bucket would never refill; throttling has its own tests.
        api.store.faults["throttle_bucket_size"] = 10**9
        yield api


@pytest.fixture(scope="module")
def truth(shop: Api) -> dict:
    return shop.store.ground_truth()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_shop(shop: Api) -> None:
    status, body = shop.gql(
        "{ shop { id name myshopifyDomain currencyCode ianaTimezone"
        " plan { displayName publicDisplayName shopifyPlus partnerDevelopment } } }"
    )
    assert status == 200
    assert body["data"]["shop"] == {
        "id": f"gid://shopify/Shop/{shop.store.shop_id}",
        "name": "Api",
        "myshopifyDomain": "api.myshopify.com",
        "currencyCode": "NZD",
        "ianaTimezone": "Pacific/Auckland",
        "plan": {"displayName": "Basic", "publicDisplayName": "Basic", "shopifyPlus": False,
                 "partnerDevelopment": False},
    }


ORDER_FIELDS = """
  id legacyResourceId name processedAt createdAt updatedAt cancelledAt test displayFinancialStatus
  currencyCode presentmentCurrencyCode tags customer { id }
  subtotalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  currentSubtotalPriceSet { shopMoney { amount currencyCode } }
  totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  currentTotalPriceSet { shopMoney { amount currencyCode } }
  totalRefundedSet { shopMoney { amount currencyCode } }
  refunds { id createdAt processedAt totalRefundedSet { shopMoney { amount } }
            refundLineItems(first: 10) { nodes { subtotalSet { shopMoney { amount } } } } }
"""


def all_orders(shop: Api, *, sort_key: str, reverse: bool = False, query: str | None = None,
               page: int = 13) -> list[dict]:
    out: list[dict] = []
    after = None
    while True:
        status, body = shop.gql(
            "query($first: Int!, $after: String, $sortKey: OrderSortKeys, $reverse: Boolean, $query: String) {"
            " orders(first: $first, after: $after, sortKey: $sortKey, reverse: $reverse, query: $query) {"
            " pageInfo { hasNextPage hasPreviousPage endCursor }"
            f" edges {{ cursor node {{ {ORDER_FIELDS} }} }} }} }}",
            {"first": page, "after": after, "sortKey": sort_key, "reverse": reverse, "query": query},
        )
        assert status == 200, body
        assert "errors" not in body, body["errors"]
        conn = body["data"]["orders"]
        out.extend(e["node"] for e in conn["edges"])
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            return out
        assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        after = conn["pageInfo"]["endCursor"]


def test_orders_match_ground_truth_field_by_field(shop: Api, truth: dict) -> None:
    nodes = all_orders(shop, sort_key="ID")
    expected = sorted(truth["orders"], key=lambda o: o["shopify_id"])
    assert [n["legacyResourceId"] for n in nodes] == [str(o["shopify_id"]) for o in expected]
    refunds_by_order: dict[int, list[dict]] = {}
    for r in truth["refunds"]:
        refunds_by_order.setdefault(r["order_shopify_id"], []).append(r)
    for node, o in zip(nodes, expected, strict=True):
        assert node["id"] == f"gid://shopify/Order/{o['shopify_id']}"
        assert node["name"] == o["name"]
        assert node["processedAt"] == iso(o["processed_at"])
        assert node["createdAt"] == iso(o["created_at"])
        assert node["updatedAt"] == iso(o["updated_at"])
        assert node["cancelledAt"] == (iso(o["cancelled_at"]) if o["cancelled_at"] else None)
        assert node["test"] is o["test"]
        assert node["displayFinancialStatus"] == o["financial_status"]
        assert node["currencyCode"] == "NZD"
        assert node["presentmentCurrencyCode"] == o["presentment_currency"]
        assert node["tags"] == o["tags"]
        assert (node["customer"] or {}).get("id") == (
            f"gid://shopify/Customer/{o['customer_shopify_id']}" if o["customer_shopify_id"] else None
        )
        assert Decimal(node["subtotalPriceSet"]["shopMoney"]["amount"]) == o["subtotal"]
        assert Decimal(node["currentSubtotalPriceSet"]["shopMoney"]["amount"]) == o["current_subtotal"]
        assert Decimal(node["totalPriceSet"]["shopMoney"]["amount"]) == o["total"]
        assert Decimal(node["currentTotalPriceSet"]["shopMoney"]["amount"]) == o["current_total"]
        assert Decimal(node["totalRefundedSet"]["shopMoney"]["amount"]) == o["total_refunded"]
        mine = refunds_by_order.get(o["shopify_id"], [])
        assert [r["id"] for r in node["refunds"]] == [f"gid://shopify/Refund/{r['shopify_id']}" for r in mine]
        assert [r["processedAt"] for r in node["refunds"]] == [iso(r["processed_at"]) for r in mine]
        line_total = sum(
            (Decimal(li["subtotalSet"]["shopMoney"]["amount"]) for r in node["refunds"]
             for li in r["refundLineItems"]["nodes"]),
            Decimal(0),
        )
        # Refund lines take the refunded part of the subtotal; an order edit moves both current
        # amounts by the same delta (no refund involved).
        edit = o["current_subtotal"] - (o["subtotal"] - line_total)
        assert o["current_total"] == o["total"] + edit - o["total_refunded"]


def test_money_is_a_moneybag_of_decimal_strings(shop: Api, truth: dict) -> None:
    foreign = next(o for o in truth["orders"] if o["presentment_currency"] not in ("NZD",))
    status, body = shop.gql("query($id: ID!) { order(id: $id) { totalPriceSet { shopMoney { amount currencyCode } "
                             "presentmentMoney { amount currencyCode } } } }",
                       {"id": f"gid://shopify/Order/{foreign['shopify_id']}"})
    bag = body["data"]["order"]["totalPriceSet"]
    assert bag["shopMoney"]["currencyCode"] == "NZD"
    assert bag["presentmentMoney"]["currencyCode"] == foreign["presentment_currency"]
    assert bag["shopMoney"]["amount"] != bag["presentmentMoney"]["amount"]
    assert isinstance(bag["shopMoney"]["amount"], str)
    assert Decimal(bag["shopMoney"]["amount"]) == foreign["total"]
    # Shopify's Decimal scalar drops trailing zeros beyond one decimal: "45.0", "12.5", "12.34".
    amounts = [n["totalPriceSet"]["shopMoney"]["amount"] for n in all_orders(shop, sort_key="ID", page=19)]
    assert all(DECIMAL.match(a) for a in amounts)
    assert any(re.match(r"^\d+\.\d$", a) for a in amounts)


@pytest.mark.parametrize(("sort_key", "field"), [("UPDATED_AT", "updated_at"), ("PROCESSED_AT", "processed_at"),
                                                 ("CREATED_AT", "created_at")])
def test_sort_keys_and_reverse(shop: Api, truth: dict, sort_key: str, field: str) -> None:
    expected = [str(o["shopify_id"]) for o in sorted(truth["orders"], key=lambda o: (o[field], o["shopify_id"]))]
    got = [n["legacyResourceId"] for n in all_orders(shop, sort_key=sort_key)]
    assert got == expected
    got_rev = [n["legacyResourceId"] for n in all_orders(shop, sort_key=sort_key, reverse=True)]
    assert got_rev == expected[::-1]


def test_backward_pagination_with_last_and_before(shop: Api, truth: dict) -> None:
    expected = [str(o["shopify_id"]) for o in sorted(truth["orders"], key=lambda o: (o["updated_at"], o["shopify_id"]))]
    got: list[str] = []
    before = None
    while True:
        status, body = shop.gql("query($before: String) { orders(last: 50, before: $before, sortKey: UPDATED_AT) {"
            " pageInfo { hasNextPage hasPreviousPage startCursor } nodes { legacyResourceId } } }",
            {"before": before},
        )
        conn = body["data"]["orders"]
        got[:0] = [n["legacyResourceId"] for n in conn["nodes"]]
        assert conn["pageInfo"]["hasNextPage"] is (before is not None)
        if not conn["pageInfo"]["hasPreviousPage"]:
            break
        before = conn["pageInfo"]["startCursor"]
    assert got == expected


def test_first_or_last_is_required_and_capped(shop: Api) -> None:
    status, body = shop.gql("{ orders { nodes { id } } }")
    assert status == 200
    assert body["errors"][0]["message"] == "you must provide one of first or last"
    assert body["errors"][0]["path"] == ["orders"]
    status, body = shop.gql("{ customers(first: 251) { nodes { id } } }")
    assert "250" in body["errors"][0]["message"]


def test_query_filter_with_quoted_dates(shop: Api, truth: dict) -> None:
    cutoff = datetime(2026, 6, 1, tzinfo=UTC)
    query = "updated_at:>='2026-06-01T00:00:00Z'"
    got = {n["legacyResourceId"] for n in all_orders(shop, sort_key="UPDATED_AT", query=query)}
    expected = {str(o["shopify_id"]) for o in truth["orders"] if o["updated_at"] >= cutoff}
    assert got == expected
    assert 0 < len(expected) < len(truth["orders"])
    # Ranges, double quotes, test and id filters combine with implicit AND.
    ids = sorted(o["shopify_id"] for o in truth["orders"])
    lo, hi = ids[10], ids[40]
    query = f'created_at:<"2026-10-01T00:00:00Z" id:>={lo} id:<{hi} test:false'
    got = {n["legacyResourceId"] for n in all_orders(shop, sort_key="ID", query=query)}
    expected = {
        str(o["shopify_id"]) for o in truth["orders"]
        if lo <= o["shopify_id"] < hi and not o["test"] and o["created_at"] < datetime(2026, 10, 1, tzinfo=UTC)
    }
    assert got == expected


def test_date_without_time_is_midnight_in_the_shop_zone(shop: Api, truth: dict) -> None:
    # 2026-07-01 in Pacific/Auckland (NZST, +12:00) starts at 2026-06-30T12:00:00Z.
    start = datetime(2026, 6, 30, 12, tzinfo=UTC)
    status, body = shop.gql('{ ordersCount(query: "processed_at:>=2026-07-01") { count precision } }')
    expected = sum(1 for o in truth["orders"] if o["processed_at"] >= start)
    assert body["data"]["ordersCount"] == {"count": expected, "precision": "EXACT"}


def test_status_and_unknown_search_fields(shop: Api, truth: dict) -> None:
    status, body = shop.gql('{ ordersCount(query: "status:cancelled") { count } }')
    assert body["data"]["ordersCount"]["count"] == sum(1 for o in truth["orders"] if o["cancelled_at"])
    status, body = shop.gql('{ ordersCount(query: "colour:blue") { count } }')
    # Unknown fields are ignored with a warning, as Shopify does.
    assert body["data"]["ordersCount"]["count"] == len(truth["orders"])
    (warning,) = body["extensions"]["search"]
    assert warning["path"] == ["ordersCount"]
    assert warning["warnings"] == [{"field": "colour", "message": "Invalid search field for this query."}]


def test_counts_and_their_limit(shop: Api, truth: dict) -> None:
    status, body = shop.gql("{ ordersCount { count precision } customersCount { count precision } "
                             "few: ordersCount(limit: 5) { count precision } "
                             "all: ordersCount(limit: null) { count precision } }")
    data = body["data"]
    assert data["ordersCount"] == {"count": len(truth["orders"]), "precision": "EXACT"}
    assert data["customersCount"] == {"count": len(truth["customers"]), "precision": "EXACT"}
    assert data["few"] == {"count": 5, "precision": "AT_LEAST"}
    assert data["all"] == {"count": len(truth["orders"]), "precision": "EXACT"}


def test_customers_pagination_and_fields(shop: Api, truth: dict) -> None:
    got: list[dict] = []
    after = None
    while True:
        status, body = shop.gql(
            "query($after: String) { customers(first: 40, after: $after, sortKey: UPDATED_AT) {"
            " pageInfo { hasNextPage endCursor } nodes { id legacyResourceId createdAt updatedAt"
            " numberOfOrders amountSpent { amount currencyCode } tags statistics { rfmGroup } } } }",
            {"after": after},
        )
        conn = body["data"]["customers"]
        got.extend(conn["nodes"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    expected = sorted(truth["customers"], key=lambda c: (c["updated_at"], c["shopify_id"]))
    assert [int(n["legacyResourceId"]) for n in got] == [c["shopify_id"] for c in expected]
    for node, c in zip(got, expected, strict=True):
        assert node["numberOfOrders"] == str(c["number_of_orders"])  # UnsignedInt64 is a string
        assert Decimal(node["amountSpent"]["amount"]) == c["amount_spent"]
        assert node["amountSpent"]["currencyCode"] == "NZD"
        assert node["statistics"]["rfmGroup"] == c["rfm_group"]
        assert node["tags"] == c["tags"]
        assert UTC_TIME.match(node["updatedAt"])


def test_node_lookup(shop: Api, truth: dict) -> None:
    order = truth["orders"][3]
    customer = truth["customers"][2]
    refund = truth["refunds"][0]
    status, body = shop.gql("query($o: ID!, $c: ID!, $r: ID!) { o: node(id: $o) { __typename id ... on Order { name } }"
        " c: node(id: $c) { id ... on Customer { numberOfOrders } } r: node(id: $r) { id ... on Refund {"
        " totalRefundedSet { shopMoney { amount } } } } missing: node(id: \"gid://shopify/Order/1\") { id } }",
        {"o": f"gid://shopify/Order/{order['shopify_id']}", "c": f"gid://shopify/Customer/{customer['shopify_id']}",
         "r": f"gid://shopify/Refund/{refund['shopify_id']}"},
    )
    data = body["data"]
    assert data["o"] == {"__typename": "Order", "id": f"gid://shopify/Order/{order['shopify_id']}",
                         "name": order["name"]}
    assert data["c"]["numberOfOrders"] == str(customer["number_of_orders"])
    assert Decimal(data["r"]["totalRefundedSet"]["shopMoney"]["amount"]) == refund["amount"]
    assert data["missing"] is None
    status, body = shop.gql('{ node(id: "not-a-gid") { id } }')
    assert status == 200
    assert body["errors"][0]["message"] == "Invalid global id 'not-a-gid'"


def test_unknown_field_error_has_shopifys_shape(shop: Api) -> None:
    # graphql-ruby's undefinedField error, as the Admin API returns it (HTTP 200, no data).
    status, body = shop.gql("{ orders(first: 1) { nodes { id colour } } }")
    assert status == 200
    assert "data" not in body
    assert body["errors"] == [{
        "message": "Field 'colour' doesn't exist on type 'Order'",
        "locations": [{"line": 1, "column": 33}],
        "path": ["query", "orders", "nodes", "colour"],
        "extensions": {"code": "undefinedField", "typeName": "Order", "fieldName": "colour"},
    }]
    status, body = shop.gql("{ orders(first: 1, colour: 2) { nodes { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "argumentNotAccepted"
    assert body["errors"][0]["message"] == "Field 'orders' doesn't accept argument 'colour'"


def test_sixty_days_without_read_all_orders(shop: Api, truth: dict) -> None:
    scopes = frozenset({"read_orders", "read_customers"})
    floor = NOW - 60 * 86400
    recent = [o for o in truth["orders"] if o["created_at"].timestamp() >= floor]
    old = next(o for o in truth["orders"] if o["created_at"].timestamp() < floor)
    status, body = shop.gql("{ ordersCount { count } orders(first: 250, sortKey: ID) { nodes { legacyResourceId } } }",
                       scopes=scopes)
    assert "errors" not in body  # silently: no error, no warning
    assert body["data"]["ordersCount"]["count"] == len(recent)
    assert [n["legacyResourceId"] for n in body["data"]["orders"]["nodes"]] == sorted(
        str(o["shopify_id"]) for o in recent
    )
    status, body = shop.gql("query($id: ID!) { node(id: $id) { id } }",
                       {"id": f"gid://shopify/Order/{old['shopify_id']}"}, scopes=scopes)
    assert body["data"]["node"] is None
    assert 0 < len(recent) < len(truth["orders"])


def test_protected_customer_data_is_null_with_an_error(shop: Api, truth: dict) -> None:
    status, body = shop.gql("{ customers(first: 2, sortKey: ID) { nodes { id firstName email numberOfOrders } } }",
                       scopes=BASIC_SCOPES)
    assert status == 200
    nodes = body["data"]["customers"]["nodes"]
    assert [n["firstName"] for n in nodes] == [None, None]
    assert [n["email"] for n in nodes] == [None, None]
    assert nodes[0]["numberOfOrders"] == str(min(truth["customers"], key=lambda c: c["shopify_id"])["number_of_orders"])
    paths = [e["path"] for e in body["errors"]]
    assert ["customers", "nodes", 0, "firstName"] in paths
    assert ["customers", "nodes", 1, "email"] in paths
    assert all(e["extensions"]["code"] == "ACCESS_DENIED" for e in body["errors"])
    status, body = shop.gql("{ customers(first: 1) { nodes { firstName email } } }")
    assert "errors" not in body
    assert body["data"]["customers"]["nodes"][0]["email"].endswith("@example.com")


def test_missing_scope_is_access_denied(shop: Api) -> None:
    status, body = shop.gql("{ orders(first: 1) { nodes { id } } }", scopes=frozenset({"read_customers"}))
    assert status == 200
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert error["message"] == "Access denied for orders field. Required access: `read_orders` access scope."


def test_bad_cursor_and_bad_body(shop: Api) -> None:
    status, body = shop.gql('{ orders(first: 2, after: "bm9wZQ==") { nodes { id } } }')
    assert body["errors"][0]["message"] == "Invalid cursor for current pagination sort."
    resp = shop.post(b"{not json", scopes=BASIC_SCOPES)
    assert resp.status_code == 400


def test_concurrent_reads_while_the_shop_trades() -> None:
    """The server is threaded: pages keep coming back whole while live trading writes."""
    import random
    import threading

    with api_shop("busy", customers=80, months=12) as api:
        api.store.faults["throttle_bucket_size"] = 10**9
        api.token(BASIC_SCOPES)
        failures: list[str] = []

        def reader() -> None:
            for _ in range(15):
                status, body = api.gql("{ orders(first: 50, sortKey: UPDATED_AT, reverse: true) { nodes { id "
                                       "currentTotalPriceSet { shopMoney { amount } } } } ordersCount { count } }",
                                       scopes=BASIC_SCOPES)
                if status != 200 or "errors" in body:
                    failures.append(str(body)[:200])

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        events = api.store.live_step(60, random.Random(2))
        for t in threads:
            t.join()
        assert failures == []
        assert len(events) >= 60
        status, body = api.gql("{ ordersCount(limit: null) { count } }", scopes=BASIC_SCOPES)
        assert body["data"]["ordersCount"]["count"] == len(api.store.ground_truth()["orders"])

