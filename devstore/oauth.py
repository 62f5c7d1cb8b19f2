"""Shopify's OAuth endpoints: token exchange, refresh, and the authorization-code grant.

Formats, with where they come from:

- token exchange request/response:
  https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/token-exchange
  ("If your session token is expired or otherwise invalid, then the token exchange request fails
  with an HTTP status code of 400 Bad Request"; error ``invalid_subject_token``).
- expiring offline tokens and refresh (``grant_type=refresh_token``; ``expires_in`` 3600,
  ``refresh_token_expires_in`` 90 days):
  https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/offline-access-tokens
- authorization-code grant, redirect ``hmac`` (hex HMAC-SHA256 of the sorted query without
  ``hmac``) and the code exchange:
  https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant
- a used or unknown code answers 400
  ``{"error":"invalid_request","error_description":"The authorization code was not found or was already used"}``
  (as reported from Shopify in https://github.com/nozzlegear/ShopifySharp/issues/70).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from devstore.app import Registry, scopes_parse, shop_domain
from devstore.session import IdTokenError, id_token_verify, shop_of_claims, user_id_for

Response = tuple[int, dict[str, str], bytes]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"  # noqa: S105
ONLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:online-access-token"  # noqa: S105

ERROR_CODE_NOT_FOUND = "The authorization code was not found or was already used"
ERROR_INVALID_SUBJECT = "Token exchange cannot be performed due to an invalid subject."
ERROR_INVALID_CLIENT = "Client credentials are invalid"
ERROR_INVALID_GRANT = "The refresh token is invalid, expired or revoked."


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, data


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": error, "error_description": description})


# -- HMAC of redirect query strings -------------------------------------------------------------


def query_message(pairs: Iterable[tuple[str, str]]) -> str:
    """What Shopify signs: every parameter but ``hmac``/``signature``, ``key=value``, sorted, ``&``-joined.

    ``%`` and ``&`` in values (and ``=`` in keys) are escaped so one parameter cannot pose as two;
    ``name[]`` parameters become ``name=["a","b"]`` as in Shopify's Ruby validator.
    """
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in ("hmac", "signature"):
            continue
        grouped.setdefault(key, []).append(value)
    entries = []
    for key, values in grouped.items():
        if key.endswith("[]"):
            name, text = key[:-2], json.dumps(values)
        else:
            name, text = key, values[-1]
        name = name.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
        text = text.replace("%", "%25").replace("&", "%26")
        entries.append(f"{name}={text}")
    return "&".join(sorted(entries))


def query_sign(pairs: Iterable[tuple[str, str]], secret: str) -> str:
    return hmac.new(secret.encode(), query_message(pairs).encode(), hashlib.sha256).hexdigest()


def query_signed(params: dict[str, str], secret: str) -> str:
    """``params`` plus their ``hmac``, URL-encoded."""
    items = list(params.items())
    return urlencode([*items, ("hmac", query_sign(items, secret))])


def host_param(shop: str) -> str:
    """Shopify's ``host``: base64 of the admin location of the shop (padding stripped)."""
    handle = shop_domain(shop).removesuffix(".myshopify.com")
    raw = f"admin.shopify.com/store/{handle}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def install_request_url(registry: Registry, shop: str, *, now: float | None = None) -> str:
    """The non-embedded install request Shopify sends to the app URL: shop, timestamp, host, hmac."""
    params = {
        "host": host_param(shop),
        "shop": shop_domain(shop),
        "timestamp": str(int(time.time() if now is None else now)),
    }
    return f"{registry.app.app_url}/?{query_signed(params, registry.app.api_secret)}"


# -- POST /admin/oauth/access_token -----------------------------------------------------------


def _params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body:
        return params
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            return params
        if isinstance(data, dict):
            params.update(data)
        return params
    params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true")


def access_token_handle(registry: Registry, *, shop: str | None, content_type: str, body: bytes,
                        query: str = "") -> Response:
    params = _params(content_type, body, query)
    if shop is None or registry.shop_get(shop) is None:
        return json_response(404, {"errors": "Not Found"})
    app = registry.app
    client_id, client_secret = params.get("client_id"), params.get("client_secret")
    if not client_id or not client_secret:
        return oauth_error("invalid_request", "Missing client_id or client_secret")
    if client_id != app.api_key or not hmac.compare_digest(str(client_secret), app.api_secret):
        return oauth_error("invalid_client", ERROR_INVALID_CLIENT)
    grant = params.get("grant_type")
    if grant == TOKEN_EXCHANGE_GRANT:
        return _token_exchange(registry, shop, params)
    if grant == "refresh_token":
        token = params.get("refresh_token")
        if not token:
            return oauth_error("invalid_request", "Missing refresh_token")
        outcome = registry.refresh(shop, str(token))
        if isinstance(outcome, str):
            return oauth_error(outcome, ERROR_INVALID_GRANT)
        return json_response(200, outcome)
    if grant not in (None, "", "authorization_code"):
        return oauth_error("unsupported_grant_type", f"The grant type {grant} is not supported")
    code = params.get("code")
    if not code:
        return oauth_error("invalid_request", "Missing code")
    entry = registry.code_consume(str(code), shop)
    if entry is None:
        return oauth_error("invalid_request", ERROR_CODE_NOT_FOUND)
    registry.install(shop, scopes=entry.scopes)
    body_out = registry.grant_tokens(shop, entry.scopes, expiring=_flag(params.get("expiring", 0)),
                                     online=entry.online, user=_associated_user(shop))
    return json_response(200, body_out)


