"""Every report page opened as a merchant does: inside devstore's admin frame, in headless Chromium.

The app runs on pytest-django's live server, devstore in-process; App Bridge is devstore's
stand-in. The test installs through the admin (token exchange), runs the backfill and the
snapshot refresh, then walks the pages through their own links, checks the figures against
the report document, uses the period picker, downloads the CSV, posts the settings form,
and fails on any console error. Screenshots go to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from analytics import services
from devstore.testing import DevStore, ShopSpec
from shops.models import Shop

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = [("overview", "Overview"), ("rfm", "RFM"), ("clv", "CLV"), ("retention", "Retention"),
         ("lifecycle", "Lifecycle"), ("marketing", "Marketing"), ("data", "Data"), ("settings", "Settings")]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="browser tests skipped: /usr/bin/chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="browser tests skipped: playwright missing")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in between are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def devstore(live_server: Any, settings: Any) -> Iterator[DevStore]:
    spec = ShopSpec(name="browsable", seed=11, customers=160, months=30, currency="NZD",
                    iana_timezone="Pacific/Auckland")
    with DevStore([spec], api_key=settings.SHOPIFY_API_KEY, api_secret=settings.SHOPIFY_API_SECRET,
                  app_url=live_server.url) as ds:
        settings.SHOPIFY_API_BASE_URL = ds.base_url
        settings.APP_URL = live_server.url
        settings.SHOPIFY_APP_BRIDGE_URL = f"{ds.base_url}/cdn/app-bridge.js"
        settings.SHOPIFY_ADMIN_ORIGIN = ds.base_url
        yield ds


def app_frame(page: Any, app_url: str, path: str, timeout: float = 20.0) -> Any:
    """The admin page's app iframe once it shows `path`."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in page.frames:
            if frame.url.startswith(app_url + path):
                frame.wait_for_load_state("load")
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"the app frame never showed {path}: {[f.url for f in page.frames]}")


