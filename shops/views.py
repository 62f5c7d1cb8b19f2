"""Install and auth entry points: the app home, the code grant, the bounce page."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET

from config.logging import log_context
from shops import services
from shops.auth import (
    BOUNCE_PATH,
    bounce_response,
    frame_headers_set,
    session_failure_response,
    session_token_check,
    shop_ready,
)
from shops.models import Shop
from shops.security import oauth_query_valid, oauth_timestamp_fresh, shop_domain_clean
from sync.tasks import backfill_run

logger = logging.getLogger(__name__)

# What the overview keeps from the admin's launch URL.
_EMBED_PARAMS = ("shop", "host", "embedded", "id_token", "locale")


def _bad_request(message: str, shop: str | None = None) -> HttpResponse:
    return frame_headers_set(HttpResponse(message, status=400, content_type="text/plain"), shop)


def _scopes_short_response(exc: services.ScopesShort, shop: str) -> HttpResponse:
    """403 that names the access Tenure lacks; nothing was stored."""
    message = (f"Tenure needs access to {', '.join(exc.missing)} to read your orders and customers, and "
               f"Shopify granted only: {exc.granted or 'nothing'}. Nothing was installed. Start again from your "
               "Shopify admin and approve the access Tenure asks for.")
    return frame_headers_set(HttpResponse(message, status=403, content_type="text/plain"), shop)


def _backfill_enqueue(run_id: int | None) -> None:
    """Queue the install's pending backfill run once the install has committed."""
    if run_id is None:
        return

    def enqueue() -> None:
        try:
            backfill_run.delay(run_id)
        except Exception:  # noqa: BLE001 - broker down: the run is stored, nothing is lost
            logger.warning("first backfill not enqueued (broker unreachable); the stale-run sweep starts it",
                           extra={"sync_run": run_id})

    transaction.on_commit(enqueue)


def _admin_app_url(shop: str) -> str:
    """Where the merchant sees Tenure inside their admin."""
    base = settings.SHOPIFY_API_BASE_URL
    if base:  # devstore: its admin frame, chosen by the shop parameter
        return f"{base.rstrip('/')}/admin/apps/{settings.SHOPIFY_API_KEY}?{urlencode({'shop': shop})}"
    return f"https://{shop}/admin/apps/{settings.SHOPIFY_API_KEY}"


def _overview_redirect(request: HttpRequest, shop: str) -> HttpResponse:
    params = [(k, request.GET[k]) for k in _EMBED_PARAMS if k in request.GET]
    try:
        target = reverse("analytics:overview")
    except NoReverseMatch:
        response = HttpResponse("Tenure is installed. Your reports appear here once the first sync finishes.",
                                content_type="text/plain")
        return frame_headers_set(response, shop)
    return frame_headers_set(HttpResponseRedirect(f"{target}?{urlencode(params)}"), shop)


@require_GET
def app_home(request: HttpRequest) -> HttpResponse:
    """`/`: the admin's first load installs (token exchange), later loads go to the overview."""
    has_token = bool(request.GET.get("id_token") or request.headers.get("Authorization"))
    if not has_token:
        shop = shop_domain_clean(request.GET.get("shop"))
        if request.GET.get("hmac") and request.GET.get("embedded") != "1":
            # A non-embedded launch (install link, App Store): the code grant, or back into the admin.
            if shop is None:
                return _bad_request("invalid shop domain")
            installed = shop_ready(Shop.objects.filter(domain=shop).first())
            target = _admin_app_url(shop) if installed else f"/auth/install?{request.GET.urlencode()}"
            return HttpResponseRedirect(target)
        return bounce_response(request)

    check = session_token_check(request)
    if not check.ok or check.shop_domain is None or check.id_token is None:
        return session_failure_response(request, check)
    shop_domain = check.shop_domain
    with log_context(shop=shop_domain):
        if not shop_ready(Shop.objects.filter(domain=shop_domain).first()):
            try:
                pair = services.token_exchange(id_token=check.id_token)
                result = services.shop_install(shop_domain=shop_domain, pair=pair)
            except services.TokenExchangeRefused as exc:
                if exc.code == "invalid_subject_token":
                    return bounce_response(request)  # a fresh session token fixes this one
                # The app is not installed on this shop (or our credentials are wrong): bouncing
                # would only loop, so say so.
                logger.warning("token exchange refused: %s", exc.code)
                response = HttpResponse("Tenure is not installed on this shop. Install it from the Shopify App Store.",
                                        status=401, content_type="text/plain")
                return frame_headers_set(response, shop_domain)
            except services.ShopAuthError:
                return session_failure_response(request, check)
            except services.ScopesShort as exc:
                logger.warning("install refused: %s", exc)
                return _scopes_short_response(exc, shop_domain)
            except services.InstallError as exc:
                logger.error("install failed: %s", exc)
                response = HttpResponse("Tenure could not finish installing; reload to try again.",
                                        status=502, content_type="text/plain")
                return frame_headers_set(response, shop_domain)
            _backfill_enqueue(result.backfill_run_id)
        return _overview_redirect(request, shop_domain)


