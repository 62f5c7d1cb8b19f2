"""Writes of the shops app: installs, tokens, uninstall and the privacy webhooks.

Network calls (token exchange, refresh, the shop query) go through
``sync.client.shopify_http_client()`` and happen outside long transactions, except
the refresh, which holds the credential's row lock on purpose so two workers never
spend the same refresh token.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from shopify_app import ShopifyApp, TokenExchangeAccessToken

from config.logging import log_context
from shops.models import CustomerDataReport, Shop, ShopCredential, WebhookEvent
from shops.security import scopes_cover
from sync.client import ShopifyAuthError, ShopifyClient, ShopifyError, shopify_http_client
from sync.models import SyncRun
from sync.normalize import Refused
from sync.services import backfill_create

logger = logging.getLogger(__name__)

# Refresh this long before Shopify's expiry, so a token never dies mid-request.
REFRESH_MARGIN = timedelta(minutes=5)
OAUTH_STATE_TTL_SECONDS = 10 * 60
_STATE_KEY = "tenure:oauth-state:{}"


class ShopAuthError(Exception):
    """The shop's token is gone or cannot be renewed: the merchant must open the app again."""


class TokenExchangeRefused(ShopAuthError):
    """Shopify refused the session token (``invalid_subject_token``) or the app (``invalid_client``)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"token exchange refused: {code}")
        self.code = code


class ShopifyTokenError(Exception):
    """Shopify did not answer a token request usefully (network, 5xx, 429): try again later."""


class InstallError(Exception):
    """An install step failed; the message is safe to show (no secrets)."""


class ScopesShort(InstallError):
    """Shopify granted less access than Tenure needs (the merchant unticked some, or an old grant)."""

    def __init__(self, granted: str, missing: list[str]) -> None:
        super().__init__(f"granted scopes {granted!r} do not cover {','.join(missing)}")
        self.granted = granted
        self.missing = missing


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_token_expires_at: datetime | None
    refresh_token: str
    refresh_token_expires_at: datetime | None
    scopes: str


def shopify_app() -> ShopifyApp:
    return ShopifyApp(settings.SHOPIFY_API_KEY or "", settings.SHOPIFY_API_SECRET or "",
                      settings.SHOPIFY_API_SECRET_PREVIOUS or None)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def token_pair_from_library(token: TokenExchangeAccessToken) -> TokenPair:
    return TokenPair(
        access_token=token.token,
        access_token_expires_at=_parse_time(token.expires),
        refresh_token=token.refresh_token or "",
        refresh_token_expires_at=_parse_time(token.refresh_token_expires),
        scopes=token.scope or "",
    )


def token_pair_from_response(data: Mapping[str, Any], *, now: datetime) -> TokenPair:
    """A pair from Shopify's /admin/oauth/access_token JSON (code grant, ``expiring=1``)."""
    expires_in = data.get("expires_in")
    refresh_in = data.get("refresh_token_expires_in")
    return TokenPair(
        access_token=str(data.get("access_token") or ""),
        access_token_expires_at=now + timedelta(seconds=int(expires_in)) if expires_in is not None else None,
        refresh_token=str(data.get("refresh_token") or ""),
        refresh_token_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in is not None else None,
        scopes=str(data.get("scope") or ""),
    )


# --- OAuth state (single use) --------------------------------------------------

def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def oauth_state_create(*, shop_domain: str) -> str:
    """A fresh nonce bound to the shop, valid for ten minutes and for one callback."""
    nonce = secrets.token_urlsafe(32)
    _redis().set(_STATE_KEY.format(nonce), shop_domain, ex=OAUTH_STATE_TTL_SECONDS)
    return nonce


def oauth_state_consume(*, state: str, shop_domain: str) -> bool:
    """True once for a nonce we issued for this shop; GETDEL makes a replay find nothing."""
    if not state or len(state) > 128:
        return False
    stored = _redis().getdel(_STATE_KEY.format(state))
    return isinstance(stored, bytes) and secrets.compare_digest(stored, shop_domain.encode())


# --- Admin GraphQL (install-time only) ------------------------------------------

SHOP_QUERY = "query TenureShop { shop { id name currencyCode ianaTimezone plan { publicDisplayName } } }"
WEBHOOK_SUBSCRIBE = """
mutation TenureWebhook($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id }
    userErrors { field message }
  }
}
"""


