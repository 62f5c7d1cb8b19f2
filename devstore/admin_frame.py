"""The admin around an embedded app: the page that frames it, its launch URL, App Bridge.

Shopify opens an embedded app at its application URL with
``embedded=1&hmac&host&id_token&locale&session&shop&timestamp``; ``hmac`` is the hex
HMAC-SHA256 of the other parameters, sorted, as for OAuth redirects
(https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens and
https://shopify.dev/docs/apps/build/online-store/verify-request-origin-with-hmac). The page
path after ``/apps/<api_key>`` is appended to the application URL, as the admin does.
"""

from __future__ import annotations

import html
import json
import secrets
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from devstore.app import scopes_text
from devstore.oauth import host_param, install_request_url, query_signed
from devstore.session import id_token_mint

if TYPE_CHECKING:
    from devstore.server import Platform

Response = tuple[int, dict[str, str], bytes]
ASSETS = Path(__file__).with_name("assets")


@cache
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def app_bridge_js() -> Response:
    return 200, {
        "Content-Type": "application/javascript; charset=utf-8",
        "Access-Control-Allow-Origin": "*",
        "Cache-Control": "no-cache",
    }, _asset("app-bridge.js")


def admin_css() -> Response:
    return 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "no-cache"}, _asset("admin.css")


def app_home_url(platform: Platform, shop: str, *, path: str = "/", extra: dict[str, str] | None = None) -> str:
    """Where the admin points the app's iframe: a fresh id_token and the launch hmac."""
    store = platform.store(shop)
    now = time.time()
    app = platform.app
    session = secrets.token_hex(16)
    params = {
        **(extra or {}),
        "embedded": "1",
        "host": host_param(store.domain),
        "id_token": id_token_mint(shop_domain=store.domain, api_key=app.api_key, api_secret=app.api_secret,
                                  now=now, session_id=session),
        "locale": "en",
        "session": session,
        "shop": store.domain,
        "timestamp": str(int(now)),
    }
    path = path if path.startswith("/") else "/" + path
    return f"{app.app_url}{path}?{query_signed(params, app.api_secret)}"


def _page(title: str, body: str, *, status: int = 200) -> Response:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><link rel="stylesheet" href="/cdn/admin.css"></head>
<body class="admin">{body}</body></html>"""
    return status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, doc.encode()


def _chrome(platform: Platform, shop: str, main: str, *, nav_links: str = "") -> str:
    store = platform.store(shop)
    app = platform.app
    others = "".join(
        f'<a href="{html.escape(platform.admin_url(d))}">{html.escape(d)}</a>'
        for d in sorted(platform.registry.shops) if d != store.domain
    )
    return f"""
<header class="topbar"><span class="logo">devstore</span><span>Shopify admin stand-in</span>
<span class="shop">{html.escape(store.shop_name)}</span><span class="domain">{html.escape(store.domain)}</span></header>
<div class="layout"><nav class="sidebar" aria-label="Admin">
<span>Home</span><span>Orders</span><span>Customers</span><span>Analytics</span>
<span class="heading">Apps</span>
<a class="active" href="{html.escape(platform.admin_url(store.domain))}">{html.escape(app.app_name)}</a>
<div id="app-nav">{nav_links}</div>
{f'<span class="heading">Other shops</span>{others}' if others else ''}
</nav><main>{main}</main></div>"""


def admin_page(platform: Platform, *, shop: str | None, api_key: str, rest: str, query: dict[str, str]) -> Response:
    app = platform.app
    store = platform.registry.shop_get(shop)
    if store is None:
        return _page("Not found", "<main class='card'><h1>There's no shop at this address</h1></main>", status=404)
    if api_key != app.api_key:
        return _page("Not found", "<main class='card'><h1>This app isn't installed on this shop</h1></main>",
                     status=404)
    install = platform.registry.installed(store.domain)
    shop_field = f'<input type="hidden" name="shop" value="{html.escape(store.domain)}">'
    if install is None:
        granted = sorted(platform.registry.grants[store.domain])
        scopes = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in granted)
        main = f"""<section class="card" id="install-card"><h1>Install {html.escape(app.app_name)}</h1>
