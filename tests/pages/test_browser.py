"""Every report page opened as a merchant does: inside devstore's admin frame, in headless Chromium.

The app runs on pytest-django's live server, devstore in-process; App Bridge is devstore's
stand-in. The tests install through the admin (token exchange), run the backfill and the
snapshot refresh, then walk the pages through their own links, check every figure a page
names (``data-figure``/``data-value``) against the report document, use the period picker on
several pages and an earlier as-of date, sort, filter and page the RFM customer list,
download its CSV, post the forms, tab through the pages with the keyboard, and fail on any
console error. Screenshots go to var/screenshots/, or to docs/screenshots/ (the README's) with
TENURE_SCREENSHOTS=docs/screenshots.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from analytics import selectors, services
from devstore.testing import DevStore, ShopSpec
from shops.models import Shop
from tests.pages.conftest import figures_mismatched

CHROMIUM = "/usr/bin/chromium"
# The README's screenshots: refreshed with TENURE_SCREENSHOTS=docs/screenshots; a plain run writes
# them under var/ so the working tree stays clean.
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("TENURE_SCREENSHOTS", "var/screenshots")
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
            # Inside Playwright's loop the ORM gets a context-local connection teardown would not close.
            connections.close_all()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def devstore(live_server: Any, settings: Any) -> Iterator[DevStore]:
    # 240 customers over 30 months: more than one page (50) of scored customers in a year.
    spec = ShopSpec(name="browsable", seed=11, customers=240, months=30, currency="NZD",
                    iana_timezone="Pacific/Auckland")
    with DevStore([spec], api_key=settings.SHOPIFY_API_KEY, api_secret=settings.SHOPIFY_API_SECRET,
                  app_url=live_server.url) as ds:
        settings.SHOPIFY_API_BASE_URL = ds.base_url
        settings.APP_URL = live_server.url
        settings.SHOPIFY_APP_BRIDGE_URL = f"{ds.base_url}/cdn/app-bridge.js"
        settings.SHOPIFY_ADMIN_ORIGIN = ds.base_url
        yield ds


@dataclass
class Admin:
    """The admin page with the app in its frame, and what the page reported as errors."""

    page: Any
    app_url: str
    errors: list[str]
    failed: list[str]

    def frame(self, path: str, timeout: float = 20.0) -> Any:
        """The app frame once it shows ``path``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.page.frames:
                if frame.url.startswith(self.app_url + path):
                    frame.wait_for_load_state("load")
                    return frame
            self.page.wait_for_timeout(100)
        raise AssertionError(f"the app frame never showed {path}: {[f.url for f in self.page.frames]}")

    def navigate(self, frame: Any, action: Callable[[], None], url: str) -> Any:
        """Run ``action`` (a click, a submit) and return the frame once its URL matches ``url`` (a regex)."""
        action()
        frame.wait_for_url(re.compile(url), timeout=20_000)
        frame.wait_for_load_state("load")
        return frame

    def tab(self, frame: Any, label: str) -> Any:
        frame.get_by_role("navigation", name="Reports").get_by_role("link", name=label, exact=True).click()
        return self.frame(f"/app/{label.lower()}")

    def shot(self, name: str) -> None:
        self.page.wait_for_timeout(400)  # let the cross-origin frame paint before the screenshot
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def console_errors(self, devstore: DevStore) -> list[str]:
        # devstore's own admin page has no favicon (Chromium asks for one): not the app's console.
        return [e for e in self.errors if f"'{devstore.base_url}/favicon.ico'" not in e]