def admin_graphql(*, shop_domain: str, access_token: str, query: str,
                  variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Admin GraphQL call for install-time work (shop details, webhook subscriptions).

    Through sync.client's ShopifyClient like every Admin API call (pacing, THROTTLED, 429/5xx
    retries), with a short retry budget: the merchant is waiting on the page for this.
    """
    client = ShopifyClient(shop_domain=shop_domain, access_token=access_token, max_attempts=2,
                           max_throttle_waits=3, backoff_cap=2.0)
    try:
        result = client.graphql(query, variables, expected_cost=10)
    except ShopifyAuthError as exc:
        raise ShopAuthError(f"Shopify refused the token ({exc})") from exc
    except ShopifyError as exc:
        raise InstallError(f"Shopify GraphQL call failed: {exc}") from exc
    finally:
        client.close()
    if result.errors:
        # Install-time queries ask for nothing protected: any error means the answer is incomplete.
        raise InstallError(f"GraphQL errors: {[e.get('message') for e in result.errors if isinstance(e, dict)]}")
    return dict(result.data)


def shop_details_fetch(*, shop_domain: str, access_token: str) -> dict[str, str]:
    data = admin_graphql(shop_domain=shop_domain, access_token=access_token, query=SHOP_QUERY)
    shop = data.get("shop") or {}
    plan = shop.get("plan") or {}
    return {
        "shopify_gid": str(shop.get("id") or ""),
        "name": str(shop.get("name") or ""),
        "currency": str(shop.get("currencyCode") or ""),
        "iana_timezone": str(shop.get("ianaTimezone") or "UTC"),
        "plan": str(plan.get("publicDisplayName") or plan.get("displayName") or ""),
    }


def app_declared_webhook_topics() -> set[str]:
    """Topics shopify.app.toml subscribes app-wide (Shopify sends those to every shop)."""
    import tomllib

    path = settings.BASE_DIR / "shopify.app.toml"
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    topics: set[str] = set()
    for sub in config.get("webhooks", {}).get("subscriptions", []):
        topics.update(sub.get("topics", []))
        topics.update(sub.get("compliance_topics", []))
    return topics


# Every topic Tenure handles per shop (compliance topics can only be app-wide).
SHOP_WEBHOOK_TOPICS = (
    "app/uninstalled", "app/scopes_update", "orders/create", "orders/updated", "orders/cancelled",
    "orders/delete", "refunds/create", "customers/create", "customers/update", "customers/delete",
    "bulk_operations/finish", "shop/update",
)


def webhooks_subscribe(*, shop_domain: str, access_token: str, topics: list[str] | None = None) -> list[str]:
    """Create per-shop subscriptions for the topics shopify.app.toml does not declare; returns those created."""
    if topics is None:
        declared = app_declared_webhook_topics()
        topics = [t for t in SHOP_WEBHOOK_TOPICS if t not in declared]
    created = []
    uri = (settings.APP_URL or "").rstrip("/") + "/webhooks"
    for topic in topics:
        data = admin_graphql(
            shop_domain=shop_domain, access_token=access_token, query=WEBHOOK_SUBSCRIBE,
            variables={"topic": topic.upper().replace("/", "_"), "sub": {"uri": uri, "format": "JSON"}},
        )
        result = data.get("webhookSubscriptionCreate") or {}
        errors = result.get("userErrors") or []
        # "already taken" means a previous install subscribed it: nothing to do.
        if errors and not all("taken" in str(e.get("message", "")).lower() for e in errors):
            raise InstallError(f"webhook subscription for {topic} failed: {[e.get('message') for e in errors]}")
        created.append(topic)
    return created


# --- Install ---------------------------------------------------------------------

@dataclass(frozen=True)
class InstallResult:
    shop: Shop
    fresh: bool  # first install or reinstall
    # The first backfill's pending SyncRun, created in the install's transaction (fresh installs
    # only): the caller enqueues it; if the broker is down, the stale-run sweep starts it later.
    backfill_run_id: int | None = None


def _shop_data_purge(*, shop: Shop, keep: tuple[type[models.Model], ...]) -> dict[str, int]:
    """Delete every row that hangs off the shop (synced data, snapshots, settings) but `keep`."""
    counts: dict[str, int] = {}
    for rel in Shop._meta.related_objects:
        model = rel.related_model
        if not isinstance(model, type) or model in keep or rel.on_delete is not models.CASCADE:
            continue
        deleted, _ = model._default_manager.filter(**{rel.field.name: shop}).delete()
        if deleted:
            counts[model._meta.label] = deleted
    return counts


def credential_store(*, shop: Shop, pair: TokenPair) -> ShopCredential:
    """Save a token pair, unless the stored one was issued later (call inside the shop's row lock).

    Two first loads of the app can exchange tokens at the same time; Shopify keeps only
    the newest expiring token alive, so the pair that expires last is the one to keep,
    whichever transaction commits last.
    """
    credential, _ = ShopCredential.objects.get_or_create(shop=shop)
    stored = credential.access_token_expires_at
    new = pair.access_token_expires_at
    if credential.access_token_encrypted and stored is not None and new is not None and stored > new:
        logger.info("kept the stored token: it was issued after this one", extra={"shop": shop.domain})
        return credential
    credential.access_token = pair.access_token
    credential.access_token_expires_at = pair.access_token_expires_at
    credential.refresh_token = pair.refresh_token
    credential.refresh_token_expires_at = pair.refresh_token_expires_at
    credential.previous_refresh_token_encrypted = ""
    credential.scopes = pair.scopes
    credential.save()
    return credential


def shop_install(*, shop_domain: str, pair: TokenPair) -> InstallResult:
    """Store a fresh token pair, the shop's details and its webhooks; reinstalls start clean.

    The shop query and the subscriptions run before the transaction (network), the
    database writes in one transaction. When ``fresh`` (first install, or reinstall after
    uninstall/redaction) that transaction also creates the first backfill's pending SyncRun,
    so the backfill exists even if enqueueing it fails: the caller enqueues
    ``backfill_run_id`` after commit, and ``sync.tasks.backfill_resume_stale`` picks up a run
    that never reached the broker.
    """
    required = settings.SHOPIFY_SCOPES_REQUIRED
    if not scopes_cover(pair.scopes, required):
        missing = [s for s in required if not scopes_cover(pair.scopes, [s])]
        existing = Shop.objects.filter(domain=shop_domain, state=Shop.State.INSTALLED).first()
        if existing is not None:
            # Shopify may have retired the token we hold when it issued this one: say so on the
            # shop rather than let the next sync find out.
            shop_needs_reauth_mark(shop=existing, reason=f"Shopify granted too little access (missing "
                                                         f"{', '.join(missing)}); approve Tenure's access again")
        raise ScopesShort(pair.scopes, missing)
    details = shop_details_fetch(shop_domain=shop_domain, access_token=pair.access_token)
    now = timezone.now()
    with transaction.atomic():
        shop, created = Shop.objects.select_for_update().get_or_create(domain=shop_domain)
        fresh = created or shop.state != Shop.State.INSTALLED or shop.installed_at is None
        with log_context(shop=shop_domain):
            if fresh and not created:
                # Whatever we held from before the uninstall may be stale (orders deleted while
                # we could not hear about it): start from nothing, the backfill rebuilds it.
                purged = _shop_data_purge(shop=shop, keep=(ShopCredential, WebhookEvent, CustomerDataReport))
                logger.info("reinstall: previous data purged", extra={"purged": purged})
            for field, value in details.items():
                setattr(shop, field, value)
            shop.scopes = pair.scopes
            shop.state = Shop.State.INSTALLED
            shop.needs_reauth_reason = ""
            if fresh:
                # A pause (frozen shop) is the sync's to lift when Shopify answers again.
                shop.paused_reason = ""
                shop.installed_at = now
                shop.uninstalled_at = None
                shop.redacted_at = None
            shop.save()
            credential_store(shop=shop, pair=pair)
            backfill_run_id = backfill_create(shop=shop).pk if fresh else None
            logger.info("shop installed" if fresh else "shop token renewed", extra={"sync_run": backfill_run_id})
    try:
        webhooks_subscribe(shop_domain=shop_domain, access_token=pair.access_token)
    except (InstallError, ShopAuthError) as exc:
        # Not fatal: the toml's app-wide topics already flow; the next open of the app subscribes again.
        logger.warning("webhook subscription failed: %s", exc, extra={"shop": shop_domain})
    return InstallResult(shop=shop, fresh=fresh, backfill_run_id=backfill_run_id)


def token_exchange(*, id_token: Any) -> TokenPair:
    """Exchange a verified session token (shopify_app IdTokenDetails) for an expiring offline token."""
    with shopify_http_client() as client:
        result = shopify_app().exchange_using_token_exchange("offline", id_token=id_token, expiring=True,
                                                             http_client=client)
    if not result.ok or result.access_token is None:
        code = result.log.code
        if code in ("invalid_subject_token", "invalid_client"):
            raise TokenExchangeRefused(code)
        raise InstallError(f"token exchange failed: {code}")
    return token_pair_from_library(result.access_token)


def authorization_code_exchange(*, shop_domain: str, code: str) -> TokenPair:
    """The code grant's last step, asking for an expiring offline token (``expiring=1``).

    shopifyapp has no code-grant helper (Shopify steers embedded apps to token
    exchange), so this is the one POST it would make, through the same HTTP door.
    """
    url = f"https://{shop_domain}/admin/oauth/access_token"
    body = {"client_id": settings.SHOPIFY_API_KEY, "client_secret": settings.SHOPIFY_API_SECRET,
            "code": code, "expiring": 1}
    now = timezone.now()
    with shopify_http_client() as client:
        try:
            response = client.post(url, json=body, headers={"Accept": "application/json"})
        except Exception as exc:  # network: sync.client owns httpx
            raise InstallError(f"Shopify could not be reached ({exc.__class__.__name__})") from exc
    if response.status_code != 200:
        raise InstallError(f"code exchange answered {response.status_code}")
    pair = token_pair_from_response(response.json(), now=now)
    if not pair.access_token:
        raise InstallError("code exchange returned no access token")
    return pair


# --- Tokens for the sync client ----------------------------------------------------

def _refresh_once(*, shop: Shop, refresh_token: str, refresh_expires_at: datetime | None) -> TokenPair | str:
    """One refresh call; a TokenPair on success, the library's error code otherwise."""
    name = shop.domain.removesuffix(".myshopify.com")
    request = {
        "shop": name, "refresh_token": refresh_token, "access_mode": "offline",
        # An empty `expires` makes the library refresh now instead of second-guessing our margin.
        "expires": "",
        "refresh_token_expires": refresh_expires_at.isoformat() if refresh_expires_at else "",
    }
    with shopify_http_client() as client:
        result = shopify_app().refresh_token_exchanged_access_token(request, http_client=client)
    if result.ok and result.access_token is not None and result.access_token.token:
        return token_pair_from_library(result.access_token)
    return result.log.code


_TRANSIENT_REFRESH_CODES = {"network_error", "server_error", "rate_limit_exceeded"}


def shop_needs_reauth_mark(*, shop: Shop, reason: str) -> None:
    Shop.objects.filter(pk=shop.pk).update(needs_reauth_reason=reason, updated_at=timezone.now())
    shop.needs_reauth_reason = reason
    logger.warning("shop needs the merchant to open the app again: %s", reason, extra={"shop": shop.domain})


def credential_refresh(*, shop: Shop, force: bool = False) -> str:
    """Renew the access token under the credential's row lock and return the valid one.

    Two workers racing: the second waits for the lock, then sees the new expiry and
    returns the token the first one stored. Both tokens of the new pair are saved in
    the same UPDATE; the old refresh token is kept for one retry, since a refresh
    whose answer was lost has already spent it on Shopify's side but not on ours.
    """
    with transaction.atomic():
        try:
            credential = ShopCredential.objects.select_for_update().get(shop=shop)
        except ShopCredential.DoesNotExist as exc:
            raise ShopAuthError("no stored credential") from exc
        now = timezone.now()
        if not force and not credential.expires_within(int(REFRESH_MARGIN.total_seconds()), now=now):
            return credential.access_token
        current = credential.refresh_token
        if not current:
            shop_needs_reauth_mark(shop=shop, reason="the token cannot be refreshed (no refresh token)")
            raise ShopAuthError("no refresh token")
        candidates = [current]
        previous = crypto_decrypt_or_empty(credential.previous_refresh_token_encrypted)
        if previous and previous != current:
            candidates.append(previous)
        codes = []
        for token in candidates:
            expires_at = credential.refresh_token_expires_at if token == current else None
            outcome = _refresh_once(shop=shop, refresh_token=token, refresh_expires_at=expires_at)
            if isinstance(outcome, TokenPair):
                credential.access_token = outcome.access_token
                credential.access_token_expires_at = outcome.access_token_expires_at
                credential.refresh_token = outcome.refresh_token
                credential.refresh_token_expires_at = outcome.refresh_token_expires_at
                credential.previous_refresh_token_encrypted = crypto_encrypt(token)
                if outcome.scopes:
                    credential.scopes = outcome.scopes
                credential.save()
                if shop.needs_reauth_reason:
                    Shop.objects.filter(pk=shop.pk).update(needs_reauth_reason="")
                    shop.needs_reauth_reason = ""
                logger.info("access token refreshed", extra={"shop": shop.domain})
                return outcome.access_token
            codes.append(outcome)
            if outcome in _TRANSIENT_REFRESH_CODES:
                raise ShopifyTokenError(f"token refresh failed transiently: {outcome}")
    shop_needs_reauth_mark(shop=shop, reason=f"token refresh failed ({', '.join(codes)}); open Tenure in Shopify")
    raise ShopAuthError(f"token refresh failed: {codes}")


def crypto_encrypt(value: str) -> str:
    from shops import crypto

    return crypto.encrypt(value)


def crypto_decrypt_or_empty(value: str) -> str:
    from shops import crypto

    try:
        return crypto.decrypt(value)
    except ValueError:
        return ""


def access_token_get(*, shop: Shop) -> str:
    """The shop's offline access token, refreshed first when it expires within five minutes.

    Raises ShopAuthError when the shop is not installed or its token cannot be renewed
    (the shop is then marked needs-reauth), ShopifyTokenError when Shopify is briefly
    unreachable (retry later).
    """
    if shop.state != Shop.State.INSTALLED:
        raise ShopAuthError(f"shop is {shop.state}")
    credential = ShopCredential.objects.filter(shop=shop).first()
    if credential is None or not credential.access_token_encrypted:
        raise ShopAuthError("no stored credential")
    if credential.expires_within(int(REFRESH_MARGIN.total_seconds()), now=timezone.now()):
        return credential_refresh(shop=shop)
    return credential.access_token


# --- Webhook handling ----------------------------------------------------------------

def shop_uninstall(*, shop: Shop) -> str:
    """app/uninstalled: the token is already dead, so no API call; drop it and stop work."""
    with transaction.atomic():
        ShopCredential.objects.filter(shop=shop).delete()
        shop.state = Shop.State.UNINSTALLED
        shop.uninstalled_at = timezone.now()
        shop.needs_reauth_reason = ""
        shop.save(update_fields=["state", "uninstalled_at", "needs_reauth_reason", "updated_at"])
        # Schedules only pick installed shops; runs already queued stop at their next check.
        stopped = SyncRun.objects.filter(
            shop=shop, status__in=[SyncRun.Status.PENDING, SyncRun.Status.RUNNING],
        ).update(status=SyncRun.Status.CANCELLED, finished_at=timezone.now(), error="app uninstalled")
    return f"uninstalled; credentials dropped; {stopped} sync run(s) cancelled"


SCOPES_REDUCED = "scopes reduced"


def _payload_time(payload: Mapping[str, Any] | None) -> datetime | None:
    value = (payload or {}).get("updated_at")
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def shop_scopes_update(*, shop: Shop, payload: Mapping[str, Any], event: WebhookEvent | None = None) -> str:
    """app/scopes_update: store the granted scopes; react to the required ones and read_all_orders.

    A required scope gone: the shop needs the merchant to open the app again. read_all_orders
    granted: a new backfill fetches the history beyond 60 days. read_all_orders revoked: what
    we hold stays; syncs from now on see 60 days (the Data page says so, reconciliation keeps
    to the visible window). Deliveries can arrive out of order: one older (by its
    ``updated_at``) than a change already applied is recorded and ignored.
    """
    if event is not None:
        # The shop's row lock puts two deliveries for one shop one after the other.
        shop.refresh_from_db(from_queryset=Shop.objects.select_for_update())
        mine = _payload_time(payload)
        applied = [t for t in (_payload_time(p) for p in WebhookEvent.objects.filter(
            shop_id=shop.pk, topic="app/scopes_update", status=WebhookEvent.Status.PROCESSED,
        ).exclude(pk=event.pk).exclude(outcome__startswith="older than").values_list("payload", flat=True))
            if t is not None]
        if mine is not None and applied and mine < max(applied):
            return f"older than the scopes change of {max(applied).isoformat()} already applied: ignored"
    current = payload.get("current")
    scopes = ",".join(str(s) for s in current) if isinstance(current, list) else str(current or "")
    had_all_orders = "read_all_orders" in shop.granted_scopes
    shop.scopes = scopes
    has_all_orders = "read_all_orders" in shop.granted_scopes
    fields = ["scopes", "updated_at"]
    if not scopes_cover(scopes, settings.SHOPIFY_SCOPES_REQUIRED):
        shop.needs_reauth_reason = f"{SCOPES_REDUCED} to {scopes or 'none'}; open Tenure in Shopify to grant them"
        fields.append("needs_reauth_reason")
    elif shop.needs_reauth_reason.startswith(SCOPES_REDUCED):
        shop.needs_reauth_reason = ""
        fields.append("needs_reauth_reason")
    shop.save(update_fields=fields)
    ShopCredential.objects.filter(shop=shop).update(scopes=scopes)
    outcome = f"scopes now {scopes or 'none'}"
    if has_all_orders and not had_all_orders and shop.state == Shop.State.INSTALLED:
        run = backfill_create(shop=shop, full=True)
        if run.status == SyncRun.Status.RUNNING:
            # That run's bulk queries started under the 60-day window: a fresh run follows it.
            run = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, state={"full": True})
        _backfill_run_later(run_id=run.pk)
        outcome += f"; read_all_orders granted: backfill #{run.pk} fetches the full history"
    elif had_all_orders and not has_all_orders:
        outcome += "; read_all_orders revoked: syncs see the last 60 days, older orders held are kept"
    return outcome