<p>{html.escape(app.app_name)} will be able to:</p><ul>{scopes}</ul>
<form method="post" action="/_devstore/admin/install">{shop_field}
<button class="primary" id="install" type="submit">Install</button></form>
<p class="muted">Or, as a non-embedded install, <a id="code-grant" target="_top"
href="{html.escape(install_request_url(platform.registry, store.domain))}">start the authorization code grant</a>.</p>
</section>"""
        return _page(f"{app.app_name} · {store.shop_name}", _chrome(platform, store.domain, main))
    extra = {k: v for k, v in query.items() if k not in ("shop", "hmac", "id_token", "embedded", "host", "session",
                                                           "timestamp", "locale")}
    src = app_home_url(platform, store.domain, path=rest or "/", extra=extra)
    handle = store.domain.removesuffix(".myshopify.com")
    main = f"""<div class="appbar"><h1 id="app-title">{html.escape(app.app_name)}</h1>
<span class="muted">scopes: {html.escape(scopes_text(install.scopes))}</span>
<form method="post" action="/_devstore/admin/uninstall">{shop_field}
<button class="danger" id="uninstall" type="submit">Uninstall</button></form></div>
<iframe id="app-iframe" name="app-iframe" title="{html.escape(app.app_name)}" src="{html.escape(src)}"
 allow="clipboard-write"></iframe>
<script>{_frame_script(app.app_url, store.domain, f"/store/{handle}/apps/{app.api_key}")}</script>"""
    return _page(f"{app.app_name} · {store.shop_name}", _chrome(platform, store.domain, main))


def _frame_script(app_url: str, shop: str, admin_path: str) -> str:
    """The admin side of App Bridge: answers token requests, shows the app's nav menu and title."""
    from urllib.parse import urlsplit

    parts = urlsplit(app_url)
    app_origin = f"{parts.scheme}://{parts.netloc}"
    config = json.dumps({"appOrigin": app_origin, "shop": shop, "adminPath": admin_path})
    return """
(function () {
  var cfg = %s;
  var frame = document.getElementById("app-iframe");
  window.addEventListener("message", function (event) {
    if (event.origin !== cfg.appOrigin || !event.data || typeof event.data.type !== "string") { return; }
    var msg = event.data;
    if (msg.type === "devstore:id_token:request") {
      fetch("/_devstore/id_token?shop=" + encodeURIComponent(cfg.shop), { cache: "no-store" })
        .then(function (res) { return res.json(); })
        .then(function (data) {
          var reply = { type: "devstore:id_token", id: msg.id, token: data.id_token };
          frame.contentWindow.postMessage(reply, cfg.appOrigin);
        });
    } else if (msg.type === "devstore:frame") {
      var nav = document.getElementById("app-nav");
      nav.textContent = "";
      (msg.links || []).forEach(function (link) {
        if (!link.href || link.href.charAt(0) !== "/") { return; }
        var a = document.createElement("a");
        a.className = "sub";
        a.href = cfg.adminPath + link.href;
        a.textContent = link.label;
        nav.appendChild(a);
      });
      if (msg.title) { document.getElementById("app-title").textContent = msg.title; }
    }
  });
})();
""" % config  # noqa: UP031 - braces of the JS would need doubling with format()


def index_page(platform: Platform, *, shop: str | None) -> Response:
    rows = "".join(
        f'<li><a href="{html.escape(platform.admin_url(d))}">{html.escape(d)}</a>'
        f'{" (installed)" if platform.registry.installed(d) else ""}</li>'
        for d in sorted(platform.registry.shops)
    )
    body = f"""<main class="card"><h1>devstore</h1><p>A local stand-in for Shopify. Shops:</p><ul>{rows}</ul>
<p class="muted">App: <code>{html.escape(platform.app.app_url)}</code></p></main>"""
    return _page("devstore", body)


__all__ = ["admin_css", "admin_page", "app_bridge_js", "app_home_url", "index_page"]
