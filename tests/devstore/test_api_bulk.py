"""Bulk query operations over HTTP: lifecycle, limits, the JSONL file and its signed URL.

https://shopify.dev/docs/api/usage/bulk-operations/queries (API 2026-01 and later: up to five
bulk query operations at once per shop; nested connections become their own lines with
``__parentId``, listed after their parent but not necessarily directly after it;
``groupObjects`` defaults to false; the URL expires after seven days). The refusals and the
bytes of a line follow live-store recordings (tests/devstore/test_replay_bulk.py replays them).
https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-bulk_operations/finish
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from devstore import bulk
from tests.devstore.gql import NOW, Api, api_shop, small_shop

ORDERS_QUERY = """
{ orders { edges { node {
  id name createdAt customer { id }
  totalPriceSet { shopMoney { amount currencyCode } }
  currentSubtotalPriceSet { shopMoney { amount } }
  refunds { id createdAt totalRefundedSet { shopMoney { amount } } }
} } } }
"""
# Customer.orders: the nested connection devstore serves (Order.refunds is a list, so a refund's
# refundLineItems connection is refused in bulk).
CUSTOMER_ORDERS_QUERY = """
{ customers { edges { node { id numberOfOrders
  orders { edges { node { id totalPriceSet { shopMoney { amount } } } } }
} } } }
"""
RUN = (
    "mutation($q: String!) { bulkOperationRunQuery(query: $q) {"
    " bulkOperation { id status } userErrors { code field message } } }"
)
POLL = (
    "query($id: ID!) { bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount fileSize url"
    " partialDataUrl createdAt completedAt type query } }"
)


@pytest.fixture
def shop() -> Iterator[Api]:
    with api_shop("bulky", customers=80, months=18) as api:
        api.store.faults["throttle_bucket_size"] = 10**9
        yield api


def run(shop: Api, query: str = ORDERS_QUERY, **kw: Any) -> dict[str, Any]:
    status, body = shop.gql(RUN, {"q": query}, **kw)
    assert status == 200
    return body["data"]["bulkOperationRunQuery"]


def poll_until_done(shop: Api, op_id: str, *, seen: list[str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        op = shop.gql(POLL, {"id": op_id})[1]["data"]["bulkOperation"]
        if seen is not None and (not seen or seen[-1] != op["status"]):
            seen.append(op["status"])
        if op["status"] not in ("CREATED", "RUNNING", "CANCELING"):
            return op
        time.sleep(0.02)
    raise AssertionError("bulk operation did not finish")


def test_lifecycle_and_jsonl(shop: Api) -> None:
    shop.store.faults["bulk_delay"] = 0.4
    payload = run(shop)
    assert payload["userErrors"] == []
    assert payload["bulkOperation"]["status"] == "CREATED"
    seen: list[str] = ["CREATED"]
    op = poll_until_done(shop, payload["bulkOperation"]["id"], seen=seen)
    assert seen == ["CREATED", "RUNNING", "COMPLETED"]
    assert op["errorCode"] is None
    assert op["type"] == "QUERY"
    assert op["partialDataUrl"] is None
    assert op["completedAt"] is not None

    resp = shop.get(op["url"])
    assert resp.status_code == 200
    lines = resp.content.splitlines()
    assert op["fileSize"] == str(len(resp.content))  # UnsignedInt64 as a string
    assert op["objectCount"] == str(len(lines))
    objects = [orjson.loads(line) for line in lines]

    truth = shop.store.ground_truth()
    assert op["rootObjectCount"] == str(len(objects))
    assert sorted(r["id"] for r in objects) == sorted(
        f"gid://shopify/Order/{o['shopify_id']}" for o in truth["orders"]
    )
    refunded = {f"gid://shopify/Refund/{r['shopify_id']}": r["amount"] for r in truth["refunds"]}
    inline = {r["id"]: Decimal(r["totalRefundedSet"]["shopMoney"]["amount"]) for o in objects for r in o["refunds"]}
    assert inline == refunded  # Order.refunds is a list: inline in the order's line
    # Shopify's bytes: "/" escaped in every GID, compact, keys in selection order.
    first = lines[0]
    assert first.startswith(b'{"id":"gid:\\/\\/shopify\\/Order\\/')
    assert b"gid://" not in resp.content


def test_nested_connection_lines_follow_their_parent(shop: Api) -> None:
    op = poll_until_done(shop, run(shop, CUSTOMER_ORDERS_QUERY)["bulkOperation"]["id"])
    objects = [orjson.loads(line) for line in shop.get(op["url"]).content.splitlines()]
    truth = shop.store.ground_truth()
    roots = [o for o in objects if "__parentId" not in o]
    assert op["rootObjectCount"] == str(len(roots)) == str(len(truth["customers"]))
    assert op["objectCount"] == str(len(objects))
    position = {o["id"]: i for i, o in enumerate(objects) if "__parentId" not in o}
    owned: dict[str, set[str]] = defaultdict(set)
    not_adjacent = 0
    for i, child in enumerate(objects):
        if "__parentId" in child:
            assert position[child["__parentId"]] < i  # after its parent...
            not_adjacent += position[child["__parentId"]] != i - 1 and objects[i - 1].get("__parentId") is None
            owned[child["__parentId"]].add(child["id"])
    assert not_adjacent > 0  # ...but not always directly after it (groupObjects: false)
    expected: dict[str, set[str]] = defaultdict(set)
    for o in truth["orders"]:
        if o["customer_shopify_id"] is not None:
            expected[f"gid://shopify/Customer/{o['customer_shopify_id']}"].add(f"gid://shopify/Order/{o['shopify_id']}")
    assert owned == expected


def test_five_at_once_then_operation_in_progress(shop: Api) -> None:
    shop.store.faults["bulk_delay"] = 30
    ids = []
    for _ in range(5):
        payload = run(shop)
        assert payload["userErrors"] == []
        ids.append(payload["bulkOperation"]["id"])
    sixth = run(shop)
    assert sixth["bulkOperation"] is None
    # Recorded (bulk-operation-run-query-concurrency-limit.json): the five running ids, oldest first.
    assert sixth["userErrors"] == [{
        "code": "OPERATION_IN_PROGRESS",
        "field": None,
        "message": f"A bulk query operation for this app and shop is already in progress: {', '.join(ids)}.",
    }]
    status, body = shop.gql("query($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors"
                            " { message } } }".replace("query(", "mutation("), {"id": ids[0]})
    assert body["data"]["bulkOperationCancel"]["bulkOperation"]["status"] == "CANCELING"
    assert poll_until_done(shop, ids[0])["status"] == "CANCELED"
    again = run(shop)
    assert again["userErrors"] == []
    ids.append(again["bulkOperation"]["id"])
    status, body = shop.gql('{ bulkOperations(first: 10, query: "status:CANCELED") { nodes { id status } } }')
    assert body["data"]["bulkOperations"]["nodes"] == [{"id": ids[0], "status": "CANCELED"}]
    for op_id in ids[1:]:
        shop.gql("mutation($id: ID!) { bulkOperationCancel(id: $id) { userErrors { message } } }", {"id": op_id})
    for op_id in ids[1:]:
        assert poll_until_done(shop, op_id)["status"] == "CANCELED"


def test_signed_url_expires_after_seven_days(shop: Api) -> None:
    op = poll_until_done(shop, run(shop)["bulkOperation"]["id"])
    url = op["url"]
    assert "/bulk/" in url
    assert "expires=" in url
    assert "signature=" in url
    assert shop.get(url).status_code == 200
    assert shop.get(url.replace("signature=", "signature=0")).status_code == 403
    shop.clock.advance(7 * 86400 + 1)
    resp = shop.get(url)
    assert resp.status_code == 400
    assert b"ExpiredToken" in resp.content
    op = shop.gql(POLL, {"id": op["id"]})[1]["data"]["bulkOperation"]
    assert op["status"] == "EXPIRED"
    assert op["url"] is None


def test_fault_knobs_fail_and_expire(shop: Api) -> None:
    shop.store.faults["bulk_fail"] = True
    op = poll_until_done(shop, run(shop)["bulkOperation"]["id"])
    assert op["status"] == "FAILED"
    assert op["errorCode"] == "INTERNAL_SERVER_ERROR"
    assert op["url"] is None
    partial = shop.get(op["partialDataUrl"])
    assert partial.status_code == 200
    assert 0 < len([line for line in partial.content.splitlines() if b"__parentId" not in line]) < len(
        shop.store.ground_truth()["orders"]
    )
    shop.store.faults.pop("bulk_fail")
    shop.store.faults["bulk_expire"] = 0
    op = poll_until_done(shop, run(shop)["bulkOperation"]["id"])
    assert op["status"] == "EXPIRED"
    assert op["url"] is None


def test_invalid_bulk_queries(shop: Api) -> None:
    bad = run(shop, "{ orders { edges { node { id colour } } } }")
    assert bad["bulkOperation"] is None
    assert bad["userErrors"][0]["code"] == "INVALID"
    assert "Field 'colour' doesn't exist on type 'Order'" in bad["userErrors"][0]["message"]
    node = run(shop, '{ node(id: "gid://shopify/Order/1") { id } }')
    assert [e["message"] for e in node["userErrors"]] == [
        "Bulk queries cannot contain a top level `node` field.",
        "Bulk queries must contain at least one connection.",
    ]
    in_list = run(shop, "{ orders { edges { node { id refunds { refundLineItems { edges { node { id } } } } } } } }")
    assert in_list == {"bulkOperation": None, "userErrors": [{
        "code": "INVALID",
        "field": ["query"],
        "message": "Queries that contain a connection field within a list field are not currently supported.",
    }]}


def test_customers_export_and_current_operation(shop: Api) -> None:
    query = "{ customers { edges { node { id numberOfOrders amountSpent { amount } statistics { rfmGroup } } } } }"
    op = poll_until_done(shop, run(shop, query)["bulkOperation"]["id"])
    rows = [orjson.loads(line) for line in shop.get(op["url"]).content.splitlines()]
    truth = {f"gid://shopify/Customer/{c['shopify_id']}": c for c in shop.store.ground_truth()["customers"]}
    assert {r["id"] for r in rows} == set(truth)
    for r in rows:
        assert r["numberOfOrders"] == str(truth[r["id"]]["number_of_orders"])
        assert Decimal(r["amountSpent"]["amount"]) == truth[r["id"]]["amount_spent"]
        assert r["statistics"]["rfmGroup"] == truth[r["id"]]["rfm_group"]
    status, body = shop.gql("{ currentBulkOperation { id status } }")
    assert body["data"]["currentBulkOperation"] == {"id": op["id"], "status": "COMPLETED"}


def test_bulk_respects_the_sixty_day_window(shop: Api) -> None:
    scopes = frozenset({"read_orders", "read_customers"})
    payload = run(shop, "{ orders { edges { node { id createdAt } } } }", scopes=scopes)
    op_id = payload["bulkOperation"]["id"]
    op = poll_until_done(shop, op_id)
    rows = [orjson.loads(line) for line in shop.get(op["url"]).content.splitlines()]
    recent = [o for o in shop.store.ground_truth()["orders"] if o["created_at"].timestamp() >= NOW - 60 * 86400]
    assert len(rows) == len(recent) > 0


def test_finish_webhook_payload() -> None:
    store, _ = small_shop(name="finish", customers=20)
    store.faults["throttle_bucket_size"] = 10**9
    status, headers, raw = store.handle_graphql(
        frozenset({"read_orders", "read_all_orders"}), orjson.dumps({"query": RUN, "variables": {"q": ORDERS_QUERY}})
    )
    op_id = orjson.loads(raw)["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    bulk.bulk_wait(store, op_id)
    ((topic, payload),) = store.pending_webhooks()
    assert topic == "bulk_operations/finish"
    # The docs' example: admin_graphql_api_id, completed_at, created_at, error_code, status, type.
    assert payload == {
        "admin_graphql_api_id": op_id,
        "completed_at": "2026-11-20T13:00:00+13:00",
        "created_at": "2026-11-20T13:00:00+13:00",
        "error_code": None,
        "status": "completed",
        "type": "query",
    }


def _export_lines(store: Any) -> list[bytes]:
    status, headers, raw = store.handle_graphql(
        frozenset({"read_orders", "read_all_orders"}), orjson.dumps({"query": RUN, "variables": {"q": ORDERS_QUERY}})
    )
    op = bulk.bulk_wait(store, orjson.loads(raw)["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"])
    assert op.status == "COMPLETED"
    from urllib.parse import parse_qs, urlparse

    url = urlparse(bulk.signed_url(store, op) or "")
    qs = parse_qs(url.query)
    status, headers, chunks = store.bulk_result(str(op.id), expires=qs["expires"][0], signature=qs["signature"][0])
    body = b"".join(chunks)
    assert headers["Content-Length"] == str(len(body))
    assert op.object_count == body.count(b"\n")
    return body.splitlines()


def test_parallel_export_writes_the_same_file(monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = small_shop(name="halves", customers=150)
    store.faults["throttle_bucket_size"] = 10**9
    single = _export_lines(store)
    # Big exports are split in two id ranges, the second written by a spawned process.
    monkeypatch.setattr(bulk, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(bulk, "PARALLEL_WORKERS", 2)
    halves = _export_lines(store)
    assert halves == single
    assert len(single) == len(store.ground_truth()["orders"])


def test_group_objects_puts_children_right_after_their_parent(shop: Api) -> None:
    status, body = shop.gql(
        "mutation($q: String!) { bulkOperationRunQuery(query: $q, groupObjects: true) {"
        " bulkOperation { id } userErrors { message } } }",
        {"q": CUSTOMER_ORDERS_QUERY},
    )
    op = poll_until_done(shop, body["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"])
    objects = [orjson.loads(line) for line in shop.get(op["url"]).content.splitlines()]
    last_root = None
    for obj in objects:
        if "__parentId" not in obj:
            last_root = obj["id"]
        else:
            assert obj["__parentId"] == last_root  # the latest root line is its customer
    assert any("__parentId" in obj for obj in objects)
