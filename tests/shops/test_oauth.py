"""The code grant's entry points in-process: what /auth/install and /auth/callback refuse or issue."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from shops import services
from shops.security import oauth_query_sign

pytestmark = pytest.mark.django_db


def signed(params: dict[str, str], secret: str) -> str:
    items = list(params.items())
    return urlencode([*items, ("hmac", oauth_query_sign(items, secret=secret))])


def test_install_redirects_to_consent_with_a_single_use_state(client, settings) -> None:
    settings.SHOPIFY_API_BASE_URL = None
    settings.APP_URL = "https://tenure.example.com"
    query = signed({"shop": "acme.myshopify.com", "timestamp": str(int(time.time())), "host": "YWJj"},
                   settings.SHOPIFY_API_SECRET)
    response = client.get(f"/auth/install?{query}")
    assert response.status_code == 302
    target = urlparse(response["Location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "acme.myshopify.com", "/admin/oauth/authorize")
    params = parse_qs(target.query)
    assert params["client_id"] == [settings.SHOPIFY_API_KEY]
    assert params["scope"] == ["read_orders,read_all_orders,read_customers"]
    assert params["redirect_uri"] == ["https://tenure.example.com/auth/callback"]
    assert "grant_options[]" not in params  # offline access
    state = params["state"][0]
    assert services.oauth_state_consume(state=state, shop_domain="acme.myshopify.com")
    assert not services.oauth_state_consume(state=state, shop_domain="acme.myshopify.com")


def test_install_signed_with_previous_secret_is_accepted(client, settings) -> None:
    query = signed({"shop": "acme.myshopify.com", "timestamp": str(int(time.time()))},
                   settings.SHOPIFY_API_SECRET_PREVIOUS)
    assert client.get(f"/auth/install?{query}").status_code == 302


@pytest.mark.parametrize("path", ["/auth/install", "/auth/callback", "/"])
@pytest.mark.parametrize("shop", ["evil.com", "acme.myshopify.com.evil.com", "acme.myshopify.com:443",
                                  "https://acme.myshopify.com", "acme.myshopify.com/x", "acme.myshopify.com#x"])
def test_bad_shop_is_400_before_any_redirect(client, settings, path: str, shop: str) -> None:
    query = signed({"shop": shop, "timestamp": str(int(time.time())), "state": "s", "code": "c"},
                   settings.SHOPIFY_API_SECRET)
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert not response.has_header("Location")


def test_unsigned_or_stale_install_is_400(client, settings) -> None:
    assert client.get("/auth/install?shop=acme.myshopify.com&timestamp=1").status_code == 400
    stale = signed({"shop": "acme.myshopify.com", "timestamp": str(int(time.time()) - 2 * 86400)},
                   settings.SHOPIFY_API_SECRET)
    assert client.get(f"/auth/install?{stale}").status_code == 400
    wrong = signed({"shop": "acme.myshopify.com", "timestamp": str(int(time.time()))}, "not-our-secret")
    assert client.get(f"/auth/install?{wrong}").status_code == 400
