"""The admin frame and the App Bridge stand-in in a real browser (Chromium), with no internet.

A minimal app on its own origin loads /cdn/app-bridge.js from devstore inside the admin's iframe:
the session token comes over postMessage from the admin page, same-origin fetches carry it as a
Bearer token, and the bounce page is completed with a fresh id_token.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jwt
import pytest

from devstore.testing import DevStore, ShopSpec
from tests.devstore.platform_support import API_KEY, SECRET

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>loading</title>
<script src="%(bridge)s" data-api-key="%(key)s"></script></head>
<body><ui-nav-menu><a href="/" rel="home">Home</a><a href="/reports">Reports</a></ui-nav-menu>
<ui-title-bar title="Tiny app"></ui-title-bar><p id="out"></p>
<script>
  shopify.idToken()
    .then(function () { return fetch("/api/echo", { method: "POST", body: "{}" }); })
    .then(function (res) { return res.json(); })
    .then(function (data) {
      document.getElementById("out").textContent = JSON.stringify(data);
      document.title = "done";
    })
    .catch(function (err) { document.getElementById("out").textContent = String(err); document.title = "failed"; });
</script></body></html>"""

BOUNCE = """<!doctype html><html><head><script src="%(bridge)s" data-api-key="%(key)s"></script></head>
<body>bouncing</body></html>"""


@pytest.fixture
def tiny_app() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"bridge": "", "hits": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: str, ctype: str = "text/html") -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            state["hits"].append(self.path)
            values = {"bridge": state["bridge"], "key": API_KEY}
            if path == "/bounce":
                self._send(BOUNCE % values)
            elif path == "/landing":
                self._send(json.dumps(dict(parse_qsl(urlsplit(self.path).query))), "application/json")
            else:
                self._send(PAGE % values)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(json.dumps({"authorization": self.headers.get("Authorization")}), "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser.new_page()
        browser.close()


def test_embedded_app_gets_tokens_and_bearer_fetches_in_chromium(tiny_app: dict[str, Any], page: Any) -> None:
    with DevStore([ShopSpec(name="acme", customers=5, months=1)], api_key=API_KEY, api_secret=SECRET,
                  app_url=tiny_app["url"], install=True) as ds:
        tiny_app["bridge"] = f"{ds.base_url}/cdn/app-bridge.js"
        page.goto(ds.admin_url("acme"))
        frame = page.frame(name="app-iframe")
        assert frame is not None
        frame.wait_for_function("document.title !== 'loading'", timeout=20_000)
        assert frame.title() == "done", frame.inner_text("#out")
        result = json.loads(frame.inner_text("#out"))
        token = result["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=API_KEY)
        assert claims["dest"] == "https://acme.myshopify.com"
        # The admin chrome shows the app's nav menu and title.
        page.wait_for_selector("#app-nav a", timeout=10_000)
        assert page.inner_text("#app-nav a") == "Reports"
        assert page.get_attribute("#app-nav a", "href") == f"/store/acme/apps/{API_KEY}/reports"
        assert page.inner_text("#app-title") == "Tiny app"

        # The bounce page: App Bridge reloads `shopify-reload` with a fresh id_token.
        reload = quote("/landing?view=orders&shop=acme.myshopify.com", safe="")
        frame.goto(f"{tiny_app['url']}/bounce?shop=acme.myshopify.com&shopify-reload={reload}")
        frame.wait_for_url(re.compile(r"/landing\?.*id_token="), timeout=20_000)
        landed = json.loads(frame.inner_text("body"))
        assert landed["view"] == "orders"
        assert jwt.decode(landed["id_token"], SECRET, algorithms=["HS256"], audience=API_KEY)["dest"] == \
            "https://acme.myshopify.com"


def test_install_button_then_uninstall_in_chromium(tiny_app: dict[str, Any], page: Any) -> None:
    with DevStore([ShopSpec(name="acme", customers=5, months=1)], api_key=API_KEY, api_secret=SECRET,
                  app_url=tiny_app["url"]) as ds:
        tiny_app["bridge"] = f"{ds.base_url}/cdn/app-bridge.js"
        page.goto(ds.admin_url("acme"))
        page.click("#install")
        page.wait_for_selector("#app-iframe")
        assert ds.platform.registry.installed("acme") is not None
        page.click("#uninstall")
        page.wait_for_selector("#install")
        assert ds.platform.registry.installed("acme") is None