def _backfill_run_later(*, run_id: int) -> None:
    """Enqueue a pending backfill run after commit; with the broker down the stale-run sweep starts it."""

    def enqueue() -> None:
        from sync.tasks import backfill_run

        try:
            backfill_run.delay(run_id)
        except Exception:  # noqa: BLE001 - the run is stored: backfill_resume_stale picks it up
            logger.warning("backfill not enqueued (broker unreachable)", extra={"sync_run": run_id})

    transaction.on_commit(enqueue)


def shop_update(*, shop: Shop, payload: Mapping[str, Any]) -> str:
    """shop/update: keep name, currency, time zone and plan current (reports bucket by the zone)."""
    fields = {"name": payload.get("name"), "currency": payload.get("currency"),
              "iana_timezone": payload.get("iana_timezone"), "plan": payload.get("plan_display_name")}
    changed = [f for f, v in fields.items() if isinstance(v, str) and v and getattr(shop, f) != v]
    for field in changed:
        setattr(shop, field, fields[field])
    if changed:
        shop.save(update_fields=[*changed, "updated_at"])
    if {"currency", "iana_timezone"} & set(changed):
        _analytics_refresh_later(shop_id=shop.pk)
    return f"updated {', '.join(changed)}" if changed else "no change"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def customer_data_report_build(*, shop: Shop, customer_id: int, order_ids: list[int]) -> dict[str, Any]:
    """Everything Tenure holds on one customer: their row, orders, refunds (ids, dates, money)."""
    from sync.models import Customer, Order, Refund

    def rows(qs: models.QuerySet[Any], fields: list[str]) -> list[dict[str, Any]]:
        return [{k: (str(v) if v is not None and not isinstance(v, (int, bool, list)) else v)
                 for k, v in row.items()} for row in qs.values(*fields)]

    orders = Order.objects.filter(shop=shop).filter(
        models.Q(customer_shopify_id=customer_id) | models.Q(shopify_id__in=order_ids))
    order_fields = ["shopify_id", "name", "processed_at", "created_at", "updated_at", "cancelled_at", "test",
                    "financial_status", "currency", "subtotal", "current_subtotal", "total", "current_total",
                    "total_refunded", "tags"]
    order_rows = rows(orders.order_by("processed_at"), order_fields)
    refunds = Refund.objects.filter(shop=shop, order_shopify_id__in=[o["shopify_id"] for o in order_rows])
    return {
        "customer_shopify_id": customer_id,
        "customers": rows(Customer.objects.filter(shop=shop, shopify_id=customer_id),
                          ["shopify_id", "created_at", "updated_at", "rfm_group", "number_of_orders",
                           "amount_spent", "amount_spent_currency", "tags"]),
        "orders": order_rows,
        "refunds": rows(refunds.order_by("created_at"), ["shopify_id", "order_shopify_id", "created_at",
                                                         "processed_at", "amount", "subtotal_amount"]),
        "personal_data_held": "none: Tenure stores no names, emails, phones or addresses",
    }


