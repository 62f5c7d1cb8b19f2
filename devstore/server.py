"""devstore's HTTP side: one threaded server, one port, many shops, Shopify's paths.

The shop comes from the ``Host`` header (``<name>.myshopify.com``, as the app's
``sync.client`` transport sends it), or for browsers from a ``shop`` query parameter or a
``/store/<name>/...`` path. ``Platform`` ties the registry (app.py), the webhook dispatcher,
live trading and the fault knobs together; ``Server`` is the HTTP front.

API fault knobs (``store.faults``, set per shop through ``/_devstore/faults``):
``error_rate`` (share of API requests answered 5xx), ``error_next`` (the next N requests fail),
``timeout_rate`` / ``timeout_next`` (hang ``timeout_s``, default 35 s, past a 30 s read timeout,
bounded at 120 s, then 504), ``slow_ms`` (added latency), ``revoked_token`` (every token of the
shop revoked now), and ``oauth_error_rate`` for ``/admin/oauth/access_token``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstore import admin_frame, journal, oauth
from devstore.app import DevApp, Install, Registry, scopes_text, shop_domain
from devstore.session import id_token_mint
from devstore.store import ShopStore
from devstore.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

Response = tuple[int, dict[str, str], bytes]

# Shopify's 401 for a missing, wrong, expired or revoked access token, byte for byte as reported in
# https://github.com/Shopify/shopify-cli/issues/263 and https://github.com/frappe/ecommerce_integrations/issues/414.
INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
MAX_HANG_S = 120.0
DEFAULT_HANG_S = 35.0
API_FAULT_KEYS = ("error_rate", "error_next", "timeout_rate", "timeout_next", "timeout_s", "slow_ms",
                  "error_status", "oauth_error_rate")


# -- JSON with Decimal and datetime kept (the control API's ground truth) ----------------------


def _tagged(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def tagged_dumps(value: Any) -> bytes:
    return json.dumps(value, default=_tagged, separators=(",", ":")).encode()


def tagged_loads(data: bytes | str) -> Any:
    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) == 1:
            if "$decimal" in obj:
                return Decimal(obj["$decimal"])
            if "$datetime" in obj:
                return datetime.fromisoformat(obj["$datetime"])
        return obj

    return json.loads(data, object_hook=hook)


def shop_rest(store: ShopStore) -> dict[str, Any]:
    """The REST Shop resource (the app/uninstalled and shop/update payload), the fields the app reads.

    The webhook reference's sample has no ``admin_graphql_api_id`` for this topic, so neither has this.
    """
    return {
        "id": store.shop_id,
        "name": store.shop_name,
        "email": f"owner@{store.domain}",
        "domain": store.domain,
        "myshopify_domain": store.domain,
        "currency": store.currency,
        "iana_timezone": store.iana_timezone,
        "plan_name": store.plan.lower().replace(" ", "_"),
        "plan_display_name": store.plan,
        "shop_owner": "Dev Merchant",
    }


class Platform:
    """The registry plus what runs around it: webhooks, live trading, faults."""

    def __init__(
        self, app: DevApp, *, retry_scale: float = 1.0, webhook_timeout_s: float = 5.0,
        webhook_concurrency: int = 4, live_interval_s: float = 1.0, live_events: int = 1, seed: int = 0,
    ) -> None:
        self.registry = Registry(app)
        self.app = app
        self.webhooks = WebhookDispatcher(
            secret=lambda: self.app.api_secret, faults=self._faults_of, retry_scale=retry_scale,
            timeout_s=webhook_timeout_s, concurrency=webhook_concurrency, seed=seed,
        )
        self.live_interval_s = live_interval_s
        self.live_events = live_events
        self.base_url = "http://127.0.0.1"
        self.stopping = threading.Event()
        self._live_rngs: dict[str, random.Random] = {}
        self._fault_rngs: dict[str, random.Random] = {}
        self._live_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.registry.on_install_change.append(self._install_changed)

    # -- shops -----------------------------------------------------------------------------

    def shop_add(self, store: ShopStore, *, scopes: str | None = None, seed: int = 0) -> None:
        self.registry.shop_add(store, scopes=scopes)
        store.base_url = self.base_url
        domain = store.domain
        store.on_event = lambda topic, payload: self._api_event(domain, topic, payload)
        for topic, payload in store.pending_webhooks():
            self._api_event(domain, topic, payload)
        self._live_rngs[domain] = random.Random(seed * 1_000_003 + 17)
        self._fault_rngs[domain] = random.Random(seed * 7_919 + 3)

    def store(self, shop: str) -> ShopStore:
        store = self.registry.shop_get(shop)
        if store is None:
            raise KeyError(f"devstore has no shop {shop!r}")
        return store

    def base_url_set(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        for store in self.registry.shops.values():
            store.base_url = self.base_url

    def admin_url(self, shop: str) -> str:
        handle = shop_domain(shop).removesuffix(".myshopify.com")
        return f"{self.base_url}/store/{handle}/apps/{self.app.api_key}"

    # -- webhooks --------------------------------------------------------------------------

    def _faults_of(self, shop: str) -> dict[str, Any]:
        store = self.registry.shop_get(shop)
        return store.faults if store is not None else {}

    def subscription_urls(self, shop: str, topic: str, *, force: bool = False) -> list[tuple[str, tuple[str, ...]]]:
        """(URL, include_fields) of the app-level subscriptions (shopify.app.toml), then the API-created ones."""
        shop = shop_domain(shop)
        if not force and self.registry.installed(shop) is None:
            return []
        urls: list[tuple[str, tuple[str, ...]]] = [
            (self.app.subscription_url(s.uri), ()) for s in self.app.subscriptions if s.topic == topic
        ]
        store = self.registry.shop_get(shop)
        if store is not None:
            for sub in list(store.webhook_subscriptions):
                if sub.get("topic_rest") == topic and sub.get("app_id", self.app.api_key) == self.app.api_key:
                    urls.append((str(sub["uri"]), tuple(sub.get("include_fields") or ())))
        return urls

    def event(self, shop: str, topic: str, payload: dict[str, Any], *, force: bool = False,
              urls: Sequence[str | tuple[str, Sequence[str]]] | None = None) -> list[dict[str, Any]]:
        """Deliver an event to the topic's subscriptions, or to ``urls`` (URL or (URL, include_fields))."""
        shop = shop_domain(shop)
        targets = urls if urls is not None else self.subscription_urls(shop, topic, force=force)
        deliveries = self.webhooks.emit(shop=shop, topic=topic, payload=payload, urls=targets,
                                        api_version=self.app.api_version)
        return [{"seq": d.seq, "webhook_id": d.webhook_id, "url": d.url, "state": d.state} for d in deliveries]

    def _api_event(self, shop: str, topic: str, payload: dict[str, Any]) -> None:
        try:
            self.event(shop, topic, payload)
        except Exception:  # an event callback must never break the API request that raised it
            logger.exception("devstore could not queue %s for %s", topic, shop)

    # -- installs --------------------------------------------------------------------------

    def install(self, shop: str, *, scopes: Iterable[str] | None = None) -> Install:
        return self.registry.install(shop, scopes=scopes)

    def _install_changed(self, shop: str, install: Install | None, previous: Install | None) -> None:
        """A reinstall that grants other scopes sends app/scopes_update (webhooks reference, 2026-10).

        As in the reference's sample: ``shop_id`` is the shop's GID, ``updated_at`` UTC with milliseconds.
        """
        if install is None or previous is None or install.scopes == previous.scopes:
            return
        store = self.store(shop)
        payload = {
            "id": store.shop_id % 1_000_000_000 + 1,
            "shop_id": f"gid://shopify/Shop/{store.shop_id}",
            "previous": sorted(previous.scopes),
            "current": sorted(install.scopes),
            "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        self.event(shop, "app/scopes_update", payload)

    def uninstall(self, shop: str) -> bool:
        shop = shop_domain(shop)
        urls = self.subscription_urls(shop, "app/uninstalled")
        if not self.registry.uninstall(shop):
            return False
        self.event(shop, "app/uninstalled", shop_rest(self.store(shop)), urls=urls)
        return True

    def session_token(self, shop: str) -> str:
        shop = shop_domain(shop)
        self.store(shop)
        return id_token_mint(shop_domain=shop, api_key=self.app.api_key, api_secret=self.app.api_secret)

    # -- faults ----------------------------------------------------------------------------

    def faults_set(self, shop: str, **faults: Any) -> dict[str, Any]:
        store = self.store(shop)
        faults = {key: _knob(value) for key, value in faults.items()}
        with self._lock:
            if faults.pop("revoked_token", False):
                self.registry.tokens_revoke(store.domain)
                store.faults["revoked_token"] = True
            for key, value in faults.items():
                if value is None:
                    store.faults.pop(key, None)
                else:
                    store.faults[key] = value
            return dict(store.faults)

    def api_fault(self, shop: str, *, oauth_route: bool = False) -> tuple[str, float] | None:
        """Decide this request's fault: ("error", status), ("hang", seconds) or None; sleeps slow_ms."""
        store = self.registry.shop_get(shop)
        if store is None:
            return None
        faults = store.faults
        slow = float(faults.get("slow_ms") or 0)
        with self._lock:
            rng = self._fault_rngs.setdefault(store.domain, random.Random(0))
            outcome: tuple[str, float] | None = None
            status = float(faults.get("error_status") or rng.choice((500, 502, 503, 504)))
            if oauth_route:
                if rng.random() < float(faults.get("oauth_error_rate") or 0):
                    outcome = ("error", status)
            elif int(faults.get("timeout_next") or 0) > 0:
                faults["timeout_next"] = int(faults["timeout_next"]) - 1
                outcome = ("hang", self._hang_s(faults))
            elif int(faults.get("error_next") or 0) > 0:
                faults["error_next"] = int(faults["error_next"]) - 1
                outcome = ("error", status)
            else:
                draw = rng.random()
                error_rate = float(faults.get("error_rate") or 0)
                timeout_rate = float(faults.get("timeout_rate") or 0)
                if draw < error_rate:
                    outcome = ("error", status)
                elif draw < error_rate + timeout_rate:
                    outcome = ("hang", self._hang_s(faults))
        if slow > 0:
            self.stopping.wait(slow / 1000)
        return outcome

    @staticmethod
    def _hang_s(faults: dict[str, Any]) -> float:
        return min(float(faults.get("timeout_s") or DEFAULT_HANG_S), MAX_HANG_S)

    # -- live trading ----------------------------------------------------------------------

    def live_step(self, shop: str, events: int = 1) -> list[tuple[str, dict[str, Any]]]:
        """Advance the shop by ``events`` trading events and deliver their webhooks, in order."""
        store = self.store(shop)
        with self._lock:
            rng = self._live_rngs.setdefault(store.domain, random.Random(0))
        produced = store.live_step(events, rng)
        for topic, payload in produced:
            self.event(store.domain, topic, payload)
        return produced

    def live_start(self) -> None:
        if self._live_thread is not None:
            return
        self._live_thread = threading.Thread(target=self._live_loop, name="devstore-live", daemon=True)
        self._live_thread.start()

    def _live_loop(self) -> None:
        while not self.stopping.wait(self.live_interval_s):
            for domain in list(self.registry.shops):
                try:
                    self.live_step(domain, self.live_events)
                except Exception:  # keep trading in the other shops
                    logger.exception("live step failed for %s", domain)

    # -- compliance ------------------------------------------------------------------------

    def compliance(self, shop: str, topic: str, *, customer_id: int | None = None,
                   orders: list[int] | None = None) -> dict[str, Any]:
        """Payloads as in https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance."""
        if topic not in COMPLIANCE_TOPICS:
            raise ValueError(f"not a compliance topic: {topic}")
        store = self.store(shop)
        base: dict[str, Any] = {"shop_id": store.shop_id, "shop_domain": store.domain}
        if topic == "shop/redact":
            payload = base
        else:
            customer = self._customer_for(store, customer_id)
            order_ids = orders if orders is not None else self._orders_of(store, int(customer["id"]))
            payload = {**base, "customer": customer}
            if topic == "customers/redact":
                payload["orders_to_redact"] = order_ids
            else:
                payload["orders_requested"] = order_ids
                payload["data_request"] = {"id": random.Random(len(self.webhooks.log)).randrange(1000, 99999)}
        deliveries = self.event(store.domain, topic, payload, force=True)
        return {"payload": payload, "deliveries": deliveries}

    @staticmethod
    def _customer_for(store: ShopStore, customer_id: int | None) -> dict[str, Any]:
        db = store.reader()
        if customer_id is None:
            row = db.execute("SELECT id FROM customers ORDER BY id LIMIT 1").fetchone()
            if row is None:
                raise ValueError("the shop has no customers")
            customer_id = int(row[0])
        full = store.customer_row(customer_id) or {}
        return {"id": customer_id, "email": full.get("email"), "phone": full.get("phone")}

    @staticmethod
    def _orders_of(store: ShopStore, customer_id: int) -> list[int]:
        rows = store.reader().execute("SELECT id FROM orders WHERE customer_id = ? ORDER BY id", (customer_id,))
        return [int(r[0]) for r in rows]

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self.stopping.set()
        self.webhooks.stop()
        if self._live_thread is not None:
            self._live_thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# HTTP


_GRAPHQL = re.compile(r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/graphql\.json$")
_BULK = re.compile(r"^(?:/store/(?P<store>[a-z0-9-]+))?/bulk/(?P<op>[A-Za-z0-9_-]+)\.jsonl$")
_STORE_APP = re.compile(r"^/store/(?P<store>[a-z0-9][a-z0-9-]*)/apps/(?P<key>[^/]+)(?P<rest>/.*)?$")
_ADMIN_APP = re.compile(r"^/admin/apps/(?P<key>[^/]+)(?P<rest>/.*)?$")
_STAGED = "/staged-uploads/"  # bulk mutation variables (devstore.bulk_mutation)
_STORE_HOME = re.compile(r"^/store/(?P<store>[a-z0-9][a-z0-9-]*)/?$")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    platform: Platform


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, delayed ACKs add 40 ms a request.
    disable_nagle_algorithm = True
    server_version = "devstore"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s %s", self.address_string(), format % args)

    # -- plumbing --------------------------------------------------------------------------

    @property
    def platform(self) -> Platform:
        return self.server.platform

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes | Iterable[bytes]) -> None:
        self.send_response(status)
        headers = {"X-Request-Id": str(uuid.uuid4()), **headers}
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        for key, value in headers.items():
            self.send_header(key, value)
        chunked = not isinstance(body, bytes) and "Content-Length" not in headers
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        if isinstance(body, bytes):
            self.wfile.write(body)
            return
        for chunk in body:
            if not chunk:
                continue
            if chunked:
                self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
            else:
                self.wfile.write(chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(*oauth.json_response(status, body, headers))

    def _shop(self, path: str, query: dict[str, str]) -> str | None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        if host.endswith(".myshopify.com"):
            return host
        if query.get("shop"):
            return shop_domain(query["shop"])
        match = re.match(r"^/store/([a-z0-9][a-z0-9-]*)(?:/|$)", path)
        return shop_domain(match.group(1)) if match else None

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._body()
        self._send(204, {**_cors(self.headers.get("Origin")), "Access-Control-Max-Age": "600"}, b"")

    def _dispatch(self) -> None:
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            logger.exception("devstore failed on %s %s", self.command, self.path)
            with contextlib.suppress(OSError):
                self._json(500, {"errors": "Internal Server Error"})

    # -- routing ---------------------------------------------------------------------------

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, raw_query = parts.path, parts.query
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        if path.startswith(_STAGED) and self.command == "PUT":
            # A staged upload may be over 100 MB: streamed to disk, never held in memory.
            from devstore import bulk_mutation

            self._send(*bulk_mutation.staged_upload_put(
                key=unquote(path.removeprefix(_STAGED)), query=query,
                length=int(self.headers.get("Content-Length") or 0), stream=self.rfile,
            ))
            return
        body = self._body()  # always drained, or a keep-alive connection would read it as the next request
        shop = self._shop(path, query)
        platform = self.platform

        if path.startswith("/_devstore/"):
            self._control(path, query, body)
            return
        if path == "/cdn/app-bridge.js":
            self._send(*admin_frame.app_bridge_js())
            return
        if path == "/cdn/admin.css":
            self._send(*admin_frame.admin_css())
            return
        if path == "/admin/oauth/access_token" and self.command == "POST":
            fault = platform.api_fault(shop, oauth_route=True) if shop else None
            if fault is not None:
                self._fault(fault)
                return
            self._send(*oauth.access_token_handle(platform.registry, shop=shop,
                                                  content_type=self.headers.get("Content-Type") or "",
                                                  body=body, query=raw_query))
            return
        if path == "/admin/oauth/authorize":
            self._send(*oauth.authorize_handle(platform.registry, shop=shop, method=self.command,
                                               query=raw_query, body=body))
            return
        match = _GRAPHQL.match(path)
        if match and self.command == "POST":
            self._graphql(shop, body, match.group("version"))
            return
        if path == _STAGED and self.command == "POST":
            from devstore import bulk_mutation

            self._send(*bulk_mutation.staged_upload_post(content_type=self.headers.get("Content-Type") or "",
                                                         body=body))
            return
        match = _BULK.match(path)
        if match and self.command in ("GET", "HEAD"):
            self._bulk(shop, match.group("op"), query)
            return
        match = _STORE_APP.match(path) or _ADMIN_APP.match(path)
        if match and self.command in ("GET", "HEAD"):
            self._send(*admin_frame.admin_page(platform, shop=shop, api_key=match.group("key"),
                                               rest=match.group("rest") or "", query=query))
            return
        match = _STORE_HOME.match(path)
        if match and shop and platform.registry.shop_get(shop):
            self._send(302, {"Location": platform.admin_url(shop)}, b"")
            return
        if path in ("/", "/admin", "/admin/") and self.command in ("GET", "HEAD"):
            self._send(*admin_frame.index_page(platform, shop=shop))
            return
        self._json(404, {"errors": "Not Found"})

    def _fault(self, fault: tuple[str, float]) -> None:
        kind, value = fault
        if kind == "hang":
            self.platform.stopping.wait(value)
            self._json(504, {"errors": "Gateway Timeout"})
            return
        status = int(value)
        if status in (502, 504):
            reason = "Bad Gateway" if status == 502 else "Gateway Timeout"
            page = f"<html><body><h1>{status} {reason}</h1></body></html>"
            self._send(status, {"Content-Type": "text/html; charset=utf-8"}, page.encode())
        elif status == 503:
            self._json(503, {"errors": "Service Unavailable"}, {"Retry-After": "1"})
        else:
            self._json(status, {"errors": "Internal Server Error"})

    def _graphql(self, shop: str | None, body: bytes, version: str) -> None:
        platform = self.platform
        store = platform.registry.shop_get(shop)
        if store is None or shop is None:
            self._json(404, {"errors": "Not Found"})
            return
        fault = platform.api_fault(store.domain)
        if fault is not None:
            self._fault(fault)
            return
        token = platform.registry.access_check(self.headers.get("X-Shopify-Access-Token"), store.domain)
        if token is None:
            self._json(401, INVALID_TOKEN_BODY)
            return
        journal.record(self.headers.get("User-Agent"), body)
        status, headers, out = store.handle_graphql(set(token.scopes), body, app_id=platform.app.api_key)
        self._send(status, {"X-Shopify-API-Version": version, **headers}, out)

    def _bulk(self, shop: str | None, op_id: str, query: dict[str, str]) -> None:
        platform = self.platform
        store = platform.registry.shop_get(shop)
        if store is None:
            from devstore import bulk

            store = bulk.store_for_operation(op_id)
        if store is None:
            self._json(404, {"errors": "Not Found"})
            return
        fault = platform.api_fault(store.domain)
        if fault is not None:
            self._fault(fault)
            return
        status, headers, chunks = store.bulk_result(op_id, expires=query.get("expires"),
                                                    signature=query.get("signature"))
        self._send(status, headers, chunks)

    # -- control API (devstore's own) ------------------------------------------------------

    def _control(self, path: str, query: dict[str, str], body: bytes) -> None:
        name = path.removeprefix("/_devstore/").rstrip("/")
        data: dict[str, Any] = {}
        if body:
            ctype = self.headers.get("Content-Type") or ""
            data = json.loads(body) if "json" in ctype else dict(parse_qsl(body.decode(), keep_blank_values=True))
        args = {**query, **data}
        shop = shop_domain(str(args["shop"])) if args.get("shop") else None
        try:
            result = self._control_call(name, shop, args)
        except KeyError as exc:
            self._json(404, {"error": str(exc)})
            return
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": str(exc)})
            return
        if isinstance(result, tuple):
            self._send(*result)
        else:
            self._send(200, {"Content-Type": "application/json; charset=utf-8"}, tagged_dumps(result))

    def _control_call(self, name: str, shop: str | None, args: dict[str, Any]) -> Any:
        platform = self.platform
        registry = platform.registry
        if name == "health":
            return {"ok": True, "base_url": platform.base_url, "shops": sorted(registry.shops)}
        if name == "shops":
            return [{"domain": d, "installed": registry.installed(d) is not None,
                     "admin_url": platform.admin_url(d)} for d in sorted(registry.shops)]
        if name == "id_token":
            # The App Bridge stand-in calls this from the app's origin, hence CORS; other sites
            # a developer's browser visits get nothing.
            origin = self.headers.get("Origin")
            if origin and origin not in (_origin(platform.app.app_url), _origin(platform.base_url)):
                return 403, {"Content-Type": "application/json"}, b'{"error":"origin not allowed"}'
            token = platform.session_token(_need(shop))
            return 200, {**_cors(self.headers.get("Origin")), "Content-Type": "application/json",
                         "Cache-Control": "no-store"}, json.dumps({"id_token": token}).encode()
        if name == "app_home_url":
            return {"url": admin_frame.app_home_url(platform, _need(shop), path=str(args.get("path") or "/"))}
        if name == "admin_url":
            return {"url": platform.admin_url(_need(shop))}
        if name == "install_link":
            return {"url": oauth.install_request_url(registry, _need(shop))}
        if name == "ground_truth":
            return platform.store(_need(shop)).ground_truth()
        if name == "deliveries":
            return platform.webhooks.summaries(shop=shop, topic=args.get("topic"))
        if self.command != "POST":
            raise KeyError(f"unknown control call {name}")
        if name == "install":
            scopes = args.get("scopes")
            install = platform.install(_need(shop), scopes=scopes.split(",") if isinstance(scopes, str) else scopes)
            return {"shop": install.shop, "scopes": scopes_text(install.scopes)}
        if name == "uninstall":
            return {"uninstalled": platform.uninstall(_need(shop))}
        if name in ("admin/install", "admin/uninstall"):
            target = _need(shop)
            if name == "admin/install":
                platform.install(target)
            else:
                platform.uninstall(target)
            return 303, {"Location": platform.admin_url(target)}, b""
        if name == "faults":
            knobs = {k: v for k, v in args.items() if k != "shop"}
            return {"faults": platform.faults_set(_need(shop), **knobs)}
        if name == "live_step":
            return {"events": platform.live_step(_need(shop), int(args.get("events") or 1))}
        if name == "compliance":
            return platform.compliance(_need(shop), str(args.get("topic")),
                                       customer_id=int(args["customer_id"]) if args.get("customer_id") else None,
                                       orders=args.get("orders"))
        if name == "wait_webhooks":
            return {"idle": platform.webhooks.wait_idle(float(args.get("timeout_s") or args.get("timeout") or 10))}
        if name == "clock":
            registry.clock_advance(float(args.get("advance") or 0))
            return {"now": registry.now()}
        if name == "event":
            return {"deliveries": platform.event(_need(shop), str(args["topic"]), dict(args.get("payload") or {}))}
        raise KeyError(f"unknown control call {name}")


def _knob(value: Any) -> Any:
    """Form posts and the CLI give strings: "true", "3", "0.25" mean what they say."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("", "none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(lowered)
        except ValueError:
            continue
    return value


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _need(shop: str | None) -> str:
    if not shop:
        raise ValueError("shop is required")
    return shop


def _cors(origin: str | None) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin or "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Vary": "Origin",
    }


class Server:
    """The HTTP server, serving from a background thread once started."""

    def __init__(self, platform: Platform, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.platform = platform
        self.httpd = _HTTPServer((host, port), Handler)
        self.httpd.platform = platform
        self.port = int(self.httpd.server_address[1])
        self.base_url = f"http://{host}:{self.port}"
        platform.base_url_set(self.base_url)
        self._thread: threading.Thread | None = None

    def start(self) -> Server:
        from devstore.conformance import real_schema

        # Shopify's schema takes about a second to build: start on it now, not in the first request.
        threading.Thread(target=real_schema, name="devstore-schema", daemon=True).start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="devstore-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.platform.stopping.set()  # releases hung (timeout-fault) requests
        if self._thread is not None:  # shutdown() waits for a serve_forever that must be running
            self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.platform.close()

