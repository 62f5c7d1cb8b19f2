"""Contract tests for devstore's OAuth endpoints, driven with raw HTTP and with shopifyapp.

Pinned formats (see devstore/oauth.py for the sources):
- token exchange: https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/token-exchange
- expiring offline tokens and refresh:
  https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/offline-access-tokens
- authorization code grant:
  https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from shopify_app import ShopifyApp, TokenExchangeAccessToken, refresh_access_token, token_exchange

from devstore.session import id_token_mint
from devstore.testing import DevStore, ShopSpec
from shops.security import oauth_query_valid
from sync.client import shopify_http_client
from tests.devstore.platform_support import API_KEY, APP_URL, GRAPHQL, HTTP, INVALID_TOKEN, SECRET, ShopClient

TOKEN_URL = "/admin/oauth/access_token"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE = "urn:shopify:params:oauth:token-type:offline-access-token"


@pytest.fixture
def ds() -> Iterator[DevStore]:
    specs = [ShopSpec(name="acme", customers=40, months=4, currency="NZD", iana_timezone="Pacific/Auckland"),
             ShopSpec(name="beta", seed=3, customers=30, months=3, currency="EUR", iana_timezone="Europe/Berlin")]
    with DevStore(specs, api_key=API_KEY, api_secret=SECRET, app_url=APP_URL) as store:
        yield store


def client(ds: DevStore, shop: str = "acme.myshopify.com") -> ShopClient:
    return ShopClient(ds.base_url, shop)


def exchange(ds: DevStore, shop: str = "acme.myshopify.com", *, token: str | None = None,
             secret: str = SECRET, expiring: int = 1) -> httpx.Response:
    with client(ds, shop) as c:
        return c.post(TOKEN_URL, json={
            "client_id": API_KEY, "client_secret": secret, "grant_type": EXCHANGE,
            "subject_token": token or ds.session_token(shop), "subject_token_type": ID_TOKEN,
            "requested_token_type": OFFLINE, "expiring": expiring,
        })


def refresh(ds: DevStore, refresh_token: str, shop: str = "acme.myshopify.com") -> httpx.Response:
    with client(ds, shop) as c:
        return c.post(TOKEN_URL, json={"client_id": API_KEY, "client_secret": SECRET,
                                       "grant_type": "refresh_token", "refresh_token": refresh_token})


def shop_query(ds: DevStore, access_token: str, shop: str = "acme.myshopify.com") -> httpx.Response:
    with client(ds, shop) as c:
        return c.post(GRAPHQL, json={"query": "{ shop { myshopifyDomain currencyCode } }"},
                      headers={"X-Shopify-Access-Token": access_token})


# -- session tokens -----------------------------------------------------------------------------


def test_session_token_has_shopify_claims_and_one_minute_of_life(ds: DevStore) -> None:
    # Claims from https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens
    token = ds.session_token("acme")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=API_KEY)
    assert claims["iss"] == "https://acme.myshopify.com/admin"
    assert claims["dest"] == "https://acme.myshopify.com"
    assert claims["aud"] == API_KEY
    assert claims["exp"] - claims["iat"] == 60
    assert claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["sub"].isdigit()
    assert {"jti", "sid"} <= claims.keys()
    assert ds.session_token("acme") != token  # a fresh jti every time


# -- token exchange -----------------------------------------------------------------------------


def test_token_exchange_returns_an_expiring_offline_token_that_works(ds: DevStore) -> None:
    ds.install("acme")
    response = exchange(ds)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "expires_in", "refresh_token", "refresh_token_expires_in"}
    assert body["expires_in"] == 3600
    assert body["refresh_token_expires_in"] == 90 * 86400
    assert body["scope"] == "read_all_orders,read_customers,read_orders"
    assert body["access_token"].startswith("shpat_")
    graphql = shop_query(ds, body["access_token"])
    assert graphql.status_code == 200
    assert graphql.json()["data"]["shop"] == {"myshopifyDomain": "acme.myshopify.com", "currencyCode": "NZD"}


def test_non_expiring_exchange_has_no_refresh_token(ds: DevStore) -> None:
    ds.install("acme")
    body = exchange(ds, expiring=0).json()
    assert set(body) == {"access_token", "scope"}


def test_form_encoded_token_request_is_accepted(ds: DevStore) -> None:
    ds.install("acme")
    with client(ds) as c:
        response = c.post(TOKEN_URL, data={
            "client_id": API_KEY, "client_secret": SECRET, "grant_type": EXCHANGE,
            "subject_token": ds.session_token("acme"), "subject_token_type": ID_TOKEN,
            "requested_token_type": OFFLINE, "expiring": "1"})
    assert response.status_code == 200
    assert response.json()["expires_in"] == 3600


def test_expired_session_token_is_refused(ds: DevStore) -> None:
    ds.install("acme")
    old = id_token_mint(shop_domain="acme.myshopify.com", api_key=API_KEY, api_secret=SECRET, now=time.time() - 120)
    response = exchange(ds, token=old)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_subject_token"


@pytest.mark.parametrize("kind", ["other_secret", "other_audience", "other_shop", "garbage"])
def test_forged_or_misdirected_session_tokens_are_refused(ds: DevStore, kind: str) -> None:
    ds.install("acme")
    ds.install("beta")
    token = {
        "other_secret": id_token_mint(shop_domain="acme.myshopify.com", api_key=API_KEY,
                                      api_secret="not-the-secret-but-as-long-as-one-0123"),
        "other_audience": id_token_mint(shop_domain="acme.myshopify.com", api_key="another-app", api_secret=SECRET),
        "other_shop": ds.session_token("beta"),  # presented at acme
        "garbage": "not.a.jwt",
    }[kind]
    response = exchange(ds, token=token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_subject_token"


def test_bad_client_secret_is_invalid_client(ds: DevStore) -> None:
    ds.install("acme")
    response = exchange(ds, secret="wrong-secret")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client", "error_description": "Client credentials are invalid"}


def test_exchange_for_a_shop_without_the_app_is_refused(ds: DevStore) -> None:
    response = exchange(ds)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_access_token_expires_after_an_hour(ds: DevStore) -> None:
    ds.install("acme")
    access = exchange(ds).json()["access_token"]
    assert shop_query(ds, access).status_code == 200
    ds.advance_clock(3601)
    response = shop_query(ds, access)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_token_for_one_shop_does_not_open_another(ds: DevStore) -> None:
    ds.install("acme")
    ds.install("beta")
    access = exchange(ds).json()["access_token"]
    assert shop_query(ds, access, "beta.myshopify.com").status_code == 401


def test_new_expiring_token_revokes_the_previous_one(ds: DevStore) -> None:
    # "Only one expiring offline token can be active per app/shop combination" (offline-access-tokens).
    ds.install("acme")
    first = exchange(ds).json()["access_token"]
    second = exchange(ds).json()["access_token"]
    assert shop_query(ds, first).status_code == 401
    assert shop_query(ds, second).status_code == 200


# -- refresh ------------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_dies_once_the_new_pair_is_used(ds: DevStore) -> None:
    ds.install("acme")
    first = exchange(ds).json()
    second = refresh(ds, first["refresh_token"])
    assert second.status_code == 200
    pair = second.json()
    assert pair["expires_in"] == 3600
    assert pair["refresh_token_expires_in"] == 90 * 86400
    assert pair["refresh_token"] != first["refresh_token"]
    assert shop_query(ds, first["access_token"]).status_code == 401  # superseded
    # The response may be lost: until the new pair is used, the old refresh token still works...
    retry = refresh(ds, first["refresh_token"])
    assert retry.status_code == 200
    pair = retry.json()
    assert refresh(ds, second.json()["refresh_token"]).status_code == 400  # ...and replaced the lost pair
    assert shop_query(ds, pair["access_token"]).status_code == 200  # the new pair is used
    dead = refresh(ds, first["refresh_token"])
    assert dead.status_code == 400
    assert dead.json()["error"] == "invalid_grant"


def test_using_the_new_refresh_token_retires_the_old_one(ds: DevStore) -> None:
    ds.install("acme")
    first = exchange(ds).json()
    second = refresh(ds, first["refresh_token"]).json()
    third = refresh(ds, second["refresh_token"])
    assert third.status_code == 200
    assert refresh(ds, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_token_expires_after_90_days(ds: DevStore) -> None:
    ds.install("acme")
    first = exchange(ds).json()
    ds.advance_clock(90 * 86400 + 1)
    assert refresh(ds, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_unknown_refresh_token_and_uninstalled_shop_are_invalid_grant(ds: DevStore) -> None:
    ds.install("acme")
    first = exchange(ds).json()
    assert refresh(ds, "shprt_nonsense").json()["error"] == "invalid_grant"
    ds.uninstall("acme")
    assert refresh(ds, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert shop_query(ds, first["access_token"]).status_code == 401


def test_revoked_token_fault_kills_every_token(ds: DevStore) -> None:
    ds.install("acme")
    first = exchange(ds).json()
    ds.set_faults("acme", revoked_token=True)
    assert shop_query(ds, first["access_token"]).json() == INVALID_TOKEN
    assert refresh(ds, first["refresh_token"]).json()["error"] == "invalid_grant"
    # A new session token (the merchant opens the app) gets the shop going again.
    assert shop_query(ds, exchange(ds).json()["access_token"]).status_code == 200


# -- shopifyapp through the app's own HTTP door ---------------------------------------------------


def test_shopifyapp_token_exchange_and_refresh_work_through_sync_client(ds: DevStore, settings) -> None:
    settings.SHOPIFY_API_BASE_URL = ds.base_url
    ds.install("acme")
    token = ds.session_token("acme")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=API_KEY)
    config = {"client_id": API_KEY, "client_secret": SECRET, "old_client_secret": None}
    with shopify_http_client() as http:
        result = token_exchange("offline", config, id_token={"exchangeable": True, "token": token, "claims": claims},
                                expiring=True, http_client=http)
    assert result.ok, result.log
    access = result.access_token
    assert access is not None
    assert access.shop == "acme"
    assert access.refresh_token
    assert access.scope == "read_all_orders,read_customers,read_orders"
    # Past its expiry, the app refreshes with the same library and the same client.
    ds.advance_clock(3600)
    stale = TokenExchangeAccessToken(
        access_mode="offline", shop="acme", token=access.token, scope=access.scope,
        expires=(datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        refresh_token=access.refresh_token, refresh_token_expires=access.refresh_token_expires, user=None)
    with shopify_http_client() as http:
        renewed = refresh_access_token(stale, config, http)
    assert renewed.ok, renewed.log
    assert renewed.access_token is not None
    assert renewed.access_token.token != access.token
    assert shop_query(ds, renewed.access_token.token).status_code == 200
    # The refresh token it replaced is dead once the new pair is in use.
    with shopify_http_client() as http:
        again = refresh_access_token(stale, config, http)
    assert not again.ok
    assert again.log.code == "invalid_grant"


def test_shopifyapp_reports_an_expired_session_token(ds: DevStore, settings) -> None:
    settings.SHOPIFY_API_BASE_URL = ds.base_url
    ds.install("acme")
    old = id_token_mint(shop_domain="acme.myshopify.com", api_key=API_KEY, api_secret=SECRET, now=time.time() - 300)
    claims = jwt.decode(old, SECRET, algorithms=["HS256"], options={"verify_exp": False}, audience=API_KEY)
    with shopify_http_client() as http:
        result = ShopifyApp(API_KEY, SECRET).exchange_using_token_exchange(
            "offline", id_token={"exchangeable": True, "token": old, "claims": claims}, http_client=http)
    assert not result.ok
    assert result.log.code == "invalid_subject_token"


# -- authorization code grant ---------------------------------------------------------------------


def hex_hmac(message: str) -> str:
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_install_request_carries_shop_timestamp_host_and_a_valid_hmac(ds: DevStore) -> None:
    url = ds.install_link("acme")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == APP_URL
    params = dict(parse_qsl(parts.query))
    assert set(params) == {"hmac", "host", "shop", "timestamp"}
    assert params["shop"] == "acme.myshopify.com"
    assert abs(int(params["timestamp"]) - time.time()) < 5
    assert base64.urlsafe_b64decode(params["host"] + "==").decode() == "admin.shopify.com/store/acme"
    # Hand-computed: the other parameters, sorted, key=value joined by "&".
    message = f"host={params['host']}&shop=acme.myshopify.com&timestamp={params['timestamp']}"
    assert params["hmac"] == hex_hmac(message)
    assert oauth_query_valid(parts.query, secret=SECRET)  # the app's own check agrees


def authorize(ds: DevStore, **overrides: str) -> httpx.Response:
    params = {"client_id": API_KEY, "scope": "read_orders,read_customers", "shop": "acme.myshopify.com",
              "redirect_uri": f"{APP_URL}/auth/callback", "state": "nonce-123", **overrides}
    with ShopClient(ds.base_url) as c:
        page = c.get("/admin/oauth/authorize", params=params)
        assert page.status_code == 200, page.text
        assert 'id="approve"' in page.text
        return c.post("/admin/oauth/authorize", params=params, data={"decision": "approve"})


def test_authorization_code_grant_redirects_with_a_signed_single_use_code(ds: DevStore) -> None:
    approved = authorize(ds)
    assert approved.status_code == 302
    location = urlsplit(approved.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{APP_URL}/auth/callback"
    params = dict(parse_qsl(location.query))
    assert set(params) == {"code", "hmac", "host", "shop", "state", "timestamp"}
    assert params["state"] == "nonce-123"
    assert params["shop"] == "acme.myshopify.com"
    message = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "hmac")
    assert params["hmac"] == hex_hmac(message)
    assert oauth_query_valid(location.query, secret=SECRET)

    with client(ds) as c:
        body = {"client_id": API_KEY, "client_secret": SECRET, "code": params["code"], "expiring": 1}
        first = c.post(TOKEN_URL, json=body)
        assert first.status_code == 200
        pair = first.json()
        assert pair["scope"] == "read_customers,read_orders"
        assert pair["expires_in"] == 3600
        assert pair["refresh_token"]
        assert shop_query(ds, pair["access_token"]).status_code == 200  # the grant installed the app
        # Codes are single use: https://github.com/nozzlegear/ShopifySharp/issues/70 has Shopify's answer.
        second = c.post(TOKEN_URL, json=body)
    assert second.status_code == 400
    assert second.json() == {"error": "invalid_request",
                             "error_description": "The authorization code was not found or was already used"}


def test_code_exchange_with_a_bad_secret_or_unknown_code_fails(ds: DevStore) -> None:
    code = dict(parse_qsl(urlsplit(authorize(ds).headers["Location"]).query))["code"]
    with client(ds) as c:
        bad_secret = c.post(TOKEN_URL, json={"client_id": API_KEY, "client_secret": "nope", "code": code})
        unknown = c.post(TOKEN_URL, json={"client_id": API_KEY, "client_secret": SECRET, "code": "abc"})
        other_shop = client(ds, "beta.myshopify.com").post(
            TOKEN_URL, json={"client_id": API_KEY, "client_secret": SECRET, "code": code})
        good = c.post(TOKEN_URL, json={"client_id": API_KEY, "client_secret": SECRET, "code": code})
    assert bad_secret.json()["error"] == "invalid_client"
    assert unknown.json()["error"] == "invalid_request"
    assert other_shop.json()["error"] == "invalid_request"  # a code is bound to its shop
    assert good.status_code == 200  # failed attempts did not burn it


def test_non_expiring_code_exchange_without_expiring_flag(ds: DevStore) -> None:
    code = dict(parse_qsl(urlsplit(authorize(ds).headers["Location"]).query))["code"]
    with client(ds) as c:
        body = c.post(TOKEN_URL, json={"client_id": API_KEY, "client_secret": SECRET, "code": code}).json()
    assert set(body) == {"access_token", "scope"}


def test_authorize_refuses_unknown_client_and_foreign_redirect(ds: DevStore) -> None:
    with ShopClient(ds.base_url) as c:
        base = {"scope": "read_orders", "shop": "acme.myshopify.com", "state": "s"}
        wrong_client = c.get("/admin/oauth/authorize", params={**base, "client_id": "other",
                                                                "redirect_uri": f"{APP_URL}/auth/callback"})
        foreign = c.get("/admin/oauth/authorize", params={**base, "client_id": API_KEY,
                                                           "redirect_uri": "https://evil.example/cb"})
    assert wrong_client.status_code == 400
    assert foreign.status_code == 400


def test_cancelled_consent_redirects_with_access_denied(ds: DevStore) -> None:
    params = {"client_id": API_KEY, "scope": "read_orders", "shop": "acme.myshopify.com",
              "redirect_uri": f"{APP_URL}/auth/callback", "state": "s1"}
    response = HTTP.post(ds.base_url + "/admin/oauth/authorize", params=params, data={"decision": "cancel"})
    assert response.status_code == 302
    assert dict(parse_qsl(urlsplit(response.headers["Location"]).query)) == {"error": "access_denied", "state": "s1"}


def test_code_grant_limits_scopes_to_what_the_shop_grants() -> None:
    spec = ShopSpec(name="narrow", customers=10, months=2, scopes="read_orders")
    with DevStore([spec], api_key=API_KEY, api_secret=SECRET, app_url=APP_URL) as store:
        location = authorize(store, shop="narrow.myshopify.com", scope="read_orders,read_all_orders")
        code = dict(parse_qsl(urlsplit(location.headers["Location"]).query))["code"]
        with client(store, "narrow.myshopify.com") as c:
            body = c.post(TOKEN_URL, json={"client_id": API_KEY, "client_secret": SECRET, "code": code}).json()
    assert body["scope"] == "read_orders"


def test_oauth_error_rate_makes_the_token_endpoint_fail_and_shopifyapp_retry(ds: DevStore, settings) -> None:
    settings.SHOPIFY_API_BASE_URL = ds.base_url
    ds.install("acme")
    pair = exchange(ds).json()
    ds.set_faults("acme", oauth_error_rate=1.0, error_status=502)
    assert refresh(ds, pair["refresh_token"]).status_code == 502
    stale = TokenExchangeAccessToken(
        access_mode="offline", shop="acme", token=pair["access_token"], scope=pair["scope"],
        expires=(datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        refresh_token=pair["refresh_token"], refresh_token_expires=None, user=None)
    config = {"client_id": API_KEY, "client_secret": SECRET, "old_client_secret": None}
    with shopify_http_client() as http:
        result = refresh_access_token(stale, config, http)
    assert not result.ok
    assert result.log.code == "server_error"
    assert [log.code for log in result.http_logs] == ["server_error_retry", "server_error_retry", "server_error"]
    ds.set_faults("acme", oauth_error_rate=None)
    assert refresh(ds, pair["refresh_token"]).status_code == 200  # the failures did not burn the token
