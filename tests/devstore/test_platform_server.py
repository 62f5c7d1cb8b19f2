"""Contract tests for devstore's HTTP server: shop routing, auth, fault knobs, streaming, shutdown."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from devstore.testing import DevStore, ShopSpec
from sync.client import shopify_http_client
from tests.devstore.platform_support import API_KEY, APP_URL, GRAPHQL, HTTP, INVALID_TOKEN, SECRET, ShopClient

SHOP_QUERY = "{ shop { myshopifyDomain currencyCode ianaTimezone } }"


def token_for(ds: DevStore, shop: str) -> str:
    """An access token as the token exchange issues it (tested in test_platform_oauth)."""
    registry = ds.platform.registry
    install = registry.installed(shop)
    assert install is not None
    return str(registry.grant_tokens(install.shop, install.scopes, expiring=True)["access_token"])


@pytest.fixture(scope="module")
def ds() -> Iterator[DevStore]:
    specs = [ShopSpec(name="acme", customers=60, months=14, currency="NZD", iana_timezone="Pacific/Auckland"),
             ShopSpec(name="beta", seed=3, customers=30, months=3, currency="EUR", iana_timezone="Europe/Berlin")]
    with DevStore(specs, api_key=API_KEY, api_secret=SECRET, app_url=APP_URL, install=True) as store:
        yield store


@pytest.fixture(autouse=True)
def no_faults(ds: DevStore) -> Iterator[None]:
    yield
    for shop in ds.shops:
        ds.store(shop).faults.clear()


def test_host_header_picks_the_shop(ds: DevStore) -> None:
    for shop, currency, zone in (("acme.myshopify.com", "NZD", "Pacific/Auckland"),
                                 ("beta.myshopify.com", "EUR", "Europe/Berlin")):
        response = ShopClient(ds.base_url, shop).graphql(token_for(ds, shop), SHOP_QUERY)
        assert response.status_code == 200
        assert response.json()["data"]["shop"] == {"myshopifyDomain": shop, "currencyCode": currency,
                                                   "ianaTimezone": zone}
        assert response.headers["X-Shopify-API-Version"] == "2026-10"


def test_sync_client_transport_reaches_the_right_shop(ds: DevStore, settings) -> None:
    settings.SHOPIFY_API_BASE_URL = ds.base_url
    with shopify_http_client() as client:
        response = client.post(f"https://beta.myshopify.com{GRAPHQL}", json={"query": SHOP_QUERY},
                               headers={"X-Shopify-Access-Token": token_for(ds, "beta.myshopify.com")})
    assert response.json()["data"]["shop"]["myshopifyDomain"] == "beta.myshopify.com"


def test_browser_routes_find_the_shop_by_query_or_path(ds: DevStore) -> None:
    by_query = HTTP.get(f"{ds.base_url}/admin/apps/{API_KEY}", params={"shop": "beta.myshopify.com"})
    by_path = HTTP.get(f"{ds.base_url}/store/beta/apps/{API_KEY}")
    for page in (by_query, by_path):
        assert page.status_code == 200
        assert "beta.myshopify.com" in page.text
        assert "acme.myshopify.com&" not in page.text
    home = HTTP.get(f"{ds.base_url}/store/acme")
    assert home.status_code == 302
    assert home.headers["Location"].endswith(f"/store/acme/apps/{API_KEY}")


@pytest.mark.parametrize("headers", [{}, {"X-Shopify-Access-Token": "shpat_unknown"}])
def test_missing_or_unknown_token_is_401_with_shopifys_body(ds: DevStore, headers: dict[str, str]) -> None:
    response = ShopClient(ds.base_url, "acme.myshopify.com").post(GRAPHQL, json={"query": SHOP_QUERY},
                                                                   headers=headers)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_unknown_shop_is_404(ds: DevStore) -> None:
    response = ShopClient(ds.base_url, "nope.myshopify.com").post(GRAPHQL, json={"query": SHOP_QUERY})
    assert response.status_code == 404


def test_token_scopes_reach_the_api(ds: DevStore) -> None:
    shop = "acme.myshopify.com"
    query = "{ ordersCount(limit: null) { count } }"
    client = ShopClient(ds.base_url, shop)
    full = client.graphql(token_for(ds, shop), query).json()["data"]["ordersCount"]["count"]
    narrow_token = ds.platform.registry.grant_tokens(shop, frozenset({"read_orders"}), expiring=False)["access_token"]
    narrow = client.graphql(narrow_token, query).json()["data"]["ordersCount"]["count"]
    # Without read_all_orders only the last 60 days are visible; 14 months of history hold more than that.
    assert 0 < narrow < full
    assert full == len(ds.ground_truth(shop).orders)


def test_a_changed_grant_reaches_the_live_token(ds: DevStore) -> None:
    """Scopes belong to the installation: revoking or granting read_all_orders changes what the
    token already held can see, with no new token (the app only hears app/scopes_update)."""
    shop = "beta.myshopify.com"
    query = "{ ordersCount(limit: null) { count } }"
    client = ShopClient(ds.base_url, shop)
    token = token_for(ds, shop)
    full = client.graphql(token, query).json()["data"]["ordersCount"]["count"]
    try:
        ds.install(shop, scopes="read_orders,read_customers")
        limited = client.graphql(token, query).json()["data"]["ordersCount"]["count"]
        assert 0 < limited < full
        ds.install(shop, scopes="read_orders,read_all_orders,read_customers")
        assert client.graphql(token, query).json()["data"]["ordersCount"]["count"] == full
    finally:
        ds.install(shop, scopes="read_orders,read_all_orders,read_customers")


def test_error_next_fails_exactly_that_many_requests(ds: DevStore) -> None:
    client = ShopClient(ds.base_url, "acme.myshopify.com")
    token = token_for(ds, "acme.myshopify.com")
    ds.set_faults("acme", error_next=2, error_status=503)
    statuses = [client.graphql(token, SHOP_QUERY).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_error_rate_is_a_share_of_requests(ds: DevStore) -> None:
    client = ShopClient(ds.base_url, "acme.myshopify.com")
    token = token_for(ds, "acme.myshopify.com")
    ds.set_faults("acme", error_rate=0.3)
    statuses = [client.graphql(token, SHOP_QUERY).status_code for _ in range(100)]
    errors = [s for s in statuses if s >= 500]
    assert 15 <= len(errors) <= 45
    assert set(errors) <= {500, 502, 503, 504}
    assert statuses.count(200) == 100 - len(errors)


def test_timeout_fault_hangs_past_the_read_timeout_without_blocking_others(ds: DevStore) -> None:
    token = token_for(ds, "acme.myshopify.com")
    ds.set_faults("acme", timeout_next=1, timeout_s=2)
    short = httpx.Client(timeout=httpx.Timeout(0.5, connect=2))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        short.post(ds.base_url + GRAPHQL, json={"query": SHOP_QUERY},
                   headers={"Host": "acme.myshopify.com", "X-Shopify-Access-Token": token})
    assert 0.45 < time.monotonic() - started < 1.5
    short.close()
    # The hung request holds one thread; the next one is served at once.
    started = time.monotonic()
    assert ShopClient(ds.base_url, "acme.myshopify.com").graphql(token, SHOP_QUERY).status_code == 200
    assert time.monotonic() - started < 0.5


def test_slow_ms_adds_latency(ds: DevStore) -> None:
    client = ShopClient(ds.base_url, "beta.myshopify.com")
    token = token_for(ds, "beta.myshopify.com")
    ds.set_faults("beta", slow_ms=250)
    started = time.monotonic()
    assert client.graphql(token, SHOP_QUERY).status_code == 200
    assert time.monotonic() - started >= 0.25


def test_faults_are_per_shop(ds: DevStore) -> None:
    ds.set_faults("acme", error_rate=1.0)
    assert ShopClient(ds.base_url, "beta.myshopify.com").graphql(
        token_for(ds, "beta.myshopify.com"), SHOP_QUERY).status_code == 200
    assert ShopClient(ds.base_url, "acme.myshopify.com").graphql(
        token_for(ds, "acme.myshopify.com"), SHOP_QUERY).status_code >= 500


def test_concurrent_requests_are_served_in_parallel(ds: DevStore) -> None:
    token = token_for(ds, "acme.myshopify.com")
    ds.set_faults("acme", slow_ms=300)

    def one(_: int) -> int:
        with httpx.Client(timeout=10, verify=False) as client:  # noqa: S501 - plain loopback http
            return client.post(ds.base_url + GRAPHQL, json={"query": SHOP_QUERY},
                               headers={"Host": "acme.myshopify.com", "X-Shopify-Access-Token": token}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(one, range(12)))
    assert statuses == [200] * 12
    assert time.monotonic() - started < 2.0  # serially it would take 3.6 s


BULK = """mutation { bulkOperationRunQuery(query: \"\"\"{ orders { edges { node { id name } } } }\"\"\") {
  bulkOperation { id status } userErrors { field message } } }"""


def test_bulk_results_stream_from_a_signed_url_through_the_app_client(settings) -> None:
    spec = ShopSpec(name="bulky", seed=5, customers=3000, months=24, orders=20000)
    with DevStore([spec], api_key=API_KEY, api_secret=SECRET, app_url=APP_URL, install=True) as ds:
        settings.SHOPIFY_API_BASE_URL = ds.base_url
        client = ShopClient(ds.base_url, "bulky.myshopify.com")
        token = token_for(ds, "bulky.myshopify.com")
        started = client.graphql(token, BULK).json()["data"]["bulkOperationRunQuery"]
        assert started["userErrors"] == []
        op_id = started["bulkOperation"]["id"]
        status: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = client.graphql(token, "query($id: ID!) { bulkOperation(id: $id) { status url objectCount } }",
                                    {"id": op_id}).json()["data"]["bulkOperation"]
            if status["status"] == "COMPLETED":
                break
            time.sleep(0.05)
        assert status["status"] == "COMPLETED"
        assert status["url"].startswith(ds.base_url + "/bulk/")
        lines = 0
        with shopify_http_client() as http, http.stream("GET", status["url"]) as response:
            assert response.status_code == 200
            buffer = b""
            for chunk in response.iter_bytes():
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    assert orjson.loads(line)["id"].startswith("gid://shopify/Order/")
                    lines += 1
        assert buffer == b""
        assert lines == int(status["objectCount"]) == 20000
        tampered = HTTP.get(status["url"].replace("signature=", "signature=0"))
        assert tampered.status_code == 403


def test_stop_releases_hung_requests_and_closes_the_port() -> None:
    ds = DevStore([ShopSpec(name="gone", customers=5, months=1)], api_key=API_KEY, api_secret=SECRET,
                  app_url=APP_URL, install=True).start()
    token = token_for(ds, "gone.myshopify.com")
    ds.set_faults("gone", timeout_next=1, timeout_s=60)
    outcome: list[object] = []

    def hang() -> None:
        try:
            outcome.append(HTTP.post(ds.base_url + GRAPHQL, json={"query": SHOP_QUERY},
                                     headers={"Host": "gone.myshopify.com", "X-Shopify-Access-Token": token}))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    port = ds.server.port if ds.server else 0
    ds.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_form_posted_fault_knobs_are_typed(ds: DevStore) -> None:
    response = HTTP.post(f"{ds.base_url}/_devstore/faults",
                         data={"shop": "beta", "revoked_token": "false", "error_rate": "0.25", "error_next": "2"})
    assert response.json()["faults"] == {"error_rate": 0.25, "error_next": 2}
    cleared = HTTP.post(f"{ds.base_url}/_devstore/faults", data={"shop": "beta", "error_rate": "none"})
    assert cleared.json()["faults"] == {"error_next": 2}