@require_GET
def session_token_bounce(request: HttpRequest) -> HttpResponse:
    """Loads App Bridge, which reloads `shopify-reload` with a fresh `id_token`."""
    shop = shop_domain_clean(request.GET.get("shop"))
    reload_path = request.GET.get("shopify-reload", "")
    # Same-origin paths only: "//evil.example" or "/\\evil" would leave the app.
    if shop is None or not reload_path.startswith("/") or reload_path.startswith(("//", "/\\")):
        return _bad_request("invalid bounce request")
    response = render(request, "shops/bounce.html", {
        "api_key": settings.SHOPIFY_API_KEY,
        "app_bridge_url": settings.SHOPIFY_APP_BRIDGE_URL,
    })
    return frame_headers_set(response, shop)


@require_GET
def auth_install(request: HttpRequest) -> HttpResponse:
    """Code grant, step 1: verify the install request and send the merchant to consent."""
    shop = shop_domain_clean(request.GET.get("shop"))
    if shop is None:
        return _bad_request("invalid shop domain")
    if not oauth_query_valid(request.META.get("QUERY_STRING", ""), secret=settings.SHOPIFY_API_SECRET or "",
                             previous_secret=settings.SHOPIFY_API_SECRET_PREVIOUS):
        return _bad_request("invalid hmac", shop)
    if not oauth_timestamp_fresh(request.GET.get("timestamp")):
        return _bad_request("stale request", shop)
    state = services.oauth_state_create(shop_domain=shop)
    params = {
        "client_id": settings.SHOPIFY_API_KEY,
        "scope": ",".join(settings.SHOPIFY_SCOPES),
        "redirect_uri": (settings.APP_URL or "").rstrip("/") + "/auth/callback",
        "state": state,
    }
    base = settings.SHOPIFY_API_BASE_URL
    if base:  # devstore serves every shop's consent page; the shop parameter picks it
        url = f"{base.rstrip('/')}/admin/oauth/authorize?{urlencode({**params, 'shop': shop})}"
    else:
        url = f"https://{shop}/admin/oauth/authorize?{urlencode(params)}"
    return HttpResponseRedirect(url)


@require_GET
def auth_callback(request: HttpRequest) -> HttpResponse:
    """Code grant, step 2: shop, hmac, timestamp and single-use state, then the exchange."""
    shop = shop_domain_clean(request.GET.get("shop"))
    if shop is None:
        return _bad_request("invalid shop domain")
    if not oauth_query_valid(request.META.get("QUERY_STRING", ""), secret=settings.SHOPIFY_API_SECRET or "",
                             previous_secret=settings.SHOPIFY_API_SECRET_PREVIOUS):
        return _bad_request("invalid hmac", shop)
    if not oauth_timestamp_fresh(request.GET.get("timestamp")):
        return _bad_request("stale request", shop)
    if not services.oauth_state_consume(state=request.GET.get("state", ""), shop_domain=shop):
        return _bad_request("unknown or used state", shop)
    code = request.GET.get("code", "")
    if not code:
        return _bad_request("missing code", shop)
    with log_context(shop=shop):
        try:
            pair = services.authorization_code_exchange(shop_domain=shop, code=code)
            result = services.shop_install(shop_domain=shop, pair=pair)
        except services.ScopesShort as exc:
            logger.warning("code grant refused: %s", exc)
            return _scopes_short_response(exc, shop)
        except (services.InstallError, services.ShopAuthError) as exc:
            logger.error("code grant install failed: %s", exc)
            return HttpResponse("Tenure could not finish installing; start again from your Shopify admin.",
                                status=502, content_type="text/plain")
        _backfill_enqueue(result.backfill_run_id)
    return HttpResponseRedirect(_admin_app_url(shop))


__all__ = ["BOUNCE_PATH", "app_home", "auth_callback", "auth_install", "session_token_bounce"]
