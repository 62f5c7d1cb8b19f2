"""Junk in a report page's query or forms gets a clear answer (a field error, the last page), never a 500.

Regression cases of issue 14 first, then Hypothesis fuzzing of every page's query parameters and of
the Settings and Marketing forms.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import services
from analytics.models import AnalyticsSettings, MarketingInput
from shops.models import Shop
from tests.pages.conftest import AS_OF, Pages, history_add, shop_install

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def many(db: None, client: Client) -> Pages:
    """A shop with three pages of customers in the RFM list (50 a page)."""
    shop = shop_install()
    history_add(shop, customers=120)
    return Pages(client, shop)


def shown_page(html: str) -> tuple[int, int, int]:
    """(page, pages, customer rows) as the RFM page shows them."""
    found = re.search(r"page (\d+) of (\d+)\.", html)
    assert found is not None
    return int(found[1]), int(found[2]), len(re.findall(r'<tr data-customer="\d+">', html))


@pytest.mark.parametrize(("page", "expected"), [("99999999999999999999", 3), ("4", 3), ("-1", 3), ("0", 3),
                                                 ("abc", 1), ("1e9", 1), ("2", 2), ("9" * 5000, 1)])
def test_rfm_page_number_out_of_range_gets_the_last_page(many: Pages, page: str, expected: int) -> None:
    response = many.get("/app/rfm", as_of=AS_OF.isoformat(), page=page)
    assert response.status_code == 200
    number, pages, rows = shown_page(response.content.decode())
    doc = services.report_document(shop=many.shop, as_of=AS_OF, period_days=365)
    total = int(doc["clv"]["customers"])
    assert pages == 3 == -(-total // 50)
    assert number == expected
    assert rows == (total - 100 if expected == 3 else 50)


@pytest.mark.parametrize("spend", ["1e400", "12345678901234567890123456", "1e999999999", "-1e400"])
def test_marketing_spend_out_of_range_is_a_field_error(pages: Pages, spend: str) -> None:
    response = pages.post("/app/marketing", {"period_start": "2025-11-01", "period_end": "2026-11-01",
                                             "acquisition_spend": spend, "retention_spend": spend,
                                             "conversion_rate": "2"}, as_of=AS_OF.isoformat())
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-error-for="acquisition_spend"' in html
    assert 'data-error-for="retention_spend"' in html
    assert not MarketingInput.objects.exists()


def test_marketing_spend_as_large_as_the_column_holds_is_saved(shop: Shop) -> None:
    _, errors = services.marketing_inputs_update(shop=shop, data={
        "period_start": "2025-11-01", "period_end": "2026-11-01", "acquisition_spend": "1e16"})
    assert errors == {"acquisition_spend": ["Enter a number less than 10,000,000,000,000,000."]}
    row, errors = services.marketing_inputs_update(shop=shop, data={
        "period_start": "2025-11-01", "period_end": "2026-11-01", "acquisition_spend": "9999999999999999.9999"})
    assert errors == {}
    assert row is not None
    row.refresh_from_db()
    assert row.acquisition_spend == Decimal("9999999999999999.9999")


SETTINGS_OK = {"period_days": "365", "activity_window_days": "365", "order_value_basis": "subtotal",
               "refund_dating": "order_date", "rfm_scale": "3", "rfm_method": "quantile",
               "lifespan_override_years": "", "excluded_order_tags": "", "predictive_time_unit": "weeks",
               "predictive_horizon_days": "365", "predictive_discount_rate_pct": "10"}


@pytest.mark.parametrize("field", ["period_days", "activity_window_days", "lifespan_override_years",
                                   "predictive_horizon_days", "predictive_discount_rate_pct"])
@pytest.mark.parametrize("value", ["1e400", "9" * 26, "NaN", "Infinity", "-Infinity", "9" * 5000])
def test_settings_huge_or_non_finite_values_are_field_errors(pages: Pages, field: str, value: str) -> None:
    response = pages.post("/app/settings", {**SETTINGS_OK, field: value})
    assert response.status_code == 200
    assert f'data-error-for="{field}"' in response.content.decode()
    assert not AnalyticsSettings.objects.filter(shop=pages.shop).exists()


def test_settings_tag_with_a_nul_character_is_a_field_error(pages: Pages) -> None:
    response = pages.post("/app/settings", {**SETTINGS_OK, "excluded_order_tags": "wholesale, b\x00d"})
    assert response.status_code == 200
    assert 'data-error-for="excluded_order_tags"' in response.content.decode()
    assert not AnalyticsSettings.objects.filter(shop=pages.shop).exists()


# --- fuzzing ------------------------------------------------------------------------------------------------------

NUMBER_JUNK = st.sampled_from(["", " ", "-1", "0", "1", "99999999999999999999", "1e9", "1e400", "-1e400",
                               "1e999999999", "1e-999999999", "NaN", "sNaN", "inf", "-Infinity", "9" * 26, "9" * 5000,
                               "1,200.50", "0.00001", "1_000", "abc", "\x00"])


def junk(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A field's valid values, numbers out of every range and arbitrary text, in about equal shares."""
    return st.one_of(valid, NUMBER_JUNK, st.text(max_size=20))


