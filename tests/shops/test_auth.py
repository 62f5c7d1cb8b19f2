"""Session tokens on embedded pages: valid, expired, other app, other shop, missing."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest

from shops.models import Shop
from sync.models import Order
from tests.shops.conftest import session_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.shops.urls_embedded"),
              pytest.mark.filterwarnings("ignore:The HMAC key is")]
T0 = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def orders(shop_a, shop_b) -> None:
    for shop, ids in ((shop_a, [1, 2]), (shop_b, [99])):
        for i in ids:
            Order.objects.create(shop=shop, shopify_id=i, processed_at=T0, created_at=T0, updated_at=T0)


def assert_frame_headers(response, shop: str | None) -> None:
    csp = response["Content-Security-Policy"]
    expected = f"frame-ancestors https://{shop} https://admin.shopify.com" if shop else \
        "frame-ancestors https://admin.shopify.com"
    assert csp == expected
    assert not response.has_header("X-Frame-Options")


def test_document_load_with_valid_token_shows_only_that_shop(client, orders, shop_a) -> None:
    response = client.get("/t/orders", {"shop": shop_a.domain, "id_token": session_token(shop_a.domain)})
    assert response.status_code == 200
    assert response.json() == {"shop": "acme.myshopify.com", "orders": [1, 2]}
    assert_frame_headers(response, shop_a.domain)


def test_fetch_with_bearer_token(client, orders, shop_b) -> None:
    response = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {session_token(shop_b.domain)}")
    assert response.json() == {"shop": "bravo.myshopify.com", "orders": [99]}
    assert_frame_headers(response, shop_b.domain)


def test_token_for_shop_a_never_shows_shop_b(client, orders, shop_a, shop_b) -> None:
    token_a = session_token(shop_a.domain)
    # The shop parameter names B, the token A: refused, not A's data under B's name nor B's data.
    response = client.get("/t/orders", {"shop": shop_b.domain, "id_token": token_a})
    assert response.status_code == 401
    assert b"99" not in response.content
    assert b"orders" not in response.content
    # A token whose iss and dest disagree.
    forged = session_token(shop_a.domain, dest=f"https://{shop_b.domain}")
    response = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    # A token for B signed with someone else's secret.
    stolen = session_token(shop_b.domain, secret="attacker")
    response = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {stolen}")
    assert response.status_code == 401
    assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"


def test_plain_navigation_without_token_bounces(client, shop_a) -> None:
    response = client.get("/t/orders", {"shop": shop_a.domain, "host": "abc", "embedded": "1"})
    assert response.status_code == 302
    location = urlparse(response["Location"])
    assert location.path == "/auth/session-token"
    query = parse_qs(location.query)
    assert query["shop"] == [shop_a.domain]
    assert query["shopify-reload"] == ["/t/orders?shop=acme.myshopify.com&host=abc&embedded=1"]
    assert_frame_headers(response, shop_a.domain)
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b'src="https://cdn.shopify.com/shopifycloud/app-bridge.js"' in page.content
    assert b"tenure-test-api-key" in page.content
    assert_frame_headers(page, shop_a.domain)


def test_bounce_page_uses_app_bridge_setting_and_refuses_offsite_reload(client, settings) -> None:
    settings.SHOPIFY_APP_BRIDGE_URL = "http://127.0.0.1:9/cdn/app-bridge.js"
    ok = client.get("/auth/session-token", {"shop": "acme.myshopify.com", "shopify-reload": "/x?a=1"})
    assert b'src="http://127.0.0.1:9/cdn/app-bridge.js"' in ok.content
    for reload in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = client.get("/auth/session-token", {"shop": "acme.myshopify.com", "shopify-reload": reload})
        assert response.status_code == 400


def test_expired_token_bounces_on_load_and_401s_on_fetch(client, orders, shop_a) -> None:
    expired = session_token(shop_a.domain, exp_in=-60)
    load = client.get("/t/orders", {"shop": shop_a.domain, "id_token": expired})
    assert load.status_code == 302
    assert load["Location"].startswith("/auth/session-token?")
    fetch = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert fetch.status_code == 401
    assert fetch["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert_frame_headers(fetch, None)


def test_small_clock_skew_is_tolerated(client, orders, shop_a) -> None:
    # Shopify's clock a few seconds ahead: nbf slightly in the future still passes.
    token = session_token(shop_a.domain, nbf_offset=3)
    assert client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    too_early = session_token(shop_a.domain, nbf_offset=120)
    assert client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {too_early}").status_code == 401


def test_token_for_another_app_is_401(client, orders, shop_a) -> None:
    other = session_token(shop_a.domain, aud="someone-elses-app")
    assert client.get("/t/orders", {"shop": shop_a.domain, "id_token": other}).status_code == 401
    fetch = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {other}")
    assert fetch.status_code == 401
    assert b"orders" not in fetch.content


def test_uninstalled_shop_gets_no_data(client, orders, shop_a) -> None:
    Shop.objects.filter(pk=shop_a.pk).update(state=Shop.State.UNINSTALLED)
    token = session_token(shop_a.domain)
    fetch = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert fetch.status_code == 401
    # A document load goes through the app home (which would exchange the token again).
    load = client.get("/t/orders", {"shop": shop_a.domain, "id_token": token})
    assert load.status_code == 302
    assert urlparse(load["Location"]).path == "/"


def test_admin_origin_setting_is_added(client, orders, shop_a, settings) -> None:
    settings.SHOPIFY_ADMIN_ORIGIN = "http://127.0.0.1:5555"
    response = client.get("/t/orders", HTTP_AUTHORIZATION=f"Bearer {session_token(shop_a.domain)}")
    assert response["Content-Security-Policy"] == (
        "frame-ancestors https://acme.myshopify.com https://admin.shopify.com http://127.0.0.1:5555")


def test_clickjacking_middleware_spares_embedded_answers(client, orders, shop_a, settings) -> None:
    # The middleware denies framing everywhere else; here DENY would break the admin iframe, and
    # the per-shop frame-ancestors is the control, on answers and refusals alike.
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in settings.MIDDLEWARE
    ok = client.get("/t/orders", {"shop": shop_a.domain, "id_token": session_token(shop_a.domain)})
    refused = client.get("/t/orders", HTTP_AUTHORIZATION="Bearer junk")
    assert (ok.status_code, refused.status_code) == (200, 401)
    for response in (ok, refused):
        assert not response.has_header("X-Frame-Options")
        assert response["Content-Security-Policy"].startswith("frame-ancestors ")
        assert "'none'" not in response["Content-Security-Policy"]
