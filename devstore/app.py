"""The registry behind devstore: shops, the one app under test, its installs and its tokens.

Token rules follow Shopify's docs for expiring offline tokens
(https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/offline-access-tokens
and the changelog "More resilient refreshes for expiring offline access tokens"):

- an access token lives 3600 s, its refresh token 90 days;
- only one expiring offline token is active per app and shop: issuing one revokes the others;
- a refresh rotates the pair; the refresh token just used stays usable (a retry after a lost
  response gets a fresh pair) until the app starts using the replacement pair, for at most
  30 days; then it is retired and answers ``invalid_grant``.
"""

from __future__ import annotations

import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstore.store import ShopStore

ACCESS_TOKEN_TTL_S = 3600
REFRESH_TOKEN_TTL_S = 90 * 86_400
REFRESH_RETRY_WINDOW_S = 30 * 86_400
ONLINE_TOKEN_TTL_S = 86_399
AUTH_CODE_TTL_S = 600
API_VERSION = "2026-10"
DEFAULT_TOML = Path(__file__).resolve().parent.parent / "shopify.app.toml"
DEFAULT_SCOPES = "read_orders,read_all_orders,read_customers"


def shop_domain(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".myshopify.com") else f"{name}.myshopify.com"


def scopes_parse(value: str | Iterable[str] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    return frozenset(s.strip() for s in items if s.strip())


def scopes_text(scopes: Iterable[str]) -> str:
    return ",".join(sorted(scopes))


def scopes_effective(scopes: Iterable[str]) -> frozenset[str]:
    """What a token can do: ``write_x`` implies ``read_x`` as on Shopify."""
    have = set(scopes)
    have |= {"read_" + s.removeprefix("write_") for s in have if s.startswith("write_")}
    return frozenset(have)


@dataclass
class AccessToken:
    token: str
    shop: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float | None  # None: a non-expiring offline token
    online: bool = False
    refresh: str | None = None  # the refresh token issued with it
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    shop: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    predecessor: str | None = None  # the refresh token whose use produced this one
    successor: str | None = None  # the latest pair produced by using this one
    first_used_at: float | None = None
    retired: bool = False


@dataclass
class AuthCode:
    code: str
    shop: str
    scopes: frozenset[str]
    redirect_uri: str
    expires_at: float
    online: bool = False
    used: bool = False


@dataclass
class Install:
    shop: str
    scopes: frozenset[str]
    installed_at: float


@dataclass(frozen=True)
class AppSubscription:
    """An app-level webhook subscription from shopify.app.toml."""

    topic: str
    uri: str
    compliance: bool = False


@dataclass
class TokenOutcome:
    """What /admin/oauth/access_token answers: (status, JSON body)."""

    status: int
    body: dict[str, Any]


@dataclass
class DevApp:
    api_key: str
    api_secret: str
    app_url: str
    requested_scopes: frozenset[str] = field(default_factory=lambda: scopes_parse(DEFAULT_SCOPES))
    subscriptions: list[AppSubscription] = field(default_factory=list)
    api_version: str = API_VERSION
    redirect_urls: list[str] = field(default_factory=list)
    app_name: str = "Tenure"

    @classmethod
    def from_toml(cls, *, api_key: str, api_secret: str, app_url: str,
                  toml_path: str | Path | None = DEFAULT_TOML) -> DevApp:
        """The app as its shopify.app.toml declares it (scopes, app-level webhooks), at ``app_url``."""
        app = cls(api_key=api_key, api_secret=api_secret, app_url=app_url.rstrip("/"))
        if toml_path is None or not Path(toml_path).exists():
            return app
        config = tomllib.loads(Path(toml_path).read_text(encoding="utf-8"))
        app.app_name = str(config.get("name") or app.app_name)
        access = config.get("access_scopes") or {}
        if access.get("scopes"):
            # Optional scopes are ones the app asks for after install; the merchant may grant them
            # (a ShopSpec's `scopes` is what this merchant grants, required and optional alike).
            app.requested_scopes = scopes_parse(access["scopes"]) | scopes_parse(access.get("optional_scopes"))
        webhooks = config.get("webhooks") or {}
        app.api_version = str(webhooks.get("api_version") or API_VERSION)
        for sub in webhooks.get("subscriptions") or []:
            uri = str(sub.get("uri") or "")
            for topic in sub.get("topics") or []:
                app.subscriptions.append(AppSubscription(topic=topic, uri=uri))
            for topic in sub.get("compliance_topics") or []:
                app.subscriptions.append(AppSubscription(topic=topic, uri=uri, compliance=True))
        app.redirect_urls = list((config.get("auth") or {}).get("redirect_urls") or [])
        return app

    def subscription_url(self, uri: str) -> str:
        """A toml ``uri`` is relative to the application URL unless absolute."""
        if uri.startswith(("http://", "https://")):
            return uri
        return self.app_url + "/" + uri.lstrip("/")


class Registry:
    """Everything devstore knows, shared by the server threads (one lock)."""

    def __init__(self, app: DevApp) -> None:
        self.app = app
        self.shops: dict[str, ShopStore] = {}
        self.grants: dict[str, frozenset[str]] = {}  # what the merchant grants on install
        self.installs: dict[str, Install] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.clock_offset = 0.0
        self.lock = threading.RLock()
        # Called with (shop, install now or None, install before or None) after every change.
        self.on_install_change: list[Callable[[str, Install | None, Install | None], None]] = []

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        """The clock of token lifetimes (access and refresh tokens, codes); tests move it forward.

        Session tokens stay on wall-clock time: the app checks them against its own clock.
        """
        return time.time() + self.clock_offset

    def clock_advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    # -- shops -----------------------------------------------------------------------------

    def shop_add(self, store: ShopStore, *, scopes: str | Iterable[str] | None = None) -> None:
        with self.lock:
            self.shops[store.domain] = store
            self.grants[store.domain] = scopes_parse(scopes) if scopes is not None else self.app.requested_scopes

    def shop_get(self, name: str | None) -> ShopStore | None:
        if not name:
            return None
        return self.shops.get(shop_domain(name))

    # -- installs --------------------------------------------------------------------------

    def install(self, shop: str, *, scopes: Iterable[str] | None = None) -> Install:
        """Shopify-managed install: the merchant approves, the app gets the granted scopes."""
        shop = shop_domain(shop)
        with self.lock:
            if shop not in self.shops:
                raise KeyError(shop)
            granted = frozenset(scopes) if scopes is not None else self.grants[shop]
            existing = self.installs.get(shop)
            if existing is not None and existing.scopes == granted:
                return existing
            install = Install(shop=shop, scopes=granted,
                              installed_at=existing.installed_at if existing else self.now())
            self.installs[shop] = install
            if existing is not None:
                # Scopes belong to the installation: the app's live tokens see the change at once
                # (Shopify's AccessScope reference: later calls with the token list the new scopes).
                for tok in self.access_tokens.values():
                    if tok.shop == shop:
                        tok.scopes = granted
                for ref in self.refresh_tokens.values():
                    if ref.shop == shop:
                        ref.scopes = granted
        for callback in self.on_install_change:
            callback(shop, install, existing)
        return install

    def installed(self, shop: str) -> Install | None:
        return self.installs.get(shop_domain(shop))

    def uninstall(self, shop: str) -> bool:
        """Removes the install and every token; the caller delivers app/uninstalled."""
        shop = shop_domain(shop)
        with self.lock:
            previous = self.installs.pop(shop, None)
            if previous is None:
                return False
            self.tokens_revoke(shop)
            store = self.shops.get(shop)
            if store is not None:
                # An uninstall drops the app's API-created subscriptions with it.
                store.webhook_subscriptions[:] = [
                    s for s in store.webhook_subscriptions if s.get("app_id", self.app.api_key) != self.app.api_key
                ]
        for callback in self.on_install_change:
            callback(shop, None, previous)
        return True

    # -- tokens ----------------------------------------------------------------------------

    def tokens_revoke(self, shop: str) -> int:
        """Every access and refresh token of the shop stops working (revoked by the merchant)."""
        shop = shop_domain(shop)
        count = 0
        with self.lock:
            for tok in self.access_tokens.values():
                if tok.shop == shop and not tok.revoked:
                    tok.revoked = True
                    count += 1
            for ref in self.refresh_tokens.values():
                if ref.shop == shop:
                    ref.retired = True
        return count

    def _new_access(self, shop: str, scopes: frozenset[str], *, expiring: bool, online: bool = False,
                    refresh: str | None = None) -> AccessToken:
        now = self.now()
        ttl = ONLINE_TOKEN_TTL_S if online else ACCESS_TOKEN_TTL_S
        if expiring and not online:
            # One active expiring offline token per app and shop.
            for tok in self.access_tokens.values():
                if tok.shop == shop and tok.expires_at is not None and not tok.online:
                    tok.revoked = True
        prefix = "shpua_" if online else "shpat_"
        tok = AccessToken(token=prefix + secrets.token_hex(16), shop=shop, scopes=scopes, issued_at=now,
                          expires_at=now + ttl if (expiring or online) else None, online=online, refresh=refresh)
        self.access_tokens[tok.token] = tok
        return tok

    def _pair(self, shop: str, scopes: frozenset[str], *, predecessor: str | None = None) -> dict[str, Any]:
        now = self.now()
        ref = RefreshToken(token="shprt_" + secrets.token_hex(16), shop=shop, scopes=scopes, issued_at=now,
                           expires_at=now + REFRESH_TOKEN_TTL_S, predecessor=predecessor)
        self.refresh_tokens[ref.token] = ref
        tok = self._new_access(shop, scopes, expiring=True, refresh=ref.token)
        return {
            "access_token": tok.token,
            "scope": scopes_text(scopes),
            "expires_in": ACCESS_TOKEN_TTL_S,
            "refresh_token": ref.token,
            "refresh_token_expires_in": REFRESH_TOKEN_TTL_S,
        }

    def grant_tokens(self, shop: str, scopes: frozenset[str], *, expiring: bool, online: bool = False,
                     user: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON body of a successful token exchange or code exchange."""
        with self.lock:
            if online:
                tok = self._new_access(shop, scopes, expiring=True, online=True)
                return {
                    "access_token": tok.token,
                    "scope": scopes_text(scopes),
                    "expires_in": ONLINE_TOKEN_TTL_S,
                    "associated_user_scope": scopes_text(scopes),
                    "associated_user": user or {},
                }
            if not expiring:
                tok = self._new_access(shop, scopes, expiring=False)
                return {"access_token": tok.token, "scope": scopes_text(scopes)}
            # A fresh grant starts a new chain: earlier refresh tokens for the shop are done.
            for ref in self.refresh_tokens.values():
                if ref.shop == shop:
                    ref.retired = True
            return self._pair(shop, scopes)

    def refresh(self, shop: str, refresh_token: str) -> dict[str, Any] | str:
        """A new pair for a refresh token, or the OAuth error code (``invalid_grant``)."""
        now = self.now()
        with self.lock:
            ref = self.refresh_tokens.get(refresh_token)
            if ref is None or ref.shop != shop or ref.retired or now >= ref.expires_at:
                return "invalid_grant"
            if shop not in self.installs:
                return "invalid_grant"
            if ref.first_used_at is None:
                ref.first_used_at = now
            elif now - ref.first_used_at > REFRESH_RETRY_WINDOW_S:
                ref.retired = True
                return "invalid_grant"
            if ref.predecessor is not None:
                self._retire(ref.predecessor)
            if ref.successor is not None:
                # A retry after a lost response: the unused replacement is replaced again.
                old = self.refresh_tokens.get(ref.successor)
                if old is not None:
                    old.retired = True
            body = self._pair(shop, ref.scopes, predecessor=ref.token)
            ref.successor = body["refresh_token"]
            return body

    def _retire(self, refresh_token: str) -> None:
        old = self.refresh_tokens.get(refresh_token)
        if old is not None:
            old.retired = True

    def access_check(self, token: str | None, shop: str) -> AccessToken | None:
        """The token when it is live for this shop; using it retires the refresh token before it."""
        if not token:
            return None
        now = self.now()
        with self.lock:
            tok = self.access_tokens.get(token)
            if tok is None or tok.revoked or tok.shop != shop or shop not in self.installs:
                return None
            if tok.expires_at is not None and now >= tok.expires_at:
                return None
            if tok.refresh is not None:
                ref = self.refresh_tokens.get(tok.refresh)
                if ref is not None and ref.predecessor is not None:
                    self._retire(ref.predecessor)
            return tok

    # -- authorization codes ---------------------------------------------------------------

    def code_issue(self, shop: str, scopes: frozenset[str], redirect_uri: str, *, online: bool = False) -> str:
        with self.lock:
            code = secrets.token_hex(16)
            self.codes[code] = AuthCode(code=code, shop=shop, scopes=scopes, redirect_uri=redirect_uri,
                                        expires_at=self.now() + AUTH_CODE_TTL_S, online=online)
            return code

    def code_consume(self, code: str, shop: str) -> AuthCode | None:
        """Single use: the first exchange burns the code, valid or not afterwards."""
        with self.lock:
            entry = self.codes.get(code)
            if entry is None or entry.used or entry.shop != shop or self.now() >= entry.expires_at:
                return None
            entry.used = True
            return entry