def customer_data_request(*, shop: Shop, event: WebhookEvent, payload: Mapping[str, Any]) -> str:
    customer_id = _int_or_none((payload.get("customer") or {}).get("id"))
    if customer_id is None:
        return "no customer id in payload; nothing to report"
    order_ids = [i for i in (_int_or_none(o) for o in payload.get("orders_requested") or []) if i is not None]
    report = customer_data_report_build(shop=shop, customer_id=customer_id, order_ids=order_ids)
    request_id = str((payload.get("data_request") or {}).get("id") or "")
    CustomerDataReport.objects.update_or_create(
        webhook_event=event,
        defaults={"shop": shop, "customer_shopify_id": customer_id, "data_request_id": request_id, "report": report},
    )
    outcome = (f"report ready in admin for customer {customer_id}: {len(report['customers'])} customer row(s), "
               f"{len(report['orders'])} order(s), {len(report['refunds'])} refund(s)")
    logger.info("customers/data_request: %s", outcome, extra={"shop": shop.domain, "data_request": request_id})
    return outcome


def customer_redact(*, shop: Shop, payload: Mapping[str, Any]) -> str:
    """Delete the customer; detach their orders (see docs/DECISIONS.md, "customers/redact").

    Orders stay as anonymous (guest-like) rows so the shop's revenue figures stay right,
    with the customer id and tags cleared; the webhook payloads that named the customer
    lose their body.
    """
    from sync.models import Order

    customer_id = _int_or_none((payload.get("customer") or {}).get("id"))
    order_ids = [i for i in (_int_or_none(o) for o in payload.get("orders_to_redact") or []) if i is not None]
    if customer_id is None and not order_ids:
        return "no customer id or orders in payload; nothing to redact"
    with transaction.atomic():
        deleted = 0
        if customer_id is not None:
            # sync's delete leaves a tombstone, so a late customers/update cannot bring the row back.
            from analytics.services import customer_scores_forget
            from sync.services import customer_delete

            deleted = customer_delete(shop=shop, shopify_id=customer_id)
            # Stored RFM tables name the customer; aggregates go at the next refresh.
            customer_scores_forget(shop=shop, customer_shopify_id=customer_id)
        link = models.Q(shopify_id__in=order_ids)
        if customer_id is not None:
            link |= models.Q(customer_shopify_id=customer_id)
        detached = Order.objects.filter(shop=shop).filter(link).update(customer_shopify_id=None, tags=[])
        scrubbed = 0
        if customer_id is not None:
            mentions = (models.Q(topic__startswith="customers/", payload__id=customer_id)
                        | models.Q(topic__startswith="orders/", payload__customer__id=customer_id)
                        | models.Q(topic__startswith="customers/", payload__customer__id=customer_id))
            scrubbed = WebhookEvent.objects.filter(shop=shop).filter(mentions).update(payload=None)
        if customer_id is not None:
            CustomerDataReport.objects.filter(shop=shop, customer_shopify_id=customer_id).delete()
    _analytics_refresh_later(shop_id=shop.pk)
    return (f"customer {customer_id} redacted: {deleted} row(s) deleted, {detached} order(s) detached, "
            f"{scrubbed} webhook payload(s) cleared")