def _associated_user(shop: str) -> dict[str, Any]:
    return {
        "id": user_id_for(shop), "first_name": "Dev", "last_name": "Merchant", "email": f"owner@{shop}",
        "account_owner": True, "locale": "en", "collaborator": False, "email_verified": True,
    }


def _token_exchange(registry: Registry, shop: str, params: dict[str, Any]) -> Response:
    subject = params.get("subject_token")
    if not subject:
        return oauth_error("missing_subject_token", "The subject_token parameter is missing")
    if params.get("subject_token_type") != ID_TOKEN_TYPE:
        return oauth_error("invalid_request", "subject_token_type must be " + ID_TOKEN_TYPE)
    requested = params.get("requested_token_type") or OFFLINE_TOKEN_TYPE
    if requested not in (OFFLINE_TOKEN_TYPE, ONLINE_TOKEN_TYPE):
        return oauth_error("invalid_request", "Unsupported requested_token_type")
    app = registry.app
    try:
        claims = id_token_verify(str(subject), api_key=app.api_key, api_secret=app.api_secret)
    except IdTokenError:
        return oauth_error("invalid_subject_token", ERROR_INVALID_SUBJECT)
    if shop_of_claims(claims) != shop:
        return oauth_error("invalid_subject_token", ERROR_INVALID_SUBJECT)
    install = registry.installed(shop)
    if install is None:
        # Shopify only mints session tokens for an installed app; an uninstalled one is refused.
        return oauth_error("invalid_client", ERROR_INVALID_CLIENT)
    online = requested == ONLINE_TOKEN_TYPE
    body = registry.grant_tokens(shop, install.scopes, expiring=_flag(params.get("expiring", 0)),
                                 online=online, user=_associated_user(shop))
    return json_response(200, body)


# -- GET/POST /admin/oauth/authorize ----------------------------------------------------------


def _redirect_allowed(registry: Registry, redirect_uri: str) -> bool:
    app = registry.app
    if redirect_uri in app.redirect_urls:
        return True
    target, base = urlsplit(redirect_uri), urlsplit(app.app_url)
    return (target.scheme, target.netloc) == (base.scheme, base.netloc)


def _page(title: str, body: str, status: int = 200) -> Response:
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="/cdn/admin.css"></head><body class="consent">{body}</body></html>"""
    return status, {"Content-Type": "text/html; charset=utf-8"}, doc.encode()


def authorize_handle(registry: Registry, *, shop: str | None, method: str, query: str, body: bytes) -> Response:
    """The merchant's consent screen; approving redirects to ``redirect_uri`` with a code."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    grant_options = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "grant_options[]"]
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if method == "POST" else {}
    app = registry.app
    store = registry.shop_get(shop)
    if store is None:
        return _page("Not found", "<h1>There's no page at this address</h1>", 404)
    if params.get("client_id") != app.api_key:
        return _page("Oauth error", "<h1>Oauth error invalid_request: The client_id is invalid</h1>", 400)
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not _redirect_allowed(registry, redirect_uri):
        return _page("Oauth error", "<h1>Oauth error invalid_request: The redirect_uri is not whitelisted</h1>", 400)
    requested = scopes_parse(params.get("scope", ""))
    if not requested:
        requested = app.requested_scopes
    # The merchant grants what the app asks for, limited to what this shop's spec allows.
    granted = frozenset(requested & registry.grants[store.domain])
    if method != "POST" or form.get("decision") not in ("approve", "cancel"):
        items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in sorted(requested))
        return _page(f"Install {app.app_name}", f"""
<main class="card"><h1>Install {html.escape(app.app_name)} on {html.escape(store.shop_name)}</h1>
<p>{html.escape(app.app_name)} will be able to:</p><ul>{items}</ul>
<form method="post"><button name="decision" value="approve" class="primary" id="approve">Install</button>
<button name="decision" value="cancel">Cancel</button></form></main>""")
    state = params.get("state", "")
    if form.get("decision") == "cancel":
        return 302, {"Location": f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}"}, b""
    code = registry.code_issue(store.domain, granted, redirect_uri, online="per-user" in grant_options)
    out = {
        "code": code,
        "host": host_param(store.domain),
        "shop": store.domain,
        "state": state,
        "timestamp": str(int(time.time())),
    }
    sep = "&" if "?" in redirect_uri else "?"
    return 302, {"Location": f"{redirect_uri}{sep}{query_signed(out, app.api_secret)}"}, b""