def admin_open(browser: Any, devstore: DevStore, live_server: Any, *, height: int = 1900) -> Admin:
    context = browser.new_context(viewport={"width": 1280, "height": height}, accept_downloads=True)
    page = context.new_page()
    admin = Admin(page=page, app_url=live_server.url, errors=[], failed=[])
    page.on("console", lambda msg: admin.errors.append(f"{msg.type}: {msg.text} at {msg.location}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: admin.errors.append(f"pageerror: {exc}"))
    context.on("response", lambda r: admin.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(devstore.admin_url(devstore.shops[0]))
    return admin


def shop_synced(devstore: DevStore) -> Shop:
    """The backfill the install enqueued, run here (no worker in these tests), then the snapshots."""
    from analytics.tasks import refresh_shop
    from sync import services as sync_services

    shop = Shop.objects.get(domain=devstore.shops[0])
    run = sync_services.backfill_create(shop=shop, full=False)
    assert sync_services.backfill_run(run_id=run.pk) == "succeeded"
    refresh_shop(shop.pk)  # what the sync's refresh_shop_later runs: today's and the previous period's snapshots
    return shop


def shown_figures(frame: Any) -> dict[str, str]:
    return frame.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]'))
        .filter(e => e.hasAttribute('data-value')).map(e => [e.dataset.figure, e.dataset.value]))""")


def assert_figures(frame: Any, doc: dict[str, Any], page: str, *, at_least: int = 1) -> dict[str, str]:
    shown = shown_figures(frame)
    assert len(shown) >= at_least, (page, shown)
    assert figures_mismatched(shown, doc) == {}, page
    return shown


def customer_rows(frame: Any) -> list[dict[str, Any]]:
    """The RFM list as shown: customer id, spend (the Spend column) and group badge per row."""
    return frame.evaluate("""() => Array.from(
        document.querySelectorAll('[data-testid="customers"] tbody tr[data-customer]'))
        .map(tr => ({id: tr.dataset.customer, spend: tr.children[3].innerText,
                     group: tr.querySelector('.badge').innerText}))""")


def spend(text: str) -> Decimal:
    return Decimal(text.removeprefix("NZD ").replace(",", ""))


def test_every_page_in_the_admin_frame(browser: Any, devstore: DevStore, live_server: Any,
                                       transactional_db: None) -> None:
    shop_domain = devstore.shops[0]
    devstore.install(shop_domain)
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin = admin_open(browser, devstore, live_server)

    # First open: the app home exchanges the token and lands on the overview's empty state.
    frame = admin.frame("/app/overview")
    assert frame.locator('[data-testid="empty-state"]').count() == 1
    admin.shot("first-open")

    shop = shop_synced(devstore)
    doc = services.report_document(shop=shop)
    assert doc["clv"]["orders"] > 0
    today = selectors.shop_today(shop=shop)

    # Every page through its tab; every figure it names equals the document.
    frame.goto(frame.url)  # reload inside the frame (the token is still fresh)
    frame = admin.frame("/app/overview")
    at_least = {"overview": 10, "rfm": 20, "clv": 30, "retention": 9, "lifecycle": 20, "marketing": 5, "data": 10,
                "settings": 0}
    for name, label in PAGES:
        if name != "overview":
            frame = admin.tab(frame, label)
        assert frame.locator("h1").inner_text() == label
        assert_figures(frame, doc, name, at_least=at_least[name])
        admin.shot(name)

    # RFM customer list: pages of 50, sorting by a column both ways, a group filter that keeps the sort.
    frame = admin.tab(frame, "RFM")
    customers = int(doc["clv"]["customers"])
    pages = -(-customers // 50)
    assert pages >= 2, customers
    count = frame.locator('[data-testid="customer-count"]')
    assert count.inner_text().startswith(f"{customers:,} customers; page 1 of {pages}.")
    first = customer_rows(frame)
    assert len(first) == 50
    href = frame.locator('[data-testid="customers"] tbody a').first.get_attribute("href")
    assert re.fullmatch(r"https://admin\.shopify\.com/store/browsable/customers/\d+", href or "")
    frame = admin.navigate(frame, lambda: frame.get_by_role("link", name="Next page").click(), r"page=2")
    assert count.inner_text().startswith(f"{customers:,} customers; page 2 of {pages}.")
    second = customer_rows(frame)
    assert len(second) == min(50, customers - 50)
    assert not {r["id"] for r in first} & {r["id"] for r in second}

    spend_header = frame.locator('[data-testid="customers"] thead th', has_text="Spend")
    frame = admin.navigate(frame, lambda: spend_header.get_by_role("link").click(), r"sort=monetary&dir=desc")
    assert spend_header.get_attribute("aria-sort") == "descending"
    shown = [spend(r["spend"]) for r in customer_rows(frame)]
    assert shown == sorted(shown, reverse=True)
    frame = admin.navigate(frame, lambda: spend_header.get_by_role("link").click(), r"sort=monetary&dir=asc")
    assert spend_header.get_attribute("aria-sort") == "ascending"
    shown = [spend(r["spend"]) for r in customer_rows(frame)]
    assert shown == sorted(shown)

    top = int(doc["rfm"]["groups"]["top"]["customers"])
    frame.get_by_label("Group", exact=True).select_option("top")
    frame = admin.navigate(frame, lambda: frame.get_by_role("button", name="Filter").click(), r"group=top")
    assert count.inner_text().startswith(f"{top:,} customers in the top group;")
    rows = customer_rows(frame)
    assert len(rows) == min(50, top)
    assert {r["group"] for r in rows} == {"top"}
    assert spend_header.get_attribute("aria-sort") == "ascending"  # the filter keeps the sort

    # The CSV honours the group filter.
    with admin.page.expect_download() as info:
        frame.locator('[data-testid="csv-link"]').click()
    assert info.value.suggested_filename.endswith("-top.csv")
    table = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert len(table) == top
    assert {row["rfm_group"] for row in table} == {"top"}
    assert {row["id"] for row in rows} <= {row["customer_id"] for row in table}

    # The period picker on the overview: 90 days; the links keep the choice.
    frame = admin.tab(frame, "Overview")
    frame.get_by_label("Period", exact=True).select_option("90")
    frame = admin.navigate(frame, lambda: frame.get_by_role("button", name="Apply").click(), r"period=90")
    frame.wait_for_selector("text=(90 days)")
    doc90 = services.report_document(shop=shop, period_days=90)
    assert doc90["clv"]["orders"] != doc["clv"]["orders"]
    assert_figures(frame, doc90, "overview 90 days", at_least=10)
    frame = admin.tab(frame, "Lifecycle")
    frame.wait_for_selector("text=(90 days)")
    assert_figures(frame, doc90, "lifecycle 90 days", at_least=20)

    # ...and on the RFM page: 180 days.
    frame = admin.tab(frame, "RFM")
    frame.get_by_label("Period", exact=True).select_option("180")
    frame = admin.navigate(frame, lambda: frame.get_by_role("button", name="Apply").click(), r"period=180")
    frame.wait_for_selector("text=(180 days)")
    doc180 = services.report_document(shop=shop, period_days=180)
    assert_figures(frame, doc180, "rfm 180 days", at_least=20)

    # An earlier as-of date, on the Retention page.
    as_of = today - timedelta(days=75)
    frame = admin.tab(frame, "Retention")
    frame.get_by_label("As of", exact=True).fill(as_of.isoformat())
    frame = admin.navigate(frame, lambda: frame.get_by_role("button", name="Apply").click(),
                           rf"as_of={as_of.isoformat()}")
    frame.wait_for_selector(f"text=as of {as_of.isoformat()}")
    doc_earlier = services.report_document(shop=shop, as_of=as_of, period_days=180)
    assert doc_earlier["retention"]["customers_at_end"] != doc180["retention"]["customers_at_end"]
    assert_figures(frame, doc_earlier, "retention earlier as-of", at_least=9)

    # Marketing, for that period: the merchant's numbers give CAC (acquisition spend / new customers).
    frame = admin.tab(frame, "Marketing")
    frame.get_by_label("Acquisition spend").fill("5000")
    frame.get_by_label("Retention spend").fill("1200")
    frame.get_by_label("Campaign conversion rate (%)").fill("2.5")
    frame = admin.navigate(frame, lambda: frame.get_by_role("button", name="Save").click(), r"saved=1")
    frame.wait_for_selector("text=Saved.")
    new = doc_earlier["retention"]["new_customers"]
    assert new > 0
    cac = Decimal(5000) / new
    assert Decimal(shown_figures(frame)["marketing.cac"]) == cac.quantize(Decimal("0.01"))
    admin.shot("marketing")

    # Data: the progress endpoint answers App Bridge's fetch (Bearer session token).
    frame = admin.tab(frame, "Data")
    status = frame.evaluate("""() => fetch(document.getElementById('sync-status').dataset.statusUrl)
        .then(r => r.json())""")
    assert status["backfill_done"] is True

    # A backfill running: the bar follows it live (the page polls its JSON endpoint), then says it is done.
    from django.utils import timezone

    from sync.models import SyncRun

    running = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.RUNNING,
                                     started_at=timezone.now(), objects_seen=40, object_count=100)
    admin.page.wait_for_timeout(1100)  # the Data page reuses the sync status it read for up to a second
    frame.goto(frame.url)
    frame = admin.frame("/app/data")
    assert frame.locator("#backfill-progress").get_attribute("value") == "40"
    admin.page.screenshot(path=str(SHOTS / "data-backfill.png"))
    SyncRun.objects.filter(pk=running.pk).update(objects_seen=80)
    frame.wait_for_function("() => document.getElementById('backfill-progress').value === 80", timeout=10_000)
    SyncRun.objects.filter(pk=running.pk).update(status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now())
    frame.wait_for_selector("text=Import finished", timeout=10_000)

    # Settings: a bad value is answered next to its field; a good one is saved.
    frame = admin.tab(frame, "Settings")
    frame.get_by_label("Activity window (days)").fill("2")
    frame.get_by_role("button", name="Save settings").click()
    frame = admin.frame("/app/settings")
    frame.wait_for_selector('[data-error-for="activity_window_days"]')
    frame.get_by_label("Activity window (days)").fill("300")
    frame = admin.navigate(frame, lambda: frame.get_by_role("button", name="Save settings").click(), r"saved=1")
    frame.wait_for_selector("text=Settings saved.")
    shop.refresh_from_db()
    assert shop.analytics_settings.activity_window_days == 300

    assert admin.console_errors(devstore) == [], (admin.errors, admin.failed)
    admin.page.context.close()


FOCUSED = """() => { const e = document.activeElement; if (!e || e === document.body) return null;
    const s = getComputedStyle(e);
    return {node: Array.prototype.indexOf.call(document.querySelectorAll('*'), e),
            tag: e.tagName.toLowerCase(), id: e.id, cls: e.className, text: (e.innerText || '').trim().slice(0, 40),
            nav: !!e.closest('nav.tabs'), picker: !!e.closest('form.period-picker'),
            summary: e.tagName === 'SUMMARY', ring: s.outlineStyle !== 'none' && s.outlineWidth !== '0px'}; }"""


def frame_focus(frame: Any) -> None:
    """Give the app's frame the keyboard with nothing in it focused, as when it has just loaded."""
    # Focusing the body moves the sequential focus starting point to the document's start.
    frame.evaluate("""() => { window.focus(); document.body.tabIndex = -1; document.body.focus();
        document.body.removeAttribute('tabindex'); }""")


def tab_through(admin: Admin, frame: Any, presses: int) -> list[dict[str, Any]]:
    """Give the frame the keyboard and press Tab up to ``presses`` times; each element that got focus, in order
    (with the number of presses that reached it, and whether any of its stops showed a focus ring)."""
    stops = []
    for i in range(presses):
        if i == 0:
            frame_focus(frame)
        admin.page.keyboard.press("Tab")
        stop = frame.evaluate(FOCUSED)
        if stop is None:  # focus left the app's frame: the page has been walked through
            break
        same = bool(stops) and stops[-1]["node"] == stop["node"]
        if same:  # a date input's month, day, year and picker are stops of one field
            stops[-1]["ring"] = stops[-1]["ring"] or stop["ring"]
        else:
            stops.append({**stop, "presses": i + 1})
    return stops


def test_keyboard_reaches_every_control_and_changes_carry_text(browser: Any, devstore: DevStore, live_server: Any,
                                                               transactional_db: None) -> None:
    devstore.install(devstore.shops[0])
    admin = admin_open(browser, devstore, live_server, height=1200)
    frame = admin.frame("/app/overview")
    shop_synced(devstore)
    frame.goto(frame.url)
    frame = admin.frame("/app/overview")

    # The overview: skip link first, then every tab, the period picker, then the cards' disclosures.
    stops = tab_through(admin, frame, 80)
    assert stops[0]["cls"] == "skip-link"
    assert [s["text"] for s in stops if s["nav"]] == [label for _, label in PAGES]
    assert [s["id"] or s["text"] for s in stops if s["picker"]] == ["id_period", "id_days", "id_as_of", "Apply"]
    summaries = [s for s in stops if s["summary"]]
    assert len(summaries) >= 10  # one "Formula and inputs" per card
    assert all(s["ring"] for s in stops), [s for s in stops if not s["ring"]]  # focus is visible everywhere

    # A disclosure opens from the keyboard.
    frame_focus(frame)
    for _ in range(summaries[0]["presses"]):
        admin.page.keyboard.press("Tab")
    assert frame.evaluate("() => document.activeElement.tagName") == "SUMMARY"
    admin.page.keyboard.press("Enter")
    assert frame.evaluate("() => document.activeElement.parentElement.open") is True

    # The skip link moves focus to the report.
    frame_focus(frame)
    admin.page.keyboard.press("Tab")
    admin.page.keyboard.press("Enter")
    assert frame.evaluate("() => document.activeElement.id") == "main"

    # Changes against the previous period say up or down, and better or worse, in words as well as colour.
    changes = frame.evaluate("""() => Array.from(document.querySelectorAll('.change'))
        .map(e => ({dir: e.dataset.change, cls: e.className, text: e.innerText,
                    glyph: e.querySelector('[aria-hidden="true"]') !== null}))""")
    assert len(changes) == 10
    for change in changes:
        assert change["glyph"], change  # the arrow is decoration for screen readers
        words = {"up": "up", "down": "down", "flat": "unchanged"}[change["dir"]]
        assert words in change["text"], change
        if change["dir"] != "flat":
            verdict = "better" if "is-good" in change["cls"] else "worse"
            assert f"({verdict})" in change["text"], change

    # Settings: every form field and the save button are reachable, in order.
    frame = admin.tab(frame, "Settings")
    stops = tab_through(admin, frame, 60)
    fields = frame.evaluate("""() => Array.from(document.querySelectorAll('form.stacked-form input:not([type=hidden]),'
        + ' form.stacked-form select, form.stacked-form textarea'))
        .filter(e => e.type !== 'radio' || e.checked).map(e => e.id)""")
    reached = [s["id"] for s in stops if s["tag"] in ("input", "select", "textarea")]
    assert len(fields) >= 8
    assert reached == fields, (reached, fields)
    assert any(s["tag"] == "button" and s["text"] == "Save settings" for s in stops)

    # Marketing: its form fields as well.
    frame = admin.tab(frame, "Marketing")
    stops = tab_through(admin, frame, 60)
    reached = [s["id"] for s in stops if s["tag"] == "input" and not s["picker"]]
    assert reached == ["id_period_start", "id_period_end", "id_acquisition_spend", "id_retention_spend",
                       "id_conversion_rate"], reached

    assert admin.console_errors(devstore) == [], (admin.errors, admin.failed)
    admin.page.context.close()