def shop_redact(*, shop: Shop) -> str:
    """shop/redact (48 h after uninstall): delete everything we hold for the shop.

    A shop that installed the app again since then is not wiped: the request was about
    the earlier installation, whose data the reinstall already purged.
    """
    if shop.state == Shop.State.INSTALLED:
        return "not redacted: the shop has installed Tenure again since it uninstalled"
    with transaction.atomic():
        purged = _shop_data_purge(shop=shop, keep=(WebhookEvent,))
        ShopCredential.objects.filter(shop=shop).delete()
        payloads = WebhookEvent.objects.filter(shop=shop).update(payload=None)
        shop.state = Shop.State.REDACTED
        shop.redacted_at = timezone.now()
        shop.name = shop.shopify_gid = shop.plan = shop.scopes = ""
        shop.needs_reauth_reason = shop.paused_reason = ""
        shop.save()
    return f"shop redacted: {sum(purged.values())} row(s) deleted, {payloads} webhook payload(s) cleared"


def _analytics_refresh_later(*, shop_id: int) -> None:
    def enqueue() -> None:
        try:
            from analytics import tasks as analytics_tasks  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return
        refresh = getattr(analytics_tasks, "refresh_shop_later", None)
        if refresh is not None:
            try:
                refresh.delay(shop_id)
            except Exception:  # broker down: the next scheduled refresh catches up
                logger.warning("analytics refresh not enqueued", exc_info=True)

    transaction.on_commit(enqueue)


