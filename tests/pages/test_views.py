"""The report pages as the server renders them: figures, query budgets, period picker, lists, forms."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from analytics import services, views
from analytics.models import AnalyticsSettings, MarketingInput
from shops.models import Shop
from tests.pages.conftest import AS_OF, DOMAIN, Pages, doc_value, figures_mismatched, session_token, shop_install

PAGES = ["overview", "rfm", "clv", "retention", "lifecycle", "marketing", "data", "settings"]
BUDGET_COLD = {"overview": 15, "rfm": 11, "clv": 10, "retention": 16, "lifecycle": 10, "marketing": 10, "data": 15,
               "settings": 3}
# Warm: the session check (the shop with its token flag, one query); the settings, the snapshots'
# identities, the marketing inputs and the sync status are reused for one to three seconds per
# process (the test widens those windows so that a slow machine measures the same thing).
BUDGET_WARM = {"overview": 3, "rfm": 2, "clv": 2, "retention": 2, "lifecycle": 2, "marketing": 2, "data": 3,
               "settings": 2}


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([^"]+)" data-value="([^"]*)"', html))


@pytest.mark.parametrize("name", PAGES)
def test_every_page_stays_within_its_query_budget(pages: Pages, name: str, django_assert_max_num_queries,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Warm means inside the reuse windows: a cold request slower than a second must not turn the
    # second request cold again.
    for window in ("MEMO_SECONDS", "STATUS_SECONDS", "SNAPSHOT_SECONDS"):
        monkeypatch.setattr(views, window, 600.0)
    # Warm the stored snapshots (this period and the previous one), as the nightly refresh does.
    services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    services.report_document(shop=pages.shop, as_of=date(2025, 11, 1), period_days=365)
    # Cold: this process has not read the snapshot yet; warm: it has (the steady state under load).
    with django_assert_max_num_queries(BUDGET_COLD[name]):
        response = pages.get(f"/app/{name}", as_of=AS_OF.isoformat())
    assert response.status_code == 200
    with django_assert_max_num_queries(BUDGET_WARM[name]):
        response = pages.get(f"/app/{name}", as_of=AS_OF.isoformat())
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("frame-ancestors https://pagesshop.myshopify.com")


def test_overview_shows_the_documents_figures_and_the_previous_period(pages: Pages) -> None:
    html = pages.get("/app/overview", as_of=AS_OF.isoformat()).content.decode()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    prev = services.report_document(shop=pages.shop, as_of=date(2025, 11, 1), period_days=365)
    shown = figures(html)
    keys = ["clv.revenue", "clv.orders", "clv.customers", "clv.aov", "clv.purchase_frequency", "clv.customer_value",
            "clv.clv", "retention.crr", "retention.churn_rate", "retention.repeat_purchase_rate"]
    assert sorted(shown) == sorted(keys)
    for key in keys:
        assert shown[key] == str(doc_value(doc, key)), key
    previous = dict(re.findall(r'data-previous="([^"]+)" data-value="([^"]*)"', html))
    assert previous["clv.orders"] == str(prev["clv"]["orders"])
    # The history adds up: customer i orders every (i % 5 + 1) months, so the periods hold different counts.
    assert doc["clv"]["orders"] != prev["clv"]["orders"]
    assert f'NZD {Decimal(doc["clv"]["revenue"]):,.2f}' in html
    assert "<details class=\"explain\">" in html
    assert "revenue / orders" in html
    assert 'role="img"' in html
    assert "Revenue by month" in html


def test_period_picker_changes_the_period(pages: Pages) -> None:
    html = pages.get("/app/overview", as_of=AS_OF.isoformat(), period="90").content.decode()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=90)
    assert "2026-08-03 to 2026-10-31 (90 days)" in html
    assert figures(html)["clv.orders"] == str(doc["clv"]["orders"])
    assert '<option value="90" selected>' in html
    # Links keep the choice so the next page shows the same period.
    link = re.search(r'href="(/app/rfm\?[^"]+)"', html).group(1).replace("&amp;", "&")
    query = parse_qs(urlparse(link).query)
    assert query["period"] == ["90"]
    assert query["as_of"] == [AS_OF.isoformat()]
    assert query["shop"] == [DOMAIN]
    assert query["id_token"]
    assert query["host"] == ["aG9zdA"]


def test_custom_period_without_days_is_a_field_error(pages: Pages) -> None:
    html = pages.get("/app/overview", as_of=AS_OF.isoformat(), period="custom").content.decode()
    assert "Enter the number of days for a custom period." in html
    assert "(365 days)" in html  # falls back to the shop's default


def test_rfm_page_grid_groups_and_crosstab(pages: Pages) -> None:
    html = pages.get("/app/rfm", as_of=AS_OF.isoformat()).content.decode()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    assert "Customers by recency (R) and frequency (F) score" in html
    for g in ("top", "middle", "bottom"):
        row = html.split(f'<tr data-row="{g}">')[1].split("</tr>")[0]
        clv = doc["rfm"]["groups"][g]["clv"]["clv"]
        assert f'data-figure="rfm.groups.{g}.clv.clv" data-value="{clv}">{Decimal(clv):,.2f}<' in row
    shown = figures(html)
    assert shown["rfm.groups.top.customers"] == str(doc["rfm"]["groups"]["top"]["customers"])
    cell = doc["rfm"]["grid"][0]
    assert shown[f"rfm.grid.r={cell['r']},f={cell['f']}.customers"] == str(cell["customers"])
    assert shown[f"rfm.grid.r={cell['r']},f={cell['f']}.revenue"] == str(cell["revenue"])
    # Cross-table columns are Shopify's groups from the synced customers.
    table = html.split('data-testid="crosstab"')[1].split("</table>")[0]
    for name in ("AT_RISK", "CHAMPIONS", "DORMANT"):
        assert f">{name}<" in table
    total = sum(doc["shopify"]["rfm_crosstab"]["top"].values())
    assert total == doc["rfm"]["groups"]["top"]["customers"]


def test_rfm_customer_list_filters_sorts_and_links_to_the_admin(pages: Pages) -> None:
    html = pages.get("/app/rfm", as_of=AS_OF.isoformat(), group="top", sort="monetary", dir="asc").content.decode()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    body = html.split('data-testid="customers"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-customer="(\d+)">(.*?)</tr>', body, re.S)
    assert len(rows) == doc["rfm"]["groups"]["top"]["customers"]
    assert all('group-top">top<' in row for _, row in rows)
    spend = [Decimal(re.findall(r"NZD ([0-9,.]+)", row)[0].replace(",", "")) for _, row in rows]
    assert spend == sorted(spend)
    cid = rows[0][0]
    assert f'href="https://admin.shopify.com/store/pagesshop/customers/{cid}" target="_top"' in body
    assert 'aria-sort="ascending"' in body


def test_rfm_csv_downloads_every_scored_customer(pages: Pages) -> None:
    response = pages.get("/app/rfm.csv", as_of=AS_OF.isoformat())
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    assert lines[0].startswith("customer_id,recency_days,frequency,monetary")
    assert len(lines) == 1 + doc["clv"]["customers"]


def test_retention_clv_lifecycle_show_the_document(pages: Pages) -> None:
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    ret = pages.get("/app/retention", as_of=AS_OF.isoformat()).content.decode()
    assert figures(ret)["retention.crr"] == str(doc["retention"]["crr"])
    assert "Cohort retention" in ret
    assert "Time between orders" in ret
    clv = pages.get("/app/clv", as_of=AS_OF.isoformat()).content.decode()
    assert figures(clv)["clv.clv"] == doc["clv"]["clv"]
    assert "the 3-year default" in clv or "derived from churn" in clv
    assert "predictive" in doc
    assert 'data-testid="predictive"' in clv  # the section says why when the model could not be fitted
    life = pages.get("/app/lifecycle", as_of=AS_OF.isoformat()).content.decode()
    for stage in ("purchase", "retention", "advocacy", "at_risk", "lapsed"):
        assert figures(life)[f"lifecycle.{stage}.customers"] == str(doc["lifecycle"][stage]["customers"])
    assert "Awareness" in life
    assert "web analytics" in life


def test_settings_bad_values_answer_with_field_errors_and_save_nothing(pages: Pages) -> None:
    response = pages.post("/app/settings", {"period_days": "3", "activity_window_days": "365",
                                            "order_value_basis": "gross", "refund_dating": "order_date",
                                            "rfm_scale": "3", "rfm_method": "quantile",
                                            "lifespan_override_years": "-1", "excluded_order_tags": "",
                                            "predictive_time_unit": "months", "predictive_horizon_days": "10",
                                            "predictive_discount_rate_pct": "150"})
    assert response.status_code == 200  # re-rendered, not redirected
    html = response.content.decode()
    assert "Some values need fixing; nothing was saved." in html
    assert re.search(r'data-error-for="period_days">.*Enter a number from 7 to 3660', html)
    assert 'data-error-for="order_value_basis"' in html
    assert 'data-error-for="lifespan_override_years"' in html
    for name in ("predictive_time_unit", "predictive_horizon_days", "predictive_discount_rate_pct"):
        assert f'data-error-for="{name}"' in html
    assert not AnalyticsSettings.objects.filter(shop=pages.shop).exists()


def test_settings_save_and_explain_each_field(pages: Pages) -> None:
    html = pages.get("/app/settings").content.decode()
    assert html.count('class="help"') >= 11
    response = pages.post("/app/settings", {"period_days": "180", "activity_window_days": "300",
                                            "order_value_basis": "total", "refund_dating": "refund_date",
                                            "rfm_scale": "5", "rfm_method": "range",
                                            "lifespan_override_years": "2.5", "excluded_order_tags": "wholesale, b2b",
                                            "predictive_time_unit": "weeks", "predictive_horizon_days": "180",
                                            "predictive_discount_rate_pct": "8.5"})
    assert response.status_code == 302
    assert "/app/settings?" in response["Location"]
    assert "saved=1" in response["Location"]
    s = AnalyticsSettings.objects.get(shop=pages.shop)
    assert (s.period_days, s.activity_window_days, s.order_value_basis, s.rfm_scale) == (180, 300, "total", 5)
    assert s.lifespan_override_years == Decimal("2.5")
    assert s.excluded_order_tags == ["wholesale", "b2b"]
    assert (s.predictive_time_unit, s.predictive_horizon_days, s.predictive_discount_rate_pct) == (
        "weeks", 180, Decimal("8.5"))
    rfm = pages.get("/app/rfm", as_of=AS_OF.isoformat()).content.decode()
    assert "Named segments" in rfm
    assert "Champions" in rfm


def test_forms_need_the_session_token_not_a_cookie(shop: Shop) -> None:
    client = Client(enforce_csrf_checks=True)
    data = {"period_days": "90"}
    # No token: a document load is bounced to fetch one, nothing saved.
    response = client.post(f"/app/settings?shop={DOMAIN}", data)
    assert response.status_code == 302
    assert response["Location"].startswith("/auth/session-token")
    assert not AnalyticsSettings.objects.filter(shop=shop).exists()
    # With the token in the action URL and no CSRF cookie at all: accepted.
    response = client.post(f"/app/settings?shop={DOMAIN}&id_token={session_token(DOMAIN)}", data)
    assert response.status_code == 302
    assert AnalyticsSettings.objects.get(shop=shop).period_days == 90


def test_marketing_inputs_give_cac_and_ltv_to_cac(pages: Pages) -> None:
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    bad = pages.post("/app/marketing", {"period_start": "2025-11-01", "period_end": "2025-10-01",
                                        "acquisition_spend": "abc", "conversion_rate": "150"},
                     as_of=AS_OF.isoformat())
    assert bad.status_code == 200
    assert "saved=1" not in bad.get("Location", "")
    html = bad.content.decode()
    assert 'data-error-for="period_end"' in html
    assert 'data-error-for="acquisition_spend"' in html
    assert 'data-error-for="conversion_rate"' in html
    assert not MarketingInput.objects.exists()
    ok = pages.post("/app/marketing", {"period_start": "2025-11-01", "period_end": "2026-11-01",
                                       "acquisition_spend": "1000", "retention_spend": "200",
                                       "conversion_rate": "2"}, as_of=AS_OF.isoformat())
    assert ok.status_code == 302
    page = pages.get("/app/marketing", as_of=AS_OF.isoformat()).content.decode()
    shown = figures(page)
    new = doc["retention"]["new_customers"]
    assert new > 0
    cac = Decimal(1000) / new
    assert Decimal(shown["marketing.cac"]) == cac.quantize(Decimal("0.01"))
    clv = Decimal(doc["clv"]["clv"])
    assert Decimal(shown["marketing.max_cost_per_click"]) == (clv * 2 / 100).quantize(Decimal("0.01"))
    assert "3 : 1 guide" in page


def test_data_page_status_progress_endpoint_and_history_notice(db: None, client: Client) -> None:
    shop = shop_install("limited.myshopify.com", scopes="read_orders,read_customers")
    pages = Pages(client, shop)
    html = pages.get("/app/data").content.decode()
    assert 'data-testid="history-notice"' in html
    assert "read_all_orders" in html
    assert "Customers compared" in html
    assert "Webhooks, last 24 hours" in html
    token = session_token(shop.domain)
    response = client.get(f"/app/data/status.json?shop={shop.domain}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["history_limited"] is True
    assert body["backfill"] is None
    refused = client.get("/app/data/status.json", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert refused.status_code == 401


def test_empty_shop_says_what_to_do(db: None, client: Client) -> None:
    shop = shop_install("empty.myshopify.com")
    html = Pages(client, shop).get("/app/overview").content.decode()
    assert 'data-testid="empty-state"' in html
    assert "first import" in html


@pytest.mark.parametrize("name", ["overview", "rfm", "clv", "retention", "lifecycle", "marketing"])
def test_every_report_page_shows_the_empty_state_for_a_shop_without_orders(db: None, client: Client,
                                                                          name: str) -> None:
    shop = shop_install("empty.myshopify.com")
    html = Pages(client, shop).get(f"/app/{name}").content.decode()
    assert 'data-testid="empty-state"' in html, name
    empty = html.split('data-testid="empty-state"')[1].split("</section>")[0]
    # No sync has run: the title says so, the body says where to look.
    assert '<h2 id="empty-title">Waiting for the first import</h2>' in empty, name
    assert "Open the Data page to see its state." in empty, name


def test_page_params_match_the_analytics_selector(shop: Shop) -> None:
    from analytics import selectors
    from analytics.views import report_params

    AnalyticsSettings.objects.create(shop=shop, period_days=180, activity_window_days=200, rfm_scale=5,
                                     rfm_method="range", order_value_basis="total", refund_dating="refund_date",
                                     lifespan_override_years=Decimal("2.25"), excluded_order_tags=["b2b"])
    s = selectors.analytics_settings_get(shop=shop)
    for as_of, days in ((AS_OF, 90), (None, None)):
        ours = report_params(s, shop=shop, as_of=as_of, period_days=days)
        theirs = selectors.report_params_for(shop=shop, as_of=as_of, period_days=days)
        assert ours == theirs
        assert ours.settings_hash() == theirs.settings_hash()


def test_the_page_a_form_redirects_to_reads_afresh(pages: Pages) -> None:
    # Another worker saved the inputs: this process's brief reuse must not hide them on the redirect.
    first = pages.get("/app/marketing", as_of=AS_OF.isoformat()).content.decode()
    assert 'data-testid="mk-empty"' in first
    MarketingInput.objects.create(shop=pages.shop, period_start=date(2025, 11, 1), period_end=AS_OF,
                                  acquisition_spend=Decimal(500))
    after = pages.get("/app/marketing", as_of=AS_OF.isoformat(), saved="1").content.decode()
    assert 'data-testid="mk-empty"' not in after
    assert "Saved." in after


@pytest.mark.parametrize("name", ["overview", "rfm", "clv", "retention", "lifecycle", "marketing", "data"])
def test_every_figure_a_page_names_equals_the_document(pages: Pages, name: str) -> None:
    html = pages.get(f"/app/{name}", as_of=AS_OF.isoformat()).content.decode()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    shown = figures(html)
    assert figures_mismatched(shown, doc) == {}
    expected = {"rfm": ["rfm.groups.middle.clv.revenue", "rfm.groups.bottom.customers", "rfm.grid.r=1,f=1.customers",
                        "rfm.grid.r=3,f=3.revenue", "shopify.rfm_crosstab.top.CHAMPIONS"],
                "clv": ["clv.clv", "rfm.groups.top.clv.aov", "lifecycle.retention.clv.purchase_frequency"],
                "lifecycle": [f"lifecycle.{s}.{k}" for s in ("purchase", "retention", "advocacy", "at_risk", "lapsed")
                              for k in ("customers", "aov", "orders_per_customer_year", "clv.clv")],
                "data": ["shopify.reconciliation.customers_compared", "shopify.reconciliation.customers_differing",
                         "shopify.reconciliation.orders_differ", "shopify.reconciliation.spend_differ",
                         "shopify.reconciliation.causes.cancellations", "shopify.reconciliation.causes.unexplained"]}
    assert set(expected.get(name, [])) <= set(shown)


def test_sample_size_warnings_show_a_banner_and_small_sample_badges(pages: Pages) -> None:
    from django.utils.html import escape

    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    assert doc["warnings"]
    for name in ("overview", "rfm", "clv", "retention", "lifecycle"):
        html = pages.get(f"/app/{name}", as_of=AS_OF.isoformat()).content.decode()
        banner = html.split('aria-labelledby="warnings-title"')[1].split("</section>")[0]
        assert "Read with care" in banner, name
        for warning in doc["warnings"]:
            assert f"<li>{escape(warning)}</li>" in banner, (name, warning)
    # A badge on exactly the rows METRICS.md calls small: groups and stages under 30, cohorts under 10.
    rfm = pages.get("/app/rfm", as_of=AS_OF.isoformat()).content.decode()
    for g in ("top", "middle", "bottom"):
        row = rfm.split(f'<tr data-row="{g}">')[1].split("</tr>")[0]
        assert ("small sample" in row) == (0 < doc["rfm"]["groups"][g]["customers"] < 30), g
    life = pages.get("/app/lifecycle", as_of=AS_OF.isoformat()).content.decode()
    for stage, node in doc["lifecycle"].items():
        if not isinstance(node, dict) or "customers" not in node:
            continue
        row = life.split(f'<tr data-stage="{stage}">')[1].split("</tr>")[0]
        assert ("small sample" in row) == (0 < node["customers"] < 30), stage
    clv = pages.get("/app/clv", as_of=AS_OF.isoformat()).content.decode()
    table = clv.split("Cumulative revenue per cohort customer (NZD)</caption>")[1].split("</table>")[0]
    small = sum(1 for c in doc["cohorts"] if c.get("small_sample"))
    assert small > 0
    assert table.count("small sample") == small


def test_a_large_shop_has_no_small_sample_badges(predictive_pages: Pages) -> None:
    html = predictive_pages.get("/app/rfm", as_of=PREDICTIVE_AS_OF.isoformat()).content.decode()
    doc = services.report_document(shop=predictive_pages.shop, as_of=PREDICTIVE_AS_OF, period_days=365)
    assert min(doc["rfm"]["groups"][g]["customers"] for g in ("top", "middle", "bottom")) >= 30
    groups = html.split('id="groups-title"')[1].split("</section>")[0]
    assert "small sample" not in groups


def test_empty_state_while_the_first_import_runs_shows_its_progress(db: None, client: Client) -> None:
    from django.utils import timezone

    from sync.models import SyncRun

    shop = shop_install("importing.myshopify.com")
    SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.RUNNING,
                           started_at=timezone.now(), objects_seen=40, object_count=160)
    html = Pages(client, shop).get("/app/overview").content.decode()
    empty = html.split('data-testid="empty-state"')[1].split("</section>")[0]
    assert "Importing your order history" in empty
    assert "the Data page shows its progress" in empty
    assert '<progress max="100" value="25" aria-label="Import progress">25%</progress>' in empty
    assert "40 of 160 records read" in empty


def test_data_page_shows_sync_times_in_the_shops_zone_and_webhook_health(pages: Pages, settings) -> None:
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    from shops.models import WebhookEvent
    from sync.models import SyncRun

    finished = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)  # 14:00 in Auckland (NZDT, UTC+13)
    SyncRun.objects.create(shop=pages.shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.SUCCEEDED,
                           started_at=finished - timedelta(minutes=5), finished_at=finished)
    now = timezone.now()
    for i, status in enumerate(("processed", "processed", "failed", "received")):
        event = WebhookEvent.objects.create(webhook_id=f"hook-{i}", shop=pages.shop, shop_domain=DOMAIN,
                                            topic="orders/create", status=status)
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=now - timedelta(hours=2 + i))
    # Two days old: outside the last 24 hours' counts.
    WebhookEvent.objects.filter(webhook_id="hook-0").update(received_at=now - timedelta(days=2))
    html = pages.get("/app/data", as_of=AS_OF.isoformat()).content.decode()
    every = settings.SYNC_INCREMENTAL_EVERY
    assert 'data-testid="last-sync">2026-11-01 14:00 NZDT<' in html
    expected_next = (finished + every).astimezone(ZoneInfo("Pacific/Auckland"))
    assert f'data-testid="next-sync">{expected_next:%Y-%m-%d %H:%M} NZDT<' in html
    hooks = dict(re.findall(r'data-hook="([a-z-]+)">(.*?)</dd>', html))
    assert hooks["received"] == "3"
    assert hooks["processed"] == "1"
    assert hooks["pending"] == "1"
    assert hooks["failed"] == '<span aria-hidden="true">✖</span> 1'
    latest = (now - timedelta(hours=3)).astimezone(ZoneInfo("Pacific/Auckland"))
    assert hooks["last-received"] == f"{latest:%Y-%m-%d %H:%M} {latest.tzname()}"
    assert "No webhooks in the last day" not in html


def test_marketing_shows_ltv_to_cac_against_the_guide_and_return_per_customer(pages: Pages) -> None:
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    clv, new = Decimal(doc["clv"]["clv"]), doc["retention"]["new_customers"]
    assert new > 0
    period = {"period_start": "2025-11-01", "period_end": "2026-11-01"}
    # Cheap acquisition: LTV:CAC at or above 3:1; dear acquisition: below it.
    for spend, healthy in ((clv * new / 10, True), (clv * new, False)):
        spend = spend.quantize(Decimal("0.01"))
        response = pages.post("/app/marketing", {**period, "acquisition_spend": str(spend)}, as_of=AS_OF.isoformat())
        assert response.status_code == 302
        html = pages.get("/app/marketing", as_of=AS_OF.isoformat(), saved="1").content.decode()
        shown = figures(html)
        cac = spend / new
        ltv = clv / cac  # 10 or 1, up to the rounding of the spend
        assert abs(Decimal(shown["marketing.ltv_to_cac"]) - ltv) <= Decimal("0.005")
        assert abs(Decimal(shown["marketing.return_per_customer"]) - (clv - cac)) <= Decimal("0.005")
        assert f"{Decimal(shown['marketing.ltv_to_cac']):.2f} : 1" in html
        if healthy:
            assert "At or above the 3 : 1 guide." in html
        else:
            assert "Below the 3 : 1 guide" in html


PREDICTIVE_AS_OF = date(2026, 1, 1)


@pytest.fixture
def predictive_pages(db: None, client: Client) -> Pages:
    """A shop whose purchase histories follow BG/NBD (600 customers): the models fit."""
    from sync.models import Order
    from tests.analytics.predictive.test_service import simulated_orders

    shop = shop_install("simulated.myshopify.com")
    Order.objects.bulk_create(simulated_orders(shop, 600, seed=3))
    return Pages(client, shop)


def test_clv_page_shows_the_predictive_figures_when_the_models_fit(predictive_pages: Pages) -> None:
    shop = predictive_pages.shop
    html = predictive_pages.get("/app/clv", as_of=PREDICTIVE_AS_OF.isoformat()).content.decode()
    doc = services.report_document(shop=shop, as_of=PREDICTIVE_AS_OF, period_days=365)
    predictive = doc["predictive"]
    assert predictive["available"], predictive
    section = html.split('data-testid="predictive"')[1].split("</section>")[0]
    shown = figures(section)
    totals = {"predictive.totals.predicted_clv_per_customer", "predictive.totals.predicted_clv",
              "predictive.totals.expected_purchases", "predictive.totals.expected_alive"}
    columns = ("customers", "expected_alive", "expected_purchases", "predicted_clv", "predicted_clv_per_customer")
    groups = {f"predictive.groups.{g}.{c}" for g in predictive["groups"] for c in columns}
    buckets = {f"predictive.backtest.by_frequency.frequency={b['frequency']}.{c}"
               for b in predictive["backtest"]["by_frequency"] for c in ("customers", "actual_mean", "predicted_mean")}
    assert {"top", "middle", "bottom"} <= set(predictive["groups"])
    assert len(buckets) == 8 * 3
    assert set(shown) == totals | groups | buckets
    assert figures_mismatched(shown, doc) == {}
    # The groups' customers add up to the shop's.
    assert sum(int(shown[f"predictive.groups.{g}.customers"]) for g in predictive["groups"]) == \
        predictive["totals"]["customers"]
    per_customer = Decimal(predictive["totals"]["predicted_clv_per_customer"])
    assert f"NZD {per_customer:,.2f}" in section
    assert f"over the next {predictive['parameters']['horizon_days']} days, discounted at 10% a year" in section
    for name, value in predictive["bgnbd"].items():
        assert f"<dt>BG/NBD {name}</dt><dd>{Decimal(str(value)):,.4f}</dd>" in section
    backtest = predictive["backtest"]
    assert backtest["available"], backtest
    actual = backtest["holdout_repeat_purchases"]["actual"]
    assert f"{actual:,} repeat purchases happened" in section
    assert "Backtest: cumulative repeat purchases" in section
    assert "Backtest: repeat purchases per customer in the holdout, by purchases in calibration" in section
    diagnostics = predictive["diagnostics"]["bgnbd"]
    assert (f"{diagnostics['customers']:,} customers ({diagnostics['repeat_customers']:,} with repeat purchases"
            in section)
    assert f"log-likelihood {Decimal(str(diagnostics['log_likelihood'])):,.2f}" in section


def test_rfm_list_shows_each_customers_predicted_clv(predictive_pages: Pages) -> None:
    from analytics.models import AnalyticsSnapshot, CustomerScore

    shop = predictive_pages.shop
    html = predictive_pages.get("/app/rfm", as_of=PREDICTIVE_AS_OF.isoformat(), sort="predicted_clv").content.decode()
    assert '>Predicted CLV <span aria-hidden="true">▼</span>' in html
    snapshot = AnalyticsSnapshot.objects.get(shop=shop, as_of=PREDICTIVE_AS_OF)
    stored = dict(CustomerScore.objects.filter(rows_id=snapshot.rows_id)
                  .values_list("customer_shopify_id", "predicted_clv"))
    rows = re.findall(r'<tr data-customer="(\d+)">.*?data-predicted-clv="([^"]*)">([^<]*)<', html, re.S)
    assert len(rows) == 50
    for cid, value, text in rows:
        assert Decimal(value) == stored[int(cid)]
        assert text == f"NZD {stored[int(cid)]:,.2f}"
    values = [Decimal(v) for _, v, _ in rows]
    assert values == sorted(values, reverse=True)
    assert values[0] == max(v for v in stored.values() if v is not None)


def test_rfm_csv_keeps_the_group_filter(pages: Pages) -> None:
    html = pages.get("/app/rfm", as_of=AS_OF.isoformat(), group="middle").content.decode()
    link = re.search(r'href="(/app/rfm\.csv\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert parse_qs(urlparse(link).query)["group"] == ["middle"]
    response = pages.get("/app/rfm.csv", as_of=AS_OF.isoformat(), group="middle")
    assert response["Content-Disposition"].endswith('-2026-11-01-middle.csv"')
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    assert len(lines) == 1 + doc["rfm"]["groups"]["middle"]["customers"]
    column = lines[0].split(",").index("rfm_group")
    assert {line.split(",")[column] for line in lines[1:]} == {"middle"}


def test_csv_and_status_endpoints_stay_within_their_query_budgets(pages: Pages, client: Client,
                                                                  django_assert_max_num_queries) -> None:
    services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    # Session check, settings, the snapshot and its rows present, then one read of the rows.
    with django_assert_max_num_queries(6):
        response = pages.get("/app/rfm.csv", as_of=AS_OF.isoformat())
        lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert len(lines) > 10
    token = session_token(DOMAIN)
    # Session check, then the sync status: last sync, last backfill, running backfill, webhook counts and latest.
    with django_assert_max_num_queries(7):
        response = client.get(f"/app/data/status.json?shop={DOMAIN}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def chart_table(html: str, caption: str) -> tuple[list[str], list[list[str]]]:
    """A chart's table fallback by its caption: the header's texts and each body row's texts."""
    tables = {unescape(c): body for c, body in re.findall(
        r'<table class="data-table"><caption>(.*?)</caption>(.*?)</table>', html, re.S)}
    assert caption in tables, sorted(tables)
    body = tables[caption]

    def cells(row: str) -> list[str]:
        return [unescape(c) for c in re.findall(r"<t[hd](?: [^>]*)?>(.*?)</t[hd]>", row, re.S)]

    head = body.split("</thead>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    return cells(head), [cells(row) for row in rows]


def test_chart_tables_hold_the_documents_values(pages: Pages) -> None:
    from analytics.charts import plain
    from analytics.templatetags.report import money_compact
    from tests.analytics.factories import orders_add

    # Customer 5000 orders monthly on the 1st; a second order in May 2026 makes that month's orders
    # differ from its customers, so the two series cannot stand in for each other.
    orders_add(pages.shop, [{"customer": 5000, "at": "2026-05-20 12:00", "value": 10}])
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    one_place = lambda v: "–" if v is None else f"{float(v):.1f}"  # noqa: E731 - as the Retention view formats
    # Overview, monthly trend: doc["trend"], one row per month (a partial month marked *).
    overview = pages.get("/app/overview", as_of=AS_OF.isoformat()).content.decode()
    trend = doc["trend"]
    assert len(trend) == 24
    assert any(row["orders"] != row["customers"] for row in trend)
    months = [row["month"] + ("*" if row["partial"] else "") for row in trend]
    head, rows = chart_table(overview, "Revenue by month")
    assert head == ["Month", "Revenue (NZD)"]
    assert rows == [[m, money_compact(float(row["revenue"]), "")] for m, row in zip(months, trend, strict=True)]
    head, rows = chart_table(overview, "Orders and customers by month")
    assert head == ["Month", "Orders", "Customers"]
    assert rows == [[m, plain(row["orders"]), plain(row["customers"])] for m, row in zip(months, trend, strict=True)]

    retention = pages.get("/app/retention", as_of=AS_OF.isoformat()).content.decode()
    # CRR and churn over time: doc["retention"]["series"], one row per period end.
    series = doc["retention"]["series"]
    assert len(series) == 24
    assert len({p["crr"] for p in series}) > 1  # the fixture's customers all stay: churn is 0 throughout
    head, rows = chart_table(retention, "Customer retention rate and churn rate of the period ending each month")
    assert head == ["Period ending", "CRR %", "Churn %"]
    assert rows == [[p["end"], one_place(p["crr"]), one_place(p["churn_rate"])] for p in series]
    # Time between orders: doc["retention"]["gap_histogram"], one row per bin.
    hist = doc["retention"]["gap_histogram"]
    assert sum(b["gaps"] for b in hist) > 0
    head, rows = chart_table(retention, "Time between orders")
    assert head == ["Days apart", "Gaps between consecutive orders"]
    assert rows == [[f"{b['min_days']}+ days" if b["max_days"] is None else f"{b['min_days']}–{b['max_days']} days",
                     plain(b["gaps"])] for b in hist]
    # Cohort retention: doc["cohorts"][i]["retention"], a row per cohort, a column per month since it.
    cohorts = doc["cohorts"]
    width = max(len(c["retention"]) for c in cohorts)
    assert any(v for c in cohorts for v in c["retention"][1:])
    head, rows = chart_table(
        retention, "Cohort retention: share of each first-order month's customers ordering in month M (%)")
    assert head == ["Cohort \\ Month", *[f"M{m}" for m in range(width)]]
    assert len(rows) == len(cohorts)
    for row, c in zip(rows, cohorts, strict=True):
        assert row[0] == f"{c['cohort']} (n={c['customers']}{', small' if c['small_sample'] else ''})"
        expected = ["" if v is None else f"{v:.0f}" for v in c["retention"]]
        assert row[1:] == expected + [""] * (width - len(expected)), c["cohort"]
    # Cumulative revenue per cohort customer, the same way.
    head, rows = chart_table(retention, "Cumulative revenue per cohort customer (NZD)")
    for row, c in zip(rows, cohorts, strict=True):
        expected = ["" if v is None else money_compact(v, "") for v in c["revenue_per_customer"]]
        assert row[1:] == expected + [""] * (width - len(expected)), c["cohort"]


def test_retention_over_time_says_what_its_points_are(pages: Pages) -> None:
    # The chart plots doc["retention"]["series"]: periods of the report's length ending at the last
    # 24 month starts, computed from the order history (not one point per stored snapshot).
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=90)
    html = pages.get("/app/retention", as_of=AS_OF.isoformat(), period="90").content.decode()
    section = html.split('id="time-title"')[1].split("</section>")[0]
    assert "snapshot" not in section
    assert "nightly" not in section
    note = section.split('data-testid="series-note">')[1].split("</p>")[0]
    assert len(doc["retention"]["series"]) == 24
    assert "the CRR and churn of the 90 days (the report's length) before a month start" in note
    assert "one for each of the last 24 month starts up to the as-of date" in note
    assert "computed from your order history" in note
    assert doc["retention"]["series"][-1]["end"] == AS_OF.isoformat()  # so the last point is this period


