"""Session tokens for embedded pages: `embedded_view` and the checks behind it.

A page inside the Shopify admin proves who it is for with a session token (an
HS256 JWT signed with our API secret): the ``id_token`` query parameter on a
document load, ``Authorization: Bearer`` on a fetch. ``shopify_app`` verifies the
signature, expiry and audience; we add the rest (``iss``/``dest`` name the same
valid shop, the ``shop`` parameter agrees, the shop is installed) and set the
per-shop ``frame-ancestors`` header on every answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from shopify_app import IdTokenDetails

from shops.models import Shop, ShopCredential
from shops.security import shop_domain_clean, shop_from_claims
from shops.services import shopify_app

logger = logging.getLogger(__name__)

BOUNCE_PATH = "/auth/session-token"
RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"
SHOPIFY_ADMIN = "https://admin.shopify.com"


@dataclass(frozen=True)
class SessionCheck:
    ok: bool
    is_fetch: bool
    shop_domain: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    id_token: IdTokenDetails | None = None
    failure: str = ""  # "missing", "invalid", "expired", "wrong_app", "wrong_shop"


def frame_ancestors(shop_domain: str | None) -> str:
    """The CSP value that lets only this shop's admin (and Shopify's admin) frame us."""
    origins = [f"https://{shop_domain}"] if shop_domain else []
    admin = (getattr(settings, "SHOPIFY_ADMIN_ORIGIN", None) or SHOPIFY_ADMIN).rstrip("/")
    origins.append(SHOPIFY_ADMIN)
    if admin != SHOPIFY_ADMIN:
        origins.append(admin)
    return "frame-ancestors " + " ".join(origins)


def frame_headers_set(response: HttpResponse, shop_domain: str | None) -> HttpResponse:
    response["Content-Security-Policy"] = frame_ancestors(shop_domain)
    # Framing is what an embedded app is for; the CSP above is the control, and the clickjacking
    # middleware's DENY (for every other page) stays off this answer.
    if response.has_header("X-Frame-Options"):
        del response["X-Frame-Options"]
    response.xframe_options_exempt = True  # type: ignore[attr-defined]
    return response


def session_token_check(request: HttpRequest) -> SessionCheck:
    bearer = request.headers.get("Authorization", "")
    is_fetch = bool(bearer)
    if not is_fetch and not request.GET.get("id_token"):
        return SessionCheck(ok=False, is_fetch=False, failure="missing")
    result = shopify_app().verify_app_home_req(
        {"method": request.method or "GET", "headers": dict(request.headers), "body": "",
         "url": request.build_absolute_uri()},
        app_home_patch_id_token_path=BOUNCE_PATH,
    )
    if not result.ok or result.id_token is None:
        failure = {"invalid_aud": "wrong_app", "expired_id_token": "expired"}.get(result.log.code, "invalid")
        return SessionCheck(ok=False, is_fetch=is_fetch, failure=failure)
    claims = dict(result.id_token.claims)
    shop = shop_from_claims(claims)
    param_shop = request.GET.get("shop")
    if shop is None or "exp" not in claims or (param_shop is not None and shop_domain_clean(param_shop) != shop):
        return SessionCheck(ok=False, is_fetch=is_fetch, failure="wrong_shop")
    return SessionCheck(ok=True, is_fetch=is_fetch, shop_domain=shop, claims=claims, id_token=result.id_token)


def _query_without(request: HttpRequest, *names: str) -> str:
    pairs = [(k, v) for k, values in request.GET.lists() if k not in names for v in values]
    return urlencode(pairs)


def bounce_response(request: HttpRequest) -> HttpResponse:
    """Send a document load without a usable token to the page that fetches a fresh one."""
    shop = shop_domain_clean(request.GET.get("shop"))
    if shop is None:
        return frame_headers_set(HttpResponse("Open Tenure from your Shopify admin.", status=400,
                                              content_type="text/plain"), None)
    query = _query_without(request, "id_token")
    reload_path = request.path + (f"?{query}" if query else "")
    location = f"{BOUNCE_PATH}?{urlencode({'shop': shop, 'shopify-reload': reload_path})}"
    return frame_headers_set(HttpResponseRedirect(location), shop)


def unauthorized_response(check: SessionCheck, *, retry: bool = True) -> HttpResponse:
    response = HttpResponse("Unauthorized", status=401, content_type="text/plain")
    if check.is_fetch and retry:
        response[RETRY_HEADER] = "1"
    return frame_headers_set(response, check.shop_domain)


def session_failure_response(request: HttpRequest, check: SessionCheck) -> HttpResponse:
    """Bounce document loads whose token is missing or stale; 401 everything else."""
    if not check.is_fetch and check.failure in ("missing", "invalid", "expired"):
        return bounce_response(request)
    logger.info("session token refused: %s", check.failure)
    return unauthorized_response(check)


_SHOP_COLUMNS = [f.column for f in Shop._meta.concrete_fields]
# Column names come from the model and the domain is bound: nothing spliced in is input.
_SHOP_WITH_TOKEN = (
    "SELECT " + ", ".join(f's."{c}"' for c in _SHOP_COLUMNS)  # noqa: S608
    + ", EXISTS (SELECT 1 FROM shops_shopcredential k WHERE k.shop_id = s.id AND k.access_token_encrypted <> '')"
    + " FROM shops_shop s WHERE s.domain = %s"
)


def shop_with_token_flag(domain: str | None) -> Shop | None:
    """The shop, read with whether it holds an access token: every embedded load runs this, so it is
    one plain statement (building the same query through the ORM costs several times its run)."""
    if not domain:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_SHOP_WITH_TOKEN, [domain])
        row = cursor.fetchone()
    if row is None:
        return None
    shop = Shop.from_db(connection.alias, [f.attname for f in Shop._meta.concrete_fields], row[:-1])
    shop.has_token = bool(row[-1])  # type: ignore[attr-defined]
    return shop


def shop_ready(shop: Shop | None) -> bool:
    """Installed, with a token and nothing asking the merchant to re-open the app."""
    if shop is None or shop.state != Shop.State.INSTALLED or shop.needs_reauth_reason:
        return False
    has_token = getattr(shop, "has_token", None)
    if has_token is None:
        has_token = ShopCredential.objects.filter(shop=shop).exclude(access_token_encrypted="").exists()
    return bool(has_token)


def embedded_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Require a valid session token; set ``request.shop`` and ``request.session_claims``.

    Document loads without a (fresh) token get the bounce page; fetches with a bad
    token get 401 + ``X-Shopify-Retry-Invalid-Session-Request: 1``. A shop that is not
    installed (or needs a new token) is sent through the app home, which exchanges
    the token; fetches for it get 401.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        check = session_token_check(request)
        if not check.ok:
            return session_failure_response(request, check)
        shop = shop_with_token_flag(check.shop_domain)
        if not shop_ready(shop):
            if check.is_fetch:
                return unauthorized_response(check, retry=False)
            query = request.GET.urlencode()
            return frame_headers_set(HttpResponseRedirect("/" + (f"?{query}" if query else "")), check.shop_domain)
        request.shop = shop  # type: ignore[attr-defined]
        request.session_claims = check.claims  # type: ignore[attr-defined]
        return frame_headers_set(view(request, *args, **kwargs), check.shop_domain)

    return wrapper