def _sync_apply(*, shop: Shop, event: WebhookEvent, payload: Mapping[str, Any]) -> str:
    from sync import services as sync_services

    # Written by the sync helper: upserts keyed on (shop, shopify_id), so replays are harmless.
    sync_services.webhook_apply(shop=shop, topic=event.topic, payload=dict(payload))  # type: ignore[attr-defined]
    return "applied"


Handler = Callable[[Shop, WebhookEvent, Mapping[str, Any]], str]
SYNC_TOPICS = frozenset({
    "orders/create", "orders/updated", "orders/cancelled", "orders/delete", "orders/paid", "orders/edited",
    "orders/fulfilled", "orders/partially_fulfilled", "refunds/create",
    "customers/create", "customers/update", "customers/delete", "customers/enable", "customers/disable",
    "bulk_operations/finish",
})
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
HANDLERS: dict[str, Handler] = {
    **{topic: (lambda shop, event, payload: _sync_apply(shop=shop, event=event, payload=payload))
       for topic in SYNC_TOPICS},
    "app/uninstalled": lambda shop, event, payload: shop_uninstall(shop=shop),
    "app/scopes_update": lambda shop, event, payload: shop_scopes_update(shop=shop, payload=payload, event=event),
    "customers/data_request": lambda shop, event, payload: customer_data_request(shop=shop, event=event,
                                                                                payload=payload),
    "customers/redact": lambda shop, event, payload: customer_redact(shop=shop, payload=payload),
    "shop/redact": lambda shop, event, payload: shop_redact(shop=shop),
    "shop/update": lambda shop, event, payload: shop_update(shop=shop, payload=payload),
}
MAX_ATTEMPTS = 5