ISO_DATES = st.dates().map(lambda d: d.isoformat())
QUERY = st.fixed_dictionaries({}, optional={
    "period": junk(st.sampled_from(["90", "180", "365", "730", "custom"])),
    "days": junk(st.integers(min_value=-(10**30), max_value=10**30).map(str)),
    "as_of": junk(ISO_DATES | st.sampled_from(["2026-11-01", "2026-10-01"])),
    "page": junk(st.integers().map(str)),
    "sort": junk(st.sampled_from(["total", "recency", "monetary", "predicted_clv"])),
    "dir": junk(st.just("asc")),
    "group": junk(st.sampled_from(["top", "middle", "bottom"])),
    "saved": junk(st.just("1")),
})
REPORT_PAGES = ["/app/overview", "/app/rfm", "/app/rfm.csv", "/app/clv", "/app/retention", "/app/lifecycle",
                "/app/marketing", "/app/data", "/app/data/status.json", "/app/settings"]


@FUZZ
@given(path=st.sampled_from(REPORT_PAGES), query=QUERY)
def test_fuzz_report_query_parameters_never_give_a_500(pages: Pages, path: str, query: dict[str, str]) -> None:
    response = pages.get(path, **query)
    assert response.status_code == 200
    if path == "/app/rfm.csv":
        b"".join(response.streaming_content)  # the rows are read as the response is sent


NUMBERS = st.one_of(st.integers().map(str), st.decimals(allow_nan=True, allow_infinity=True).map(str),
                    st.floats().map(str), st.integers(min_value=-500, max_value=500).map(lambda e: f"1e{e}"),
                    st.integers(min_value=10**15, max_value=10**40).map(str))
SETTINGS_JUNK = {
    "period_days": junk(NUMBERS), "activity_window_days": junk(NUMBERS),
    "order_value_basis": junk(st.sampled_from(["subtotal", "total"])),
    "refund_dating": junk(st.sampled_from(["order_date", "refund_date"])),
    "rfm_scale": junk(st.sampled_from(["3", "5"])), "rfm_method": junk(st.sampled_from(["quantile", "range"])),
    "lifespan_override_years": junk(NUMBERS), "excluded_order_tags": junk(st.text(max_size=40)),
    "predictive_time_unit": junk(st.sampled_from(["days", "weeks", "months"])),
    "predictive_horizon_days": junk(NUMBERS), "predictive_discount_rate_pct": junk(NUMBERS),
}


@FUZZ
@given(changes=st.fixed_dictionaries({}, optional=SETTINGS_JUNK))
def test_fuzz_settings_form_saves_in_range_or_answers_field_errors(pages: Pages, changes: dict[str, str]) -> None:
    response = pages.post("/app/settings", {**SETTINGS_OK, **changes})
    assert response.status_code in (200, 302)
    row = AnalyticsSettings.objects.filter(shop=pages.shop).first()
    if response.status_code == 200:
        assert "data-error-for=" in response.content.decode()
    else:
        assert row is not None
        assert 7 <= row.period_days <= 3660
        assert 7 <= row.activity_window_days <= 3660
        assert 30 <= row.predictive_horizon_days <= 1825
        assert 0 <= row.predictive_discount_rate_pct <= 100
        assert row.lifespan_override_years is None or 0 < row.lifespan_override_years <= 50


# Mostly a valid period, so that the amounts are what gets checked.
PERIODS = st.one_of(st.lists(st.dates(), min_size=2, max_size=2, unique=True).map(sorted),
                    st.tuples(st.dates(), st.dates()))
MARKETING_AMOUNTS = st.fixed_dictionaries({}, optional={
    "acquisition_spend": junk(NUMBERS), "retention_spend": junk(NUMBERS), "conversion_rate": junk(NUMBERS)})


@FUZZ
@given(period=PERIODS | st.tuples(junk(ISO_DATES), junk(ISO_DATES)), amounts=MARKETING_AMOUNTS)
def test_fuzz_marketing_form_saves_in_range_or_answers_field_errors(pages: Pages, period: tuple[Any, Any],
                                                                     amounts: dict[str, str]) -> None:
    data = {"period_start": str(period[0]), "period_end": str(period[1]), **amounts}
    response = pages.post("/app/marketing", data, as_of=AS_OF.isoformat())
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert "data-error-for=" in response.content.decode()
    else:
        row = MarketingInput.objects.filter(shop=pages.shop).latest("updated_at")
        for spend in (row.acquisition_spend, row.retention_spend):
            assert spend is None or 0 <= spend < 10**16
        assert row.conversion_rate is None or 0 < row.conversion_rate <= 100
        assert row.period_start < row.period_end
    # The page shows whatever was saved for its period.
    assert pages.get("/app/marketing", as_of=AS_OF.isoformat()).status_code == 200


@pytest.mark.parametrize("as_of", ["0001-01-01", "0001-01-08", "1999-12-31"])
def test_as_of_before_2000_is_a_field_error_and_the_default_period_is_shown(pages: Pages, as_of: str) -> None:
    response = pages.get("/app/overview", as_of=as_of, period="custom", days="3660")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ensure this value is greater than or equal to 2000-01-01." in html
    assert 'min="2000-01-01"' in html