def shown_figures(frame: Any) -> dict[str, str]:
    return frame.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]'))
        .filter(e => e.hasAttribute('data-value')).map(e => [e.dataset.figure, e.dataset.value]))""")


def doc_value(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        node = node[part]
    return node


def test_every_page_in_the_admin_frame(browser: Any, devstore: DevStore, live_server: Any,
                                       transactional_db: None) -> None:
    from analytics.tasks import refresh_shop
    from sync import services as sync_services

    shop_domain = devstore.shops[0]
    devstore.install(shop_domain)
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text} at {msg.location}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    failed: list[str] = []
    context.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # First open: the app home exchanges the token and lands on the overview's empty state.
    page.goto(devstore.admin_url(shop_domain))
    frame = app_frame(page, live_server.url, "/app/overview")
    assert frame.locator('[data-testid="empty-state"]').count() == 1
    page.screenshot(path=str(SHOTS / "first-open.png"))

    # The backfill the install enqueued, run here (no worker in this test), then the snapshot.
    shop = Shop.objects.get(domain=shop_domain)
    run = sync_services.backfill_create(shop=shop, full=False)
    assert sync_services.backfill_run(run_id=run.pk) == "succeeded"
    refresh_shop(shop.pk)  # what the sync's refresh_shop_later runs: today's and the previous period's snapshots
    doc = services.report_document(shop=shop)
    assert doc["clv"]["orders"] > 0

    frame.goto(frame.url)  # reload inside the frame (the token is still fresh)
    frame = app_frame(page, live_server.url, "/app/overview")
    for name, label in PAGES:
        if name != "overview":
            frame.get_by_role("navigation", name="Reports").get_by_role("link", name=label, exact=True).click()
            frame = app_frame(page, live_server.url, f"/app/{name}")
        assert frame.locator("h1").inner_text() == label
        for key, value in shown_figures(frame).items():
            if key.startswith(("clv.", "retention.", "marketing.")) and key.count(".") == 1:
                expected = doc_value(doc, key)
                assert value == ("" if expected is None else str(expected)), (name, key)
        page.wait_for_timeout(400)  # let the cross-origin frame paint before the screenshot
        page.screenshot(path=str(SHOTS / f"{name}.png"))

    # The overview's cards equal the document.
    frame.get_by_role("link", name="Overview", exact=True).first.click()
    frame = app_frame(page, live_server.url, "/app/overview")
    shown = shown_figures(frame)
    assert shown["clv.revenue"] == doc["clv"]["revenue"]
    assert shown["clv.orders"] == str(doc["clv"]["orders"])
    assert shown["retention.crr"] == str(doc["retention"]["crr"])

    # The period picker: 90 days.
    frame.get_by_label("Period", exact=True).select_option("90")
    frame.get_by_role("button", name="Apply").click()
    frame = app_frame(page, live_server.url, "/app/overview")
    frame.wait_for_selector("text=(90 days)")
    doc90 = services.report_document(shop=shop, period_days=90)
    assert shown_figures(frame)["clv.orders"] == str(doc90["clv"]["orders"])

    # Marketing: the merchant's numbers give CAC (acquisition spend / new customers).
    frame.get_by_role("link", name="Marketing", exact=True).first.click()
    frame = app_frame(page, live_server.url, "/app/marketing")
    frame.get_by_label("Acquisition spend").fill("5000")
    frame.get_by_label("Retention spend").fill("1200")
    frame.get_by_label("Campaign conversion rate (%)").fill("2.5")
    frame.get_by_role("button", name="Save").click()
    frame = app_frame(page, live_server.url, "/app/marketing")
    frame.wait_for_selector("text=Saved.")
    cac = Decimal(5000) / doc90["retention"]["new_customers"]
    assert Decimal(shown_figures(frame)["marketing.cac"]) == cac.quantize(Decimal("0.01"))
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / "marketing.png"))

    # RFM: the customer links open the customer in the Shopify admin; the CSV downloads.
    frame.get_by_role("link", name="RFM", exact=True).first.click()
    frame = app_frame(page, live_server.url, "/app/rfm")
    href = frame.locator('[data-testid="customers"] tbody a').first.get_attribute("href")
    assert re.fullmatch(r"https://admin\.shopify\.com/store/browsable/customers/\d+", href or "")
    with page.expect_download() as info:
        frame.locator('[data-testid="csv-link"]').click()
    csv_lines = Path(info.value.path()).read_text().strip().splitlines()
    assert csv_lines[0].startswith("customer_id,")
    assert len(csv_lines) == 1 + doc90["clv"]["customers"]

    # Data: the progress endpoint answers App Bridge's fetch (Bearer session token).
    frame.get_by_role("link", name="Data", exact=True).first.click()
    frame = app_frame(page, live_server.url, "/app/data")
    status = frame.evaluate("""() => fetch(document.getElementById('sync-status').dataset.statusUrl)
        .then(r => r.json())""")
    assert status["backfill_done"] is True

    # A backfill running: the bar follows it live (the page polls its JSON endpoint), then says it is done.
    from django.utils import timezone

    from sync.models import SyncRun

    running = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.RUNNING,
                                     started_at=timezone.now(), objects_seen=40, object_count=100)
    page.wait_for_timeout(1100)  # the Data page reuses the sync status it read for up to a second
    frame.goto(frame.url)
    frame = app_frame(page, live_server.url, "/app/data")
    assert frame.locator("#backfill-progress").get_attribute("value") == "40"
    page.screenshot(path=str(SHOTS / "data-backfill.png"))
    SyncRun.objects.filter(pk=running.pk).update(objects_seen=80)
    frame.wait_for_function("() => document.getElementById('backfill-progress').value === 80", timeout=10_000)
    SyncRun.objects.filter(pk=running.pk).update(status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now())
    frame.wait_for_selector("text=Import finished", timeout=10_000)

    # Settings: a bad value is answered next to its field; a good one is saved.
    frame.get_by_role("link", name="Settings", exact=True).first.click()
    frame = app_frame(page, live_server.url, "/app/settings")
    frame.get_by_label("Activity window (days)").fill("2")
    frame.get_by_role("button", name="Save settings").click()
    frame = app_frame(page, live_server.url, "/app/settings")
    frame.wait_for_selector('[data-error-for="activity_window_days"]')
    frame.get_by_label("Activity window (days)").fill("300")
    frame.get_by_role("button", name="Save settings").click()
    frame = app_frame(page, live_server.url, "/app/settings")
    frame.wait_for_selector("text=Settings saved.")
    shop.refresh_from_db()
    assert shop.analytics_settings.activity_window_days == 300

    # Keyboard: the skip link is the first stop and every tab is reachable.
    frame.locator("body").focus()
    frame.press("body", "Tab")
    assert frame.evaluate("() => document.activeElement.className") == "skip-link"

    # devstore's own admin page has no favicon (Chromium asks for one): not the app's console.
    errors = [e for e in errors if f"'{devstore.base_url}/favicon.ico'" not in e]
    assert errors == [], (errors, failed)
    context.close()
