"""The guard over what the app sends Shopify: it refuses what a live store refuses, every document
the app can build passes it, and only the one client talks HTTP.

The session-wide half (every request the app actually sent during the run, from devstore's journal)
runs at the end of the session: tests/conftest.py, pytest_sessionfinish.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shops import services as shop_services
from sync import services
from sync.client import ShopifyClient
from tests.shopify_guard import document_problems, journal_problems

ROOT = Path(__file__).resolve().parent.parent
SEARCH = "updated_at:>='2026-01-01T00:00:00Z'"


def _ids(kind: str, n: int) -> list[str]:
    return [f"gid://shopify/{kind}/{1000 + i}" for i in range(n)]


def test_the_guard_refuses_what_a_live_store_refuses():
    # The orders bulk query the app sent before: a connection inside a list, INVALID on live stores.
    old_bulk = ("{ orders { edges { node { id refunds { id refundLineItems { edges { node { "
                "subtotalSet { shopMoney { amount } } } } } } } } } }")
    said = document_problems(ShopifyClient.BULK_RUN, {"query": old_bulk})
    assert said == ["bulk: Queries that contain a connection field within a list field are not currently "
                    "supported. (INVALID)"]
    # 250 customersCount aliases: 10 points each on a live store, 2,500 in all.
    counts = " ".join(f'c{i}: customersCount(query: "id:{i}") {{ count }}' for i in range(250))
    assert document_problems(f"query {{ {counts} }}") == [
        "cost: requests 2500 points, over Shopify's 1000-point cap"]
    # Refund.processedAt exists; a field that does not is refused with graphql-ruby's words.
    assert document_problems("query { refund(id: \"gid://shopify/Refund/1\") { processedAt } }") == []
    assert document_problems("query { refund(id: \"gid://shopify/Refund/1\") { processedOn } }") == [
        "schema: Field 'processedOn' doesn't exist on type 'Refund' (undefinedField)"]


def test_the_session_guard_reads_only_the_apps_requests(tmp_path):
    import orjson

    journal = tmp_path / "journal.jsonl"
    bad = {"query": "query { shop { nope } }"}
    journal.write_bytes(
        orjson.dumps({"ua": "python-httpx/0.28.1", "body": orjson.dumps(bad).decode()}) + b"\n"
        + orjson.dumps({"ua": "Tenure (Shopify app; customer lifetime analytics)",
                        "body": orjson.dumps(bad).decode()}) + b"\n"
        + orjson.dumps({"ua": "Tenure (Shopify app; customer lifetime analytics)",
                        "body": orjson.dumps({"query": services.SHOP_PING}).decode()}) + b"\n")
    checked, problems = journal_problems(journal)
    assert checked == 2  # the tests' own raw request (another User-Agent) is not the app's
    assert list(problems) == ["query { shop { nope } }"]


APP_DOCUMENTS = {
    # Backfill and incremental bulk exports.
    "bulk orders": (ShopifyClient.BULK_RUN, {"query": services.bulk_query("orders")}),
    "bulk orders changed": (ShopifyClient.BULK_RUN,
                            {"query": services.bulk_query("orders", SEARCH, with_customers=True)}),
    "bulk customers": (ShopifyClient.BULK_RUN, {"query": services.bulk_query("customers")}),
    "bulk customers changed": (ShopifyClient.BULK_RUN, {"query": services.bulk_query("customers", SEARCH)}),
    "bulk status": (f"query TenureBulkGet($id: ID!) {{ bulkOperation(id: $id) {{ {ShopifyClient.BULK_FIELDS} }} }}",
                    {"id": "gid://shopify/BulkOperation/1"}),
    # Paged reads, at the largest page the client asks for before the cost re-sizes it.
    "orders changed": (services.ORDERS_PAGE, {"first": 12, "after": None, "query": SEARCH}),
    "customers changed": (services.CUSTOMERS_PAGE, {"first": 100, "after": None, "query": SEARCH}),
    "customers by id": (services.CUSTOMER_NODES, {"ids": _ids("Customer", 50)}),
    "orders by id": (services.ORDER_NODES, {"ids": _ids("Order", 10)}),
    "ids": (services.IDS_PAGE["customers"], {"first": 250, "after": None, "query": SEARCH}),
    "counts": (services.COUNTS, {"orders": SEARCH, "customers": SEARCH}),
    "refund lines": (services.REFUND_LINES, {"ids": _ids("Refund", int(900 // services.REFUND_LINES_COST_GUESS))}),
    "refund lines, more": (services.REFUND_LINES_MORE, {"id": "gid://shopify/Refund/1", "after": None}),
    "shop ping": (services.SHOP_PING, {}),
    # Install.
    "shop": (shop_services.SHOP_QUERY, {}),
    "webhook subscription": (shop_services.WEBHOOK_SUBSCRIBE,
                             {"topic": "ORDERS_CREATE", "sub": {"uri": "https://tenure.example/webhooks",
                                                                "format": "JSON"}}),
}


@pytest.mark.parametrize("name", sorted(APP_DOCUMENTS))
def test_every_document_the_app_builds_passes_the_guard(name):
    query, variables = APP_DOCUMENTS[name]
    assert document_problems(query, variables) == []


def test_a_first_batch_of_counts_fits_the_cap():
    """The reconciliation's first request is sized from its guess, before Shopify has said a price."""
    n = int(0.9 * 1000 // services.COUNT_COST_GUESS)
    counts = " ".join(f'c{i}: ordersCount(query: "id:{i}", limit: null) {{ count }}' for i in range(n))
    assert document_problems(f"query TenureCounts {{ {counts} }}") == []


def _imports(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_client_module_talks_http():
    """sync/client.py is the one door to Shopify: no other app module imports an HTTP library.
    (config/stack.py polls the local processes it starts for `make demo`, never Shopify.)"""
    allowed = {ROOT / "sync" / "client.py", ROOT / "config" / "stack.py"}
    http = ("httpx", "requests", "urllib3", "aiohttp", "urllib.request", "http.client")
    offenders = []
    for package in ("config", "shops", "sync", "analytics"):
        for path in (ROOT / package).rglob("*.py"):
            if path in allowed or "migrations" in path.parts:
                continue
            if any(name == h or name.startswith(h + ".") for name in _imports(path) for h in http):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
