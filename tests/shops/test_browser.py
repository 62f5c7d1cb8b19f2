"""A real browser (Chromium) in devstore's admin: the iframe install, CSP framing and the bounce."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest
from django.db import connections

from devstore.testing import DevStore, ShopSpec
from shops.models import Shop, ShopCredential
from tests.conftest import wait_for

CHROMIUM = "/usr/bin/chromium"  # Debian's `chromium` package, as in tests/pages/test_browser.py
pytestmark = [
    pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.shops.urls_embedded"), pytest.mark.filterwarnings("ignore:The HMAC key is"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="browser tests skipped: /usr/bin/chromium is not installed (apt-get install chromium)"),
]
ACME = "acme.myshopify.com"


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="browser tests skipped: playwright missing")

    # Playwright's sync API keeps an event loop on this thread; the ORM calls here are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        yield page
        browser.close()


def test_admin_frame_installs_and_bounce_fetches_a_fresh_token(live_server, settings, browser_page) -> None:
    page = browser_page
    with DevStore([ShopSpec(name="acme", seed=5, customers=15, months=2, currency="NZD",
                            iana_timezone="Pacific/Auckland")], app_url=live_server.url) as ds:
        settings.SHOPIFY_API_BASE_URL = ds.base_url
        settings.APP_URL = live_server.url
        settings.SHOPIFY_ADMIN_ORIGIN = ds.base_url
        settings.SHOPIFY_APP_BRIDGE_URL = f"{ds.base_url}/cdn/app-bridge.js"
        ds.install("acme")

        # The merchant opens the app in the admin: the iframe loads / with an id_token and we install.
        page.goto(ds.admin_url("acme"))
        # ...and sends the frame on to the overview, keeping the embed parameters.
        page.frames[1].wait_for_url(re.compile(r"/app/overview\?.*shop=acme\.myshopify\.com"), timeout=30_000)
        try:
            wait_for(lambda: ShopCredential.objects.filter(shop__domain=ACME).exists(), timeout=30)
            assert Shop.objects.get(domain=ACME).currency == "NZD"
        finally:
            # Inside Playwright's loop the ORM gets a context-local connection teardown would not close.
            connections.close_all()

        # Inside the frame, a plain navigation without a token: bounce, App Bridge, reload with one.
        frame = page.frames[1]
        frame.goto(f"{live_server.url}/t/orders?shop={ACME}&embedded=1")
        # (Playwright's sync API only sees events inside its own calls: wait with it, not with sleep.)
        frame.wait_for_url(re.compile(r"/t/orders\?.*id_token="), timeout=20_000)
        frame.wait_for_load_state()
        assert json.loads(frame.inner_text("body"))["shop"] == ACME