def test_overview_cards_carry_their_monthly_trend(pages: Pages) -> None:
    """Each card's trend holds the document's monthly figures (per whole calendar month from `trend`,
    CRR and churn per period from `retention.series`); CLV and the repeat purchase rate exist only
    per period and have none."""
    from analytics.templatetags.report import money_compact

    html = pages.get("/app/overview", as_of=AS_OF.isoformat()).content.decode()
    doc = services.report_document(shop=pages.shop, as_of=AS_OF, period_days=365)
    trend, series = [r for r in doc["trend"] if not r.get("partial")], doc["retention"]["series"]
    months = [r["month"] for r in trend]

    def ratio(a: object, b: int) -> str:
        return "–" if not b else f"{float(str(a)) / b:.2f}"

    expected = {
        "clv.revenue": (months, [money_compact(r["revenue"], "") for r in trend]),
        "clv.orders": (months, [f"{r['orders']:,}" for r in trend]),
        "clv.customers": (months, [f"{r['customers']:,}" for r in trend]),
        "clv.aov": (months, [money_compact(r["aov"], "") if r["aov"] is not None else "–" for r in trend]),
        "clv.purchase_frequency": (months, [ratio(r["orders"], r["customers"]) for r in trend]),
        "clv.customer_value": (months, [money_compact(float(r["revenue"]) / r["customers"], "") if r["customers"]
                                        else "–" for r in trend]),
        "retention.crr": ([p["end"] for p in series], ["–" if p["crr"] is None else f"{p['crr']:.1f}%"
                                                       for p in series]),
        "retention.churn_rate": ([p["end"] for p in series], ["–" if p["churn_rate"] is None
                                                              else f"{p['churn_rate']:.1f}%" for p in series]),
    }
    assert len(months) == 24  # AS_OF is a month start: no month is cut short
    assert len(series) == 24
    for key, _, _, _ in views.OVERVIEW_CARDS:
        article = html.split(f'data-key="{key}"')[1].split("</article>")[0]
        if key not in expected:
            assert "data-trend" not in article, key
            continue
        assert f'data-trend="{key}"' in article
        _, rows = chart_table(article, next(c for c in re.findall(r"<caption>(.*?)</caption>", article)))
        labels, values = expected[key]
        assert [r[0] for r in rows] == labels, key
        assert [r[1] for r in rows] == values, key
    # The sparkline says in words where it starts and ends.
    revenue = html.split('data-trend="clv.revenue"')[1]
    last = next(i for i in range(len(trend) - 1, -1, -1) if trend[i]["revenue"] is not None)
    assert f"to {money_compact(trend[last]['revenue'], '')} in {months[last]}" in revenue


def test_card_trends_leave_out_a_month_the_as_of_date_cuts_short(pages: Pages) -> None:
    html = pages.get("/app/overview", as_of="2026-10-15").content.decode()
    doc = services.report_document(shop=pages.shop, as_of=date(2026, 10, 15), period_days=365)
    assert doc["trend"][-1] == {**doc["trend"][-1], "month": "2026-10", "partial": True}
    article = html.split('data-key="clv.orders"')[1].split("</article>")[0]
    _, rows = chart_table(article, "Orders, by whole calendar month")
    assert [r[0] for r in rows] == [r["month"] for r in doc["trend"][:-1]]
    assert rows[-1] == ["2026-09", f"{doc['trend'][-2]['orders']:,}"]