def webhook_event_process(*, event_id: int) -> str | None:
    """Run the handler of one recorded delivery, exactly once, and mark the outcome.

    The event row is locked (SKIP LOCKED) so the task and the sweep never run the same
    event together; the handler's writes and the status change commit together.
    Returns the new status, or None when there was nothing to do.
    """
    with transaction.atomic():
        event = (WebhookEvent.objects.select_for_update(skip_locked=True)
                 .filter(pk=event_id, status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED])
                 .first())
        if event is None:
            return None
        shop = Shop.objects.filter(pk=event.shop_id).first() if event.shop_id else None
        with log_context(shop=event.shop_domain, webhook=event.webhook_id, topic=event.topic):
            event.attempts += 1
            handler = HANDLERS.get(event.topic)
            drop = ("unknown topic" if handler is None
                    else "unknown or redacted shop" if shop is None or shop.state == Shop.State.REDACTED
                    else "shop not installed" if event.topic in SYNC_TOPICS and shop.state != Shop.State.INSTALLED
                    else "")
            if drop or shop is None or handler is None:
                event.status = WebhookEvent.Status.DROPPED
                event.outcome = drop
                logger.info("webhook dropped: %s", drop)
            else:
                try:
                    with transaction.atomic():
                        event.outcome = handler(shop, event, event.payload or {})
                    event.status = WebhookEvent.Status.PROCESSED
                except Refused as exc:
                    # A value Shopify cannot send: nothing was written, and a retry would refuse it again.
                    event.status = WebhookEvent.Status.REJECTED
                    event.outcome = f"rejected: {exc}"[:2000]
                    logger.warning("webhook rejected: %s", exc)
                except Exception as exc:  # recorded on the event; the sweep retries a bounded number of times
                    event.status = WebhookEvent.Status.FAILED
                    event.outcome = f"{exc.__class__.__name__}: {exc}"[:2000]
                    logger.exception("webhook handler failed")
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "outcome", "attempts", "processed_at"])
            return str(event.status)


