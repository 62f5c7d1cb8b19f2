"""Shared bits of the devstore platform tests: one reused HTTP client, shop-addressed calls."""

from __future__ import annotations

from typing import Any

import httpx

# One client for the whole run: building an httpx.Client loads CA certificates (~80 ms each).
HTTP = httpx.Client(timeout=10)

API_KEY = "platform-test-key"
SECRET = "platform-test-secret-0123456789abcdef"
APP_URL = "http://127.0.0.1:9"  # nothing listens there unless a test says otherwise
GRAPHQL = "/admin/api/2026-10/graphql.json"
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


class ShopClient:
    """Requests to devstore as the app's transport sends them: ``Host: <shop>.myshopify.com``."""

    def __init__(self, base_url: str, shop: str | None = None, http: httpx.Client = HTTP) -> None:
        self.base_url = base_url
        self.shop = shop
        self.http = http

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.shop:
            headers["Host"] = self.shop
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def __enter__(self) -> ShopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def graphql(self, access_token: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return self.post(GRAPHQL, json={"query": query, "variables": variables or {}},
                         headers={"X-Shopify-Access-Token": access_token})
