"""Helpers for the devstore API contract tests: small shops on a frozen clock, raw GraphQL over HTTP.

``api_shop`` starts devstore's own HTTP server (``devstore.testing.DevStore``) with one shop,
installs the app, and exchanges session tokens for offline access tokens the way the app
does; ``Api.gql`` then POSTs raw JSON to ``/admin/api/2026-10/graphql.json`` with httpx.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from devstore.store import ShopStore
from devstore.testing import DevStore, ShopSpec

# 2026-11-20T00:00:00Z: generation anchor and the frozen clock of the small test shops.
NOW = 1_795_132_800
ALL_SCOPES = frozenset({"read_orders", "read_all_orders", "read_customers", "protected_customer_data"})
BASIC_SCOPES = frozenset({"read_orders", "read_all_orders", "read_customers"})
API_KEY = "devstore-api-test-key"
API_SECRET = "devstore-api-test-secret-0123456789abcdef"  # noqa: S105 - a test fixture, not a credential


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def small_shop(name: str = "acme", **kwargs: Any) -> tuple[ShopStore, Clock]:
    options: dict[str, Any] = {
        "seed": 7, "customers": 120, "months": 18, "currency": "NZD", "iana_timezone": "Pacific/Auckland",
    }
    options.update(kwargs)
    store = ShopStore.generate(name=name, now=NOW, **options)
    clock = Clock()
    store.clock = clock
    return store, clock


class Api:
    """One shop served over HTTP; its token minted through token exchange.

    Scopes belong to the installation (its live tokens follow a change), so a request with
    another scope set first re-installs the app with that set, as a merchant changing the grant
    would; a token per scope set is kept only to avoid re-exchanging.
    """

    def __init__(self, ds: DevStore, domain: str) -> None:
        self.ds = ds
        self.domain = domain
        self.store = ds.store(domain)
        self.clock = Clock()
        self.store.clock = self.clock  # freeze the API side's time (60-day window, buckets, URL expiry)
        self.http = httpx.Client(base_url=ds.base_url, headers={"Host": domain}, timeout=30)
        self._tokens: dict[frozenset[str], str] = {}

    def token(self, scopes: frozenset[str]) -> str:
        installed = self.ds.platform.registry.installed(self.domain)
        if installed is None or installed.scopes != scopes:
            self.ds.install(self.domain, scopes=",".join(sorted(scopes)))
        if scopes not in self._tokens:
            resp = self.http.post("/admin/oauth/access_token", json={
                "client_id": API_KEY,
                "client_secret": API_SECRET,
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": self.ds.session_token(self.domain),
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
            })
            resp.raise_for_status()
            self._tokens[scopes] = resp.json()["access_token"]
        return self._tokens[scopes]

    def post(self, body: bytes, *, scopes: frozenset[str] = ALL_SCOPES) -> httpx.Response:
        return self.http.post(
            "/admin/api/2026-10/graphql.json",
            content=body,
            headers={"X-Shopify-Access-Token": self.token(scopes), "Content-Type": "application/json"},
        )

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, scopes: frozenset[str] = ALL_SCOPES
    ) -> tuple[int, dict[str, Any]]:
        resp = self.post(orjson.dumps({"query": query, "variables": variables or {}}), scopes=scopes)
        assert resp.headers["Content-Type"].startswith("application/json")
        return resp.status_code, resp.json()

    def get(self, url: str) -> httpx.Response:
        """A plain GET of an absolute devstore URL (bulk results), as the app downloads them."""
        return httpx.get(url, timeout=30)


@contextmanager
def api_shop(name: str, **spec: Any) -> Iterator[Api]:
    options: dict[str, Any] = {
        "seed": 7, "customers": 120, "months": 18, "currency": "NZD", "iana_timezone": "Pacific/Auckland",
    }
    options.update(spec)
    shop_spec = ShopSpec(name=name, now=NOW, **options)
    with DevStore([shop_spec], api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:9",
                  toml_path=None) as ds:
        api = Api(ds, shop_spec.domain)
        try:
            yield api
        finally:
            api.http.close()
