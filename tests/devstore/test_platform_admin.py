"""Contract tests for the admin frame, the app's launch URL and the App Bridge stand-in.

- launch parameters and session tokens:
  https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens
- the bounce page (``shopify-reload``) that App Bridge completes:
  https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens (document requests)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jwt
import pytest
from shopify_app import verify_app_home_req

from devstore.testing import DevStore, ShopSpec
from shops.security import oauth_query_valid
from tests.devstore.platform_support import API_KEY, HTTP, SECRET

APP_URL = "http://app.test"
HARNESS = Path(__file__).with_name("app_bridge_harness.js")


@pytest.fixture
def ds() -> Iterator[DevStore]:
    specs = [ShopSpec(name="acme", customers=10, months=2), ShopSpec(name="beta", seed=2, customers=10, months=2)]
    with DevStore(specs, api_key=API_KEY, api_secret=SECRET, app_url=APP_URL) as store:
        yield store


def iframe_src(page: str) -> str:
    match = re.search(r'<iframe id="app-iframe"[^>]* src="([^"]+)"', page)
    assert match, page
    return unescape(match.group(1))


def test_admin_page_embeds_the_app_with_a_signed_launch_url(ds: DevStore) -> None:
    ds.install("acme")
    page = HTTP.get(ds.admin_url("acme"))
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    src = iframe_src(page.text)
    parts = urlsplit(src)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == APP_URL + "/"
    params = dict(parse_qsl(parts.query))
    assert set(params) == {"embedded", "hmac", "host", "id_token", "locale", "session", "shop", "timestamp"}
    assert params["embedded"] == "1"
    assert params["shop"] == "acme.myshopify.com"
    assert base64.urlsafe_b64decode(params["host"] + "==").decode() == "admin.shopify.com/store/acme"
    # hmac: hex HMAC-SHA256 of the other parameters, sorted, "&"-joined (hand-built here).
    message = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "hmac")
    assert params["hmac"] == hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert oauth_query_valid(parts.query, secret=SECRET)
    claims = jwt.decode(params["id_token"], SECRET, algorithms=["HS256"], audience=API_KEY)
    assert claims["dest"] == "https://acme.myshopify.com"
    assert claims["sid"] == params["session"]
    # The SDK the app uses accepts the document request as it arrives.
    result = verify_app_home_req({"method": "GET", "headers": {}, "url": src, "body": ""},
                                 {"client_id": API_KEY, "client_secret": SECRET}, "/auth/session-token")
    assert result.ok, result.log
    assert result.shop == "acme"
    assert "/_devstore/admin/uninstall" in page.text


def test_admin_page_by_shop_parameter_and_deep_link(ds: DevStore) -> None:
    ds.install("beta")
    page = HTTP.get(f"{ds.base_url}/admin/apps/{API_KEY}/reports/rfm", params={"shop": "beta.myshopify.com",
                                                                                "tab": "2"})
    src = urlsplit(iframe_src(page.text))
    assert src.path == "/reports/rfm"
    params = dict(parse_qsl(src.query))
    assert params["shop"] == "beta.myshopify.com"
    assert params["tab"] == "2"
    assert oauth_query_valid(src.query, secret=SECRET)


def test_wrong_app_or_shop_is_404(ds: DevStore) -> None:
    assert HTTP.get(f"{ds.base_url}/store/acme/apps/other-app").status_code == 404
    assert HTTP.get(f"{ds.base_url}/store/nope/apps/{API_KEY}").status_code == 404


def test_install_and_uninstall_buttons(ds: DevStore) -> None:
    page = HTTP.get(ds.admin_url("acme"))
    assert 'id="install"' in page.text
    assert "app-iframe" not in page.text
    link = unescape(re.search(r'id="code-grant"[^>]*href="([^"]+)"', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert oauth_query_valid(urlsplit(link).query, secret=SECRET)  # the non-embedded install request
    installed = HTTP.post(f"{ds.base_url}/_devstore/admin/install", data={"shop": "acme.myshopify.com"})
    assert installed.status_code == 303
    assert installed.headers["Location"] == ds.admin_url("acme")
    assert "app-iframe" in HTTP.get(ds.admin_url("acme")).text
    removed = HTTP.post(f"{ds.base_url}/_devstore/admin/uninstall", data={"shop": "acme.myshopify.com"})
    assert removed.status_code == 303
    assert ds.platform.registry.installed("acme.myshopify.com") is None
    assert [d["topic"] for d in ds.deliveries("acme")] == ["app/uninstalled"]
    assert 'id="install"' in HTTP.get(ds.admin_url("acme")).text


def test_app_home_url_matches_the_frame(ds: DevStore) -> None:
    ds.install("acme")
    url = ds.app_home_url("acme", path="/settings")
    parts = urlsplit(url)
    assert parts.path == "/settings"
    assert oauth_query_valid(parts.query, secret=SECRET)


def test_app_bridge_script_is_served_for_any_origin(ds: DevStore) -> None:
    response = HTTP.get(f"{ds.base_url}/cdn/app-bridge.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    for surface in ("idToken", "shopify-reload", "X-Shopify-Retry-Invalid-Session-Request", "window.fetch"):
        assert surface in response.text


def test_id_token_endpoint_answers_cross_origin(ds: DevStore) -> None:
    preflight = HTTP.options(f"{ds.base_url}/_devstore/id_token", headers={"Origin": APP_URL,
                                                                           "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == APP_URL
    response = HTTP.get(f"{ds.base_url}/_devstore/id_token", params={"shop": "acme.myshopify.com"},
                        headers={"Origin": APP_URL})
    assert response.headers["Access-Control-Allow-Origin"] == APP_URL
    assert response.headers["Cache-Control"] == "no-store"
    claims = jwt.decode(response.json()["id_token"], SECRET, algorithms=["HS256"], audience=API_KEY)
    assert claims["dest"] == "https://acme.myshopify.com"


# -- the App Bridge stand-in, executed (Node with a minimal DOM; see app_bridge_harness.js) -----------


def run_bridge(ds: DevStore, scenario: str, url: str) -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    done = subprocess.run(["node", str(HARNESS), ds.base_url, scenario, url, API_KEY],  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in result, result.get("error")
    return result


def bearer_claims(value: str | None) -> dict[str, Any]:
    assert value is not None
    assert value.startswith("Bearer ")
    return jwt.decode(value.removeprefix("Bearer "), SECRET, algorithms=["HS256"], audience=API_KEY)


@pytest.mark.parametrize("scenario", ["embedded", "standalone"])
def test_bridge_id_token_and_bearer_fetch(ds: DevStore, scenario: str) -> None:
    out = run_bridge(ds, scenario, "/reports?shop=acme.myshopify.com&embedded=1&host=x")
    claims = jwt.decode(out["token"], SECRET, algorithms=["HS256"], audience=API_KEY)
    assert claims["dest"] == "https://acme.myshopify.com"
    assert claims["exp"] > time.time()
    assert out["cached"] is True
    assert out["config"]["shop"] == "acme.myshopify.com"
    assert out["config"]["apiKey"] == API_KEY
    if scenario == "embedded":  # asked the admin page over postMessage, as App Bridge does
        assert {"type": "devstore:id_token:request", "targetOrigin": ds.base_url} in out["posted"]
    app_requests = [r for r in out["requests"] if r["url"].startswith(APP_URL)]
    assert [urlsplit(r["url"]).path for r in app_requests] == ["/api/orders", "/api/retry", "/api/retry"]
    for request in app_requests:
        assert bearer_claims(request["authorization"])["dest"] == "https://acme.myshopify.com"
    # A 401 with X-Shopify-Retry-Invalid-Session-Request is retried once with a fresh token.
    assert app_requests[1]["authorization"] != app_requests[2]["authorization"]
    others = [r for r in out["requests"] if r["url"].startswith(ds.base_url)]
    assert all(r["authorization"] is None for r in others)  # never sent to another origin


def test_bridge_completes_the_bounce_page(ds: DevStore) -> None:
    reload = quote("/reports?period=90&shop=acme.myshopify.com", safe="")
    out = run_bridge(ds, "bounce", f"/auth/session-token?shop=acme.myshopify.com&shopify-reload={reload}")
    target = urlsplit(out["replaced"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == APP_URL + "/reports"
    params = dict(parse_qsl(target.query))
    assert params["period"] == "90"
    assert jwt.decode(params["id_token"], SECRET, algorithms=["HS256"], audience=API_KEY)["dest"] == \
        "https://acme.myshopify.com"


def test_bridge_outside_the_admin_reopens_the_app_inside_it(ds: DevStore) -> None:
    out = run_bridge(ds, "top", "/reports?shop=acme.myshopify.com")
    assert out["replaced"] == f"{ds.base_url}/store/acme/apps/{API_KEY}/reports"


def test_id_token_endpoint_refuses_other_origins(ds: DevStore) -> None:
    response = HTTP.get(f"{ds.base_url}/_devstore/id_token", params={"shop": "acme.myshopify.com"},
                        headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "id_token" not in response.text
