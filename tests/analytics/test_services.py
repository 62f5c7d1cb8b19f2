"""Settings and marketing validation, snapshots, the report command, CSV export, segment rules."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import export, services
from analytics.metrics.numbers import decimal_money, money
from analytics.metrics.segments import SEGMENT_RULES, segment_for
from analytics.models import AnalyticsSettings, AnalyticsSnapshot, CustomerScore
from tests.analytics.factories import customers_add, orders_add, shop_make

pytestmark = pytest.mark.django_db

AS_OF = date(2026, 1, 1)


def test_settings_update_saves_valid_values():
    shop = shop_make()
    saved, errors = services.settings_update(shop=shop, data={
        "period_days": "180", "activity_window_days": "90", "order_value_basis": "total",
        "refund_dating": "refund_date", "rfm_scale": "5", "rfm_method": "range",
        "lifespan_override_years": "2.5", "excluded_order_tags": "wholesale, B2B ,wholesale"})
    assert errors == {}
    row = AnalyticsSettings.objects.get(shop=shop)
    assert saved is not None
    assert saved.pk == row.pk
    assert (row.period_days, row.activity_window_days, row.order_value_basis, row.refund_dating, row.rfm_scale,
            row.rfm_method, row.lifespan_override_years, row.excluded_order_tags) == (
        180, 90, "total", "refund_date", 5, "range", Decimal("2.50"), ["wholesale", "B2B"])
    services.settings_update(shop=shop, data={"lifespan_override_years": ""})
    row.refresh_from_db()
    assert row.lifespan_override_years is None
    assert row.period_days == 180


def test_settings_update_rejects_and_saves_nothing():
    shop = shop_make()
    saved, errors = services.settings_update(shop=shop, data={
        "period_days": "3", "activity_window_days": "abc", "order_value_basis": "gross", "rfm_scale": "4",
        "rfm_method": "kmeans", "refund_dating": "", "lifespan_override_years": "-1",
        "excluded_order_tags": ["x" * 256]})
    assert saved is None
    assert set(errors) == {"period_days", "activity_window_days", "order_value_basis", "rfm_scale", "rfm_method",
                           "refund_dating", "lifespan_override_years", "excluded_order_tags"}
    assert not AnalyticsSettings.objects.filter(shop=shop).exists()
    _, errors = services.settings_update(shop=shop, data={"lifespan_override_years": "1.234"})
    assert errors == {"lifespan_override_years": ["Use at most 2 decimal places."]}


def test_settings_update_predictive_settings():
    shop = shop_make()
    defaults = services.selectors.analytics_settings_get(shop=shop)
    assert (defaults.predictive_time_unit, defaults.predictive_horizon_days,
            defaults.predictive_discount_rate_pct) == ("days", 365, Decimal(10))
    saved, errors = services.settings_update(shop=shop, data={
        "predictive_time_unit": "weeks", "predictive_horizon_days": "730", "predictive_discount_rate_pct": "7.5"})
    assert errors == {}
    row = AnalyticsSettings.objects.get(shop=shop)
    assert (row.predictive_time_unit, row.predictive_horizon_days, row.predictive_discount_rate_pct) == (
        "weeks", 730, Decimal("7.50"))
    for data, message in (
        ({"predictive_time_unit": "months"}, "Choose one of: days, weeks."),
        ({"predictive_horizon_days": "29"}, "Enter a number from 30 to 1825."),
        ({"predictive_horizon_days": "1826"}, "Enter a number from 30 to 1825."),
        ({"predictive_horizon_days": "a year"}, "Enter a whole number."),
        ({"predictive_discount_rate_pct": "-1"}, "Enter a number at least 0 and at most 100."),
        ({"predictive_discount_rate_pct": "100.01"}, "Enter a number at least 0 and at most 100."),
        ({"predictive_discount_rate_pct": "2.125"}, "Use at most 2 decimal places."),
        ({"predictive_discount_rate_pct": ""}, "Enter a number (0 for no discounting)."),
        ({"predictive_discount_rate_pct": "NaN"}, "Enter a number."),
    ):
        saved, errors = services.settings_update(shop=shop, data={**data, "period_days": "90"})
        assert saved is None
        assert errors == {next(iter(data)): [message]}, data
    row.refresh_from_db()
    assert (row.period_days, row.predictive_time_unit, row.predictive_horizon_days,
            row.predictive_discount_rate_pct) == (365, "weeks", 730, Decimal("7.50"))
    _, errors = services.settings_update(shop=shop, data={"predictive_discount_rate_pct": "0",
                                                          "predictive_horizon_days": "30"})
    assert errors == {}


def test_predictive_settings_are_part_of_the_snapshot_key():
    shop = shop_make()
    base = services.selectors.report_params_for(shop=shop, as_of=AS_OF)
    hashes = {base.settings_hash()}
    for data in ({"predictive_time_unit": "weeks"}, {"predictive_horizon_days": "180"},
                 {"predictive_discount_rate_pct": "12"}):
        services.settings_update(shop=shop, data=data)
        hashes.add(services.selectors.report_params_for(shop=shop, as_of=AS_OF).settings_hash())
    assert len(hashes) == 4
    # A rate read back from the database ("12.00") keys the same snapshot as the one typed ("12").
    stored = services.selectors.report_params_for(shop=shop, as_of=AS_OF)
    assert stored.predictive_discount_rate_pct == Decimal("12.00")
    typed = dataclasses.replace(stored, predictive_discount_rate_pct=Decimal(12))
    assert typed.settings_hash() == stored.settings_hash()


def test_marketing_inputs_update():
    shop = shop_make()
    row, errors = services.marketing_inputs_update(shop=shop, data={
        "period_start": "2025-01-01", "period_end": "2026-01-01", "acquisition_spend": "1,200.50",
        "retention_spend": "", "conversion_rate": "2.5"})
    assert errors == {}
    assert row is not None
    assert (row.acquisition_spend, row.retention_spend, row.conversion_rate) == (Decimal("1200.50"), None,
                                                                                 Decimal("2.5"))
    _, errors = services.marketing_inputs_update(shop=shop, data={
        "period_start": "2026-01-01", "period_end": "2025-01-01", "acquisition_spend": "-5",
        "conversion_rate": "0"})
    assert set(errors) == {"period_end", "acquisition_spend", "conversion_rate"}
    _, errors = services.marketing_inputs_update(shop=shop, data={"period_start": "nope"})
    assert set(errors) == {"period_start", "period_end"}


def test_snapshot_is_reused_until_settings_change():
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2025-06-01", "value": "10"}])
    services.report_document(shop=shop, as_of=AS_OF)
    services.report_document(shop=shop, as_of=AS_OF)
    assert AnalyticsSnapshot.objects.filter(shop=shop).count() == 1
    # New orders do not show until a refresh: pages read the stored snapshot.
    orders_add(shop, [{"customer": 2, "at": "2025-06-02", "value": "10"}])
    assert services.report_document(shop=shop, as_of=AS_OF)["clv"]["customers"] == 1
    services.snapshot_refresh(shop=shop, as_of=AS_OF)
    assert services.report_document(shop=shop, as_of=AS_OF)["clv"]["customers"] == 2
    assert AnalyticsSnapshot.objects.filter(shop=shop).count() == 1
    services.settings_update(shop=shop, data={"order_value_basis": "total"})
    services.report_document(shop=shop, as_of=AS_OF)
    assert AnalyticsSnapshot.objects.filter(shop=shop).count() == 2
    services.report_document(shop=shop, as_of=date(2025, 12, 1))
    assert AnalyticsSnapshot.objects.filter(shop=shop).count() == 3


def test_old_snapshots_lose_customer_rows_but_keep_documents():
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2025-06-01", "value": "10"}])
    for day in range(1, 7):
        services.snapshot_refresh(shop=shop, as_of=date(2025, 12, day))
    kept = AnalyticsSnapshot.objects.filter(shop=shop, rows__isnull=False)
    assert kept.count() == services.KEEP_CUSTOMER_ROWS
    assert CustomerScore.objects.filter(rows__shop=shop).count() == services.KEEP_CUSTOMER_ROWS
    doc = services.report_document(shop=shop, as_of=date(2025, 12, 1), include_customers=True)
    assert [c["customer_id"] for c in doc["rfm"]["customers"]] == [1]


CONTRACT_KEYS = {
    "top": {"shop", "currency", "as_of", "period", "settings", "clv", "retention", "rfm", "lifecycle", "cohorts",
            "marketing", "warnings"},
    "period": {"start", "end", "days"},
    "settings": {"order_value_basis", "refund_dating", "activity_window_days", "rfm_scale", "rfm_method",
                 "lifespan_override_years"},
    "clv": {"revenue", "orders", "customers", "guest_orders", "aov", "purchase_frequency", "customer_value",
            "lifespan_years", "lifespan_source", "clv"},
    "retention": {"customers_at_start", "customers_at_end", "new_customers", "crr", "lost_customers", "churn_rate",
                  "repeat_purchase_rate", "repeat_purchase_rate_lifetime", "median_days_between_orders"},
    "customer": {"customer_id", "recency_days", "frequency", "monetary", "r", "f", "m", "total", "group",
                 "shopify_rfm_group"},
    "lifecycle": {"customers", "aov", "orders_per_customer_year"},
    "cohort": {"cohort", "customers", "retention", "revenue_per_customer"},
    "marketing": {"acquisition_spend", "cac", "ltv_to_cac", "return_per_customer", "conversion_rate",
                  "max_cost_per_click", "retention_spend", "retention_cost_per_customer"},
}


def test_report_command_prints_the_contract_document():
    shop = shop_make(domain="cmd-shop.myshopify.com")
    orders_add(shop, [{"customer": 1, "at": "2025-06-01", "value": "12.5"},
                      {"customer": 2, "at": "2025-08-01", "value": "7.25"}])
    customers_add(shop, [{"id": 1, "rfm_group": "LOYAL"}])
    out = io.StringIO()
    call_command("report", "cmd-shop", "--as-of", "2026-01-01", "--period-days", "180", "--rfm-scale", "5",
                 "--rfm-method", "range", "--customers", stdout=out)
    doc = json.loads(out.getvalue())
    assert CONTRACT_KEYS["top"] <= set(doc)
    for key in ("period", "settings", "clv", "retention", "marketing"):
        assert CONTRACT_KEYS[key] <= set(doc[key]), key
    assert set(doc["rfm"]) >= {"scale", "method", "groups", "segments", "customers"}
    assert set(doc["rfm"]["groups"]) == {"top", "middle", "bottom"}
    assert CONTRACT_KEYS["clv"] <= set(doc["rfm"]["groups"]["top"]["clv"])
    assert all(CONTRACT_KEYS["customer"] <= set(c) for c in doc["rfm"]["customers"])
    assert set(doc["lifecycle"]) == {"purchase", "retention", "advocacy", "at_risk", "lapsed"}
    assert all(CONTRACT_KEYS["lifecycle"] <= set(v) for v in doc["lifecycle"].values())
    assert len(doc["cohorts"]) >= 24
    assert all(CONTRACT_KEYS["cohort"] <= set(c) for c in doc["cohorts"])
    assert (doc["shop"], doc["currency"], doc["as_of"]) == ("cmd-shop.myshopify.com", "USD", "2026-01-01")
    assert doc["period"] == {"start": "2025-07-05", "end": "2026-01-01", "days": 180}
    assert (doc["rfm"]["scale"], doc["rfm"]["method"]) == (5, "range")
    # Money as decimal strings, rates as numbers, missing as null.
    assert doc["clv"]["revenue"] == "7.25"
    assert isinstance(doc["retention"]["repeat_purchase_rate"], float)
    assert doc["retention"]["crr"] == 100.0
    assert doc["retention"]["median_days_between_orders"] is None
    assert doc["marketing"]["cac"] is None
    assert doc["settings"]["lifespan_override_years"] is None
    assert doc["rfm"]["customers"][0]["customer_id"] == 2


def test_report_command_errors():
    with pytest.raises(CommandError, match="no shop"):
        call_command("report", "missing-shop", "--as-of", "2026-01-01", stdout=io.StringIO())
    shop_make(domain="x-shop.myshopify.com")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("report", "x-shop.myshopify.com", "--as-of", "01/01/2026", stdout=io.StringIO())


def test_rfm_csv_streams_the_customer_table():
    shop = shop_make()
    orders_add(shop, [{"customer": 11, "at": "2025-06-01", "value": "10"},
                      {"customer": 11, "at": "2025-07-01", "value": "15.5"},
                      {"customer": 12, "at": "2025-12-01", "value": "3"}])
    customers_add(shop, [{"id": 11, "rfm_group": "LOYAL", "number_of_orders": 2, "amount_spent": "25.5"}])
    lines = export.rfm_csv(shop=shop, as_of=AS_OF)
    first = next(lines)
    assert first.startswith("customer_id,recency_days,frequency,monetary,r,f,m,rfm_total,rfm_group")
    rows = list(csv.DictReader(io.StringIO(first + "".join(lines))))
    assert [(r["customer_id"], r["frequency"], r["monetary"], r["shopify_rfm_group"], r["orders_lifetime"])
            for r in rows] == [("11", "2", "25.50", "LOYAL", "2"), ("12", "1", "3.00", "", "1")]
    # Too few customers to fit the models: the predictive columns are there, their cells empty.
    assert list(rows[0])[-4:] == ["p_alive", "expected_purchases", "expected_aov", "predicted_clv"]
    assert {r[k] for r in rows for k in ("p_alive", "expected_purchases", "expected_aov", "predicted_clv")} == {""}


def test_segment_rules_cover_every_score_pair_once():
    for r in range(1, 6):
        for f in range(1, 6):
            matches = [rule.name for rule in SEGMENT_RULES
                       if rule.r_min <= r <= rule.r_max and rule.f_min <= f <= rule.f_max]
            assert len(matches) == 1, (r, f, matches)
            assert segment_for(r, f) == matches[0]


def test_predictive_block_is_stored_and_feeds_the_csv():
    shop = shop_make()
    # Buyers as BG/NBD imagines them: Poisson purchases at a gamma-distributed rate, each
    # purchase followed by a chance to drop out for good.
    rng = random.Random(7)
    rows = []
    end = AS_OF.toordinal()
    for c in range(1, 301):
        rate = rng.gammavariate(2.0, 1 / 80)
        mean_spend = rng.gammavariate(4.0, 15.0)
        day = date(2024, 1, 1).toordinal() + rng.randrange(365)
        while day < end:
            rows.append({"customer": c, "at": date.fromordinal(day).isoformat(),
                         "value": str(round(rng.gammavariate(6.0, mean_spend / 6), 2))})
            if rng.random() < 0.25:
                break
            day += 1 + int(rng.expovariate(rate))
    orders_add(shop, rows)
    snapshot = services.snapshot_refresh(shop=shop, as_of=AS_OF)
    block = snapshot.document["predictive"]
    assert block["available"] is True, block
    assert "customers" not in block  # per-customer predictions live in the score rows
    assert block["spend_available"] is True, block["message"]
    scores = CustomerScore.objects.filter(rows_id=snapshot.rows_id)
    assert scores.exclude(predicted_clv=None).count() == scores.count() > 0
    lines = list(export.rfm_csv(shop=shop, as_of=AS_OF))
    assert lines[0].rstrip().split(",") == export.HEADER
    csv_rows = list(csv.DictReader(io.StringIO("".join(lines))))
    assert len(csv_rows) == scores.count()
    assert all(r[k] != "" for r in csv_rows for k in ("p_alive", "expected_purchases", "expected_aov",
                                                        "predicted_clv"))
    by_id = {r.customer_shopify_id: r for r in scores}
    for r in csv_rows[:20]:
        score = by_id[int(r["customer_id"])]
        assert float(r["p_alive"]) == pytest.approx(score.p_alive, abs=5e-5)
        assert Decimal(r["predicted_clv"]) == score.predicted_clv.quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_customer_scores_forget_removes_only_that_customer():
    shop = shop_make()
    orders_add(shop, [{"customer": 21, "at": "2025-06-01", "value": "10"},
                      {"customer": 22, "at": "2025-06-01", "value": "10"}])
    services.snapshot_refresh(shop=shop, as_of=AS_OF)
    services.snapshot_refresh(shop=shop, as_of=date(2025, 12, 1))
    assert services.customer_scores_forget(shop=shop, customer_shopify_id=21) == 2
    assert list(CustomerScore.objects.filter(rows__shop=shop).values_list("customer_shopify_id", flat=True)
                .distinct()) == [22]


def test_a_new_time_zone_or_currency_is_not_served_old_snapshots():
    """An order at 23:30 UTC on 31 Dec falls in the next year once the shop moves east of UTC."""
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2025-12-31 23:30", "value": "10"}])
    assert services.report_document(shop=shop, as_of=AS_OF)["clv"]["orders"] == 1
    shop.iana_timezone = "Asia/Seoul"
    shop.save()
    doc = services.report_document(shop=shop, as_of=AS_OF)
    assert doc["settings"]["time_zone"] == "Asia/Seoul"
    assert doc["clv"]["orders"] == 0
    shop.currency = "JPY"
    shop.save()
    assert services.report_document(shop=shop, as_of=AS_OF)["currency"] == "JPY"
    assert AnalyticsSnapshot.objects.filter(shop=shop).count() == 3


@settings(max_examples=300, deadline=None)
@given(st.one_of(*(st.decimals(min_value=-10**9, max_value=10**9, places=k, allow_nan=False, allow_infinity=False)
                   for k in (0, 3, 4, 12))),
       st.sampled_from(["USD", "JPY", "KWD", "EUR"]))
def test_decimal_money_rounds_like_money(value, currency):
    assert decimal_money(value, currency) == money(value, currency)