def webhook_events_pending(*, older_than: timedelta, limit: int = 500) -> list[int]:
    """Ids of deliveries still waiting (their task was never enqueued or was lost)."""
    cutoff = timezone.now() - older_than
    return list(
        WebhookEvent.objects.filter(
            # A failed event waits as long again since its last attempt: retries are spaced out.
            models.Q(status=WebhookEvent.Status.RECEIVED)
            | models.Q(status=WebhookEvent.Status.FAILED, attempts__lt=MAX_ATTEMPTS, processed_at__lt=cutoff),
            received_at__lt=cutoff,
        ).order_by("received_at").values_list("pk", flat=True)[:limit]
    )


def webhook_events_sweep(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500,
                         time_budget: float = 50.0) -> int:
    """Process what the on-commit publish left behind (Redis down, process killed); returns how many ran.

    Works in batches until nothing older than `older_than` is left or `time_budget`
    seconds have passed (beat runs it every minute), so a backlog from a long Redis
    outage drains at the worker's pace rather than `limit` per minute.
    """
    import time

    deadline = time.monotonic() + time_budget
    done = 0
    while time.monotonic() < deadline:
        batch = webhook_events_pending(older_than=older_than, limit=limit)
        ran = 0
        for event_id in batch:
            if webhook_event_process(event_id=event_id) is not None:
                ran += 1
            if time.monotonic() >= deadline:
                break
        done += ran
        if ran == 0:
            break  # nothing left, or what is left is locked by other workers / out of attempts
    return done
