"""The app's only door to Shopify over HTTP.

Everything that talks to Shopify (token exchange and refresh through `shopifyapp`,
Admin GraphQL, bulk-operation result downloads) goes through an `httpx.Client`
made here. Against real Shopify it connects to https://<shop>.myshopify.com; when
``SHOPIFY_API_BASE_URL`` is set (devstore), the transport sends the very same
requests to that base URL instead, keeping the shop in the Host header. Nothing
else in the code differs between the two.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


class BaseUrlTransport(httpx.BaseTransport):
    """Sends requests for *.myshopify.com (and result URLs) to `base_url`, Host header kept."""

    def __init__(self, base_url: str, inner: httpx.BaseTransport | None = None) -> None:
        self.base = httpx.URL(base_url)
        self.inner = inner or httpx.HTTPTransport(retries=0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host.endswith(".myshopify.com") or host == "admin.shopify.com":
            request.headers["Host"] = host
            request.url = request.url.copy_with(
                scheme=self.base.scheme, host=self.base.host, port=self.base.port
            )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def shopify_http_client(*, read_timeout: float = READ_TIMEOUT, **kwargs: Any) -> httpx.Client:
    """An httpx client with connect and read timeouts, pointed at Shopify or at devstore."""
    timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
    base = getattr(settings, "SHOPIFY_API_BASE_URL", None)
    if base:
        kwargs.setdefault("transport", BaseUrlTransport(base))
    return httpx.Client(timeout=timeout, **kwargs)
