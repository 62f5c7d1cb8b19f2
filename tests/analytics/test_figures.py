"""Hand-computed small shops: every figure of docs/METRICS.md, worked out on paper first."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from analytics.models import AnalyticsSettings, MarketingInput
from analytics.services import report_document
from tests.analytics.factories import customers_add, orders_add, refund_add, shop_make

pytestmark = pytest.mark.django_db

AS_OF = date(2026, 1, 1)


@pytest.fixture
def basic_shop():
    """P = [2025-01-01, 2026-01-01), A = 365 days, UTC.

    C1: 2025-03-10 100, 2025-06-10 50, 2025-12-20 30, plus a cancelled 500 on 2025-09-01.
    C2: 2024-05-01 40, 2025-02-01 60.  C3: 2025-11-01 20, plus a test order of 999.
    C4: 2024-02-10 80 only.  One guest order of 25 on 2025-07-01.
    """
    shop = shop_make()
    orders_add(shop, [
        {"customer": 1, "at": "2025-03-10", "value": "100"},
        {"customer": 1, "at": "2025-06-10", "value": "50"},
        {"customer": 1, "at": "2025-12-20", "value": "30"},
        {"customer": 1, "at": "2025-09-01", "value": "500", "cancelled": True},
        {"customer": 2, "at": "2024-05-01", "value": "40"},
        {"customer": 2, "at": "2025-02-01", "value": "60"},
        {"customer": 3, "at": "2025-11-01", "value": "20"},
        {"customer": 3, "at": "2025-08-01", "value": "999", "test": True},
        {"customer": 4, "at": "2024-02-10", "value": "80"},
        {"customer": None, "at": "2025-07-01", "value": "25"},
    ])
    customers_add(shop, [
        {"id": 1, "rfm_group": "CHAMPIONS", "number_of_orders": 4, "amount_spent": "680"},
        {"id": 2, "rfm_group": "AT_RISK", "number_of_orders": 5, "amount_spent": "100"},
        {"id": 3, "rfm_group": "", "number_of_orders": 2, "amount_spent": "1019"},
        {"id": 4, "rfm_group": "DORMANT", "number_of_orders": 1, "amount_spent": "80"},
    ])
    return shop


def test_clv_chain(basic_shop):
    doc = report_document(shop=basic_shop, as_of=AS_OF)
    assert doc["period"] == {"start": "2025-01-01", "end": "2026-01-01", "days": 365}
    assert doc["clv"] == {
        "revenue": "260.00", "orders": 5, "customers": 3, "guest_orders": 1, "aov": "52.00",
        "purchase_frequency": 1.6667, "customer_value": "86.67",
        # First order 2024-02-10 is after end - 2P (2024-01-02): not two periods of history.
        "lifespan_years": 3.0, "lifespan_source": "default", "clv": "260.00", "guest_share": 16.67,
    }


def test_retention(basic_shop):
    ret = report_document(shop=basic_shop, as_of=AS_OF)["retention"]
    assert {k: ret[k] for k in (
        "customers_at_start", "customers_at_end", "new_customers", "crr", "lost_customers", "churn_rate",
        "repeat_purchase_rate", "repeat_purchase_rate_lifetime", "median_days_between_orders")} == {
        "customers_at_start": 2,  # C2 and C4 ordered in [2024-01-01, 2025-01-01)
        "customers_at_end": 3,  # C1, C2, C3
        "new_customers": 2,  # C1, C3
        "crr": 50.0,  # (3 - 2) / 2
        "lost_customers": 1,  # C4
        "churn_rate": 50.0,
        "repeat_purchase_rate": 33.33,  # C1 of 3
        "repeat_purchase_rate_lifetime": 50.0,  # C1, C2 of 4
        "median_days_between_orders": 193.0,  # gaps 92, 193 (C1) and 276 (C2)
    }


def test_retention_series(basic_shop):
    """The same figures for the periods ending at each of the last 24 month starts."""
    series = report_document(shop=basic_shop, as_of=AS_OF)["retention"]["series"]
    assert [p["end"] for p in series][:2] == ["2024-02-01", "2024-03-01"]
    assert len(series) == 24
    by_end = {p.pop("end"): p for p in series}
    # The last period is the report's own.
    assert by_end["2026-01-01"] == {"customers_at_start": 2, "customers_at_end": 3, "new_customers": 2,
                                    "lost_customers": 1, "crr": 50.0, "churn_rate": 50.0}
    # [2024-07-01, 2025-07-01): C2 and C4 active at its start (orders since 2023-07-02); C1 and C2 at
    # its end; C1 new; C4 lost.
    assert by_end["2025-07-01"] == {"customers_at_start": 2, "customers_at_end": 2, "new_customers": 1,
                                    "lost_customers": 1, "crr": 50.0, "churn_rate": 50.0}
    # [2023-06-02, 2024-06-01): nobody active at its start, so no rates; C2 and C4 new and active.
    assert by_end["2024-06-01"] == {"customers_at_start": 0, "customers_at_end": 2, "new_customers": 2,
                                    "lost_customers": 0, "crr": None, "churn_rate": None}
    assert by_end["2024-02-01"] == {"customers_at_start": 0, "customers_at_end": 0, "new_customers": 0,
                                    "lost_customers": 0, "crr": None, "churn_rate": None}


def test_rfm_quantile_groups_and_clv(basic_shop):
    doc = report_document(shop=basic_shop, as_of=AS_OF, include_customers=True)
    rows = {c["customer_id"]: (c["recency_days"], c["frequency"], c["monetary"], c["r"], c["f"], c["m"],
                               c["total"], c["group"], c["shopify_rfm_group"]) for c in doc["rfm"]["customers"]}
    assert rows == {
        1: (12, 3, "180.00", 3, 3, 3, 9, "top", "CHAMPIONS"),
        2: (334, 1, "60.00", 1, 1, 2, 4, "bottom", "AT_RISK"),
        3: (61, 1, "20.00", 2, 1, 1, 4, "bottom", None),
    }
    groups = doc["rfm"]["groups"]
    assert groups["top"]["customers"] == 1
    assert groups["top"]["clv"]["clv"] == "540.00"
    assert groups["middle"] == {"customers": 0, "clv": {
        "revenue": "0.00", "orders": 0, "customers": 0, "guest_orders": None, "aov": None,
        "purchase_frequency": None, "customer_value": None, "lifespan_years": 3.0, "lifespan_source": "default",
        "clv": None}}
    bottom = groups["bottom"]["clv"]
    assert (bottom["revenue"], bottom["orders"], bottom["customers"], bottom["aov"], bottom["clv"]) == (
        "80.00", 2, 2, "40.00", "120.00")
    assert "segments" not in doc["rfm"]
    assert doc["shopify"]["rfm_crosstab"] == {"top": {"CHAMPIONS": 1}, "middle": {},
                                              "bottom": {"AT_RISK": 1, "NONE": 1}}


def test_rfm_range_method(basic_shop):
    doc = report_document(shop=basic_shop, as_of=AS_OF, rfm_method="range", include_customers=True)
    rows = {c["customer_id"]: (c["r"], c["f"], c["m"], c["group"]) for c in doc["rfm"]["customers"]}
    # Recency [12, 334]: C3 at 61 is in the first (most recent) third; monetary [20, 180]: 60 in the first.
    assert rows == {1: (3, 3, 3, "top"), 3: (3, 1, 1, "middle"), 2: (1, 1, 1, "bottom")}
    assert doc["rfm"]["method"] == "range"


def test_lifecycle(basic_shop):
    life = report_document(shop=basic_shop, as_of=AS_OF)["lifecycle"]
    assert {s: life[s]["customers"] for s in life} == {
        "purchase": 1, "retention": 0, "advocacy": 1, "at_risk": 1, "lapsed": 1}
    assert life["advocacy"]["aov"] == "60.00"
    assert life["advocacy"]["orders_per_customer_year"] == 3.0
    assert life["at_risk"]["clv"]["revenue"] == "60.00"
    assert life["lapsed"]["aov"] is None
    # C2 (at risk now): one order in 2024 (40) and one in 2025 (60).
    assert life["at_risk"]["by_year"] == [
        {"year": 2024, "customers": 1, "orders": 1, "revenue": "40.00", "aov": "40.00", "orders_per_customer": 1.0},
        {"year": 2025, "customers": 1, "orders": 1, "revenue": "60.00", "aov": "60.00", "orders_per_customer": 1.0},
    ]
    assert life["advocacy"]["by_year"][1] == {"year": 2025, "customers": 1, "orders": 3, "revenue": "180.00",
                                              "aov": "60.00", "orders_per_customer": 3.0}


def test_cohorts(basic_shop):
    cohorts = {c["cohort"]: c for c in report_document(shop=basic_shop, as_of=AS_OF)["cohorts"]}
    assert len(cohorts) == 24
    assert list(cohorts)[0] == "2024-01"
    assert list(cohorts)[-1] == "2025-12"
    march = cohorts["2025-03"]
    assert march["customers"] == 1
    assert march["retention"] == [100.0, 0.0, 0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0]
    assert march["revenue_per_customer"] == ["100.00"] * 3 + ["150.00"] * 6 + ["180.00"]
    may = cohorts["2024-05"]
    assert len(may["retention"]) == 20
    assert may["retention"][9] == 100.0
    assert sum(may["retention"]) == 200.0
    assert may["revenue_per_customer"][8] == "40.00"
    assert may["revenue_per_customer"][9] == "100.00"
    assert cohorts["2024-02"]["customers"] == 1
    assert cohorts["2024-03"] == {"cohort": "2024-03", "customers": 0, "retention": [None] * 22,
                                  "revenue_per_customer": [None] * 22, "small_sample": False}


def test_reconciliation_causes(basic_shop):
    rec = report_document(shop=basic_shop, as_of=AS_OF)["shopify"]["reconciliation"]
    assert rec == {
        "customers_compared": 4, "orders_differ": 3, "spend_differ": 2, "customers_differing": 3,
        "causes": {"outside_window": 1, "test_orders": 1, "cancellations": 1, "excluded_tags": 0,
                   "refund_basis": 0, "unexplained": 0},
    }


def test_reconciliation_refund_basis_and_unexplained():
    """C1: 100, 30 refunded: we hold 70 (current total), Shopify says 100 -> refund_basis.
    C2: 50 with Shopify saying 55, nothing to explain it -> unexplained. C3 agrees."""
    shop = shop_make()
    orders_add(shop, [
        {"customer": 1, "at": "2025-05-01", "value": "100", "current": "70"},
        {"customer": 2, "at": "2025-05-01", "value": "50"},
        {"customer": 3, "at": "2025-05-01", "value": "20"},
    ])
    customers_add(shop, [
        {"id": 1, "rfm_group": "", "number_of_orders": 1, "amount_spent": "100"},
        {"id": 2, "rfm_group": "", "number_of_orders": 1, "amount_spent": "55"},
        {"id": 3, "rfm_group": "", "number_of_orders": 1, "amount_spent": "20"},
    ])
    rec = report_document(shop=shop, as_of=AS_OF)["shopify"]["reconciliation"]
    assert rec == {
        "customers_compared": 3, "orders_differ": 0, "spend_differ": 2, "customers_differing": 2,
        "causes": {"outside_window": 0, "test_orders": 0, "cancellations": 0, "excluded_tags": 0,
                   "refund_basis": 1, "unexplained": 1},
    }


def test_marketing_figures(basic_shop):
    empty = report_document(shop=basic_shop, as_of=AS_OF)["marketing"]
    assert empty["cac"] is None
    assert empty["acquisition_spend"] is None
    assert empty["max_cost_per_click"] is None
    MarketingInput.objects.create(shop=basic_shop, period_start=date(2025, 1, 1), period_end=AS_OF,
                                  acquisition_spend=Decimal(100), retention_spend=Decimal(30),
                                  conversion_rate=Decimal("2.5"))
    mk = report_document(shop=basic_shop, as_of=AS_OF)["marketing"]
    assert {k: mk[k] for k in ("acquisition_spend", "cac", "ltv_to_cac", "ltv_to_cac_healthy", "return_per_customer",
                               "conversion_rate", "max_cost_per_click", "retention_spend",
                               "retention_cost_per_customer")} == {
        "acquisition_spend": "100.00", "cac": "50.00", "ltv_to_cac": 5.2, "ltv_to_cac_healthy": True,
        "return_per_customer": "210.00", "conversion_rate": 2.5, "max_cost_per_click": "6.50",
        "retention_spend": "30.00", "retention_cost_per_customer": "10.00",
    }
    warnings = report_document(shop=basic_shop, as_of=AS_OF)["warnings"]
    assert "CAC rests on 2 new customers (fewer than 30)." in warnings
    assert "Retention cost per customer rests on 3 customers at the period's end (fewer than 30)." in warnings
    assert not [w for w in empty_warnings(basic_shop) if "rests on" in w and ("CAC" in w or "Retention cost" in w)]


def empty_warnings(shop):
    MarketingInput.objects.filter(shop=shop).delete()
    return report_document(shop=shop, as_of=AS_OF)["warnings"]


def test_stage_clv_on_few_buyers_is_flagged():
    """30 repeat customers are in the retention stage, but only 5 of them ordered in a 90-day period."""
    shop = shop_make()
    rows = []
    for c in range(1, 31):
        rows += [{"customer": c, "at": "2025-03-01", "value": "10"}, {"customer": c, "at": "2025-09-01", "value": "10"}]
        if c <= 5:
            rows.append({"customer": c, "at": "2025-12-01", "value": "10"})
    orders_add(shop, rows)
    AnalyticsSettings.objects.create(shop=shop, period_days=90)
    doc = report_document(shop=shop, as_of=AS_OF)
    assert doc["lifecycle"]["retention"]["customers"] == 30
    assert doc["lifecycle"]["retention"]["clv"]["customers"] == 5
    assert ("The CLV of lifecycle stage retention rests on the 5 of its customers who ordered in the period "
            "(fewer than 30).") in doc["warnings"]


def test_warnings_and_explain(basic_shop):
    doc = report_document(shop=basic_shop, as_of=AS_OF)
    text = " ".join(doc["warnings"])
    assert "rest on 3 customers" in text
    assert "Cohorts with fewer than 10 customers" in text
    assert "2025-03" in text
    assert "3-year default" in text
    assert doc["explain"]["clv.aov"] == {"formula": "revenue / orders", "inputs": {"revenue": "260.00", "orders": 5}}
    for section in ("clv", "retention"):
        for key in ("crr", "churn_rate") if section == "retention" else ("aov", "clv", "lifespan_years"):
            assert f"{section}.{key}" in doc["explain"]


def test_every_small_figure_is_flagged(basic_shop):
    """By year (stages at 2026-01-01, A = 365): C2 and C4 ordered in 2024 (at_risk, lapsed); C1, C2
    and C3 in 2025 (advocacy, at_risk, purchase). Two customers ever ordered twice or more (C1, C2)."""
    doc = report_document(shop=basic_shop, as_of=AS_OF)
    assert ("Lifecycle by-year figures resting on fewer than 30 ordering customers: at_risk 2024 (1), "
            "lapsed 2024 (1), advocacy 2025 (1), at_risk 2025 (1), purchase 2025 (1).") in doc["warnings"]
    assert ("The median time between orders rests on 2 customers with two or more orders (fewer than 30)."
            in doc["warnings"])
    assert "RFM group top has 1 customers (fewer than 30)." in doc["warnings"]
    assert "Retention and churn rest on 2 customers at the period's start (fewer than 30)." in doc["warnings"]
    five = report_document(shop=basic_shop, as_of=AS_OF, rfm_scale=5)
    named = {name: n for name, n in five["rfm"]["segments"].items() if n}
    assert sum(named.values()) == 3
    listed = ", ".join(f"{name} ({n})" for name, n in named.items())
    assert f"RFM segments with fewer than 30 customers: {listed}." in five["warnings"]
    assert not any("segments" in w for w in doc["warnings"])  # k = 3 has no named segments


def test_shopify_comparisons_have_their_formula_and_inputs(basic_shop):
    doc = report_document(shop=basic_shop, as_of=AS_OF)
    assert doc["explain"]["shopify.rfm_crosstab"]["inputs"] == {"customers": 3}  # C1, C2, C3 are scored
    assert doc["explain"]["shopify.reconciliation"]["inputs"] == {
        "customers_compared": 4,
        "causes_in_order": ["outside_window", "test_orders", "cancellations", "excluded_tags", "refund_basis",
                            "unexplained"]}


def test_lifespan_from_churn_with_two_periods_of_history():
    """P = 90 days: end - 2P = 2025-08-04. S = {A, B} (orders in [2024-10-03, 2025-10-03)), B lost."""
    shop = shop_make()
    AnalyticsSettings.objects.create(shop=shop, period_days=90, activity_window_days=90)
    orders_add(shop, [
        {"customer": 1, "at": "2025-06-01", "value": "10"},
        {"customer": 1, "at": "2025-09-20", "value": "10"},
        {"customer": 1, "at": "2025-12-01", "value": "30"},
        {"customer": 2, "at": "2025-09-15", "value": "10"},
    ])
    doc = report_document(shop=shop, as_of=AS_OF)
    assert doc["period"]["start"] == "2025-10-03"
    ret = doc["retention"]
    assert (ret["customers_at_start"], ret["customers_at_end"], ret["lost_customers"], ret["churn_rate"]) == (
        2, 1, 1, 50.0)
    # L = (S / lost) x (P / 365) = 2 x 90 / 365 years; CLV = CV x 365 / 90 x L = 30 x 2 = 60.
    assert doc["clv"]["lifespan_source"] == "churn"
    assert doc["clv"]["lifespan_years"] == 0.49
    assert doc["clv"]["clv"] == "60.00"


def test_lifespan_override():
    shop = shop_make()
    AnalyticsSettings.objects.create(shop=shop, lifespan_override_years=Decimal("2.50"))
    orders_add(shop, [{"customer": 1, "at": "2025-06-01", "value": "40"}])
    clv = report_document(shop=shop, as_of=AS_OF)["clv"]
    assert (clv["lifespan_source"], clv["lifespan_years"], clv["clv"]) == ("override", 2.5, "100.00")


@pytest.mark.parametrize(("dating", "basis", "revenue", "monetary"), [
    # Order A 2024-12-15 (100, refund 40 on 2025-01-10), B 2025-06-01 (50, refund 10 on 2026-01-05).
    ("order_date", "subtotal", "40.00", "40.00"),  # B's current subtotal, refunds on their orders' dates
    ("refund_date", "subtotal", "10.00", "10.00"),  # B's 50 minus A's refund made in P; B's refund is later
    ("order_date", "total", "45.00", "45.00"),  # current total of B: 40 + 5 shipping
    ("refund_date", "total", "15.00", "15.00"),  # 55 - 40
])
def test_refunds_under_both_datings(dating, basis, revenue, monetary):
    shop = shop_make()
    AnalyticsSettings.objects.create(shop=shop, refund_dating=dating, order_value_basis=basis)
    orders_add(shop, [
        {"id": 501, "customer": 1, "at": "2024-12-15", "value": "100", "current": "60", "total": "105"},
        {"id": 502, "customer": 1, "at": "2025-06-01", "value": "50", "current": "40", "total": "55"},
    ])
    refund_add(shop, order_id=501, at="2025-01-10", subtotal_amount="40")
    refund_add(shop, order_id=502, at="2026-01-05", subtotal_amount="10")
    doc = report_document(shop=shop, as_of=AS_OF, include_customers=True)
    assert doc["settings"]["refund_dating"] == dating
    assert doc["clv"]["revenue"] == revenue
    assert doc["clv"]["orders"] == 1
    assert doc["rfm"]["customers"][0]["monetary"] == monetary


def test_refund_date_month_buckets_in_cohorts():
    shop = shop_make()
    AnalyticsSettings.objects.create(shop=shop, refund_dating="refund_date")
    orders_add(shop, [{"id": 7, "customer": 1, "at": "2025-10-15", "value": "100", "current": "70"}])
    refund_add(shop, order_id=7, at="2025-12-02", subtotal_amount="30")
    october = next(c for c in report_document(shop=shop, as_of=AS_OF)["cohorts"] if c["cohort"] == "2025-10")
    assert october["revenue_per_customer"] == ["100.00", "100.00", "70.00"]
    assert october["retention"] == [100.0, 0.0, 0.0]  # a refund is not a purchase


def test_month_end_late_evening_far_west_of_utc():
    """23:30 on 30 Nov in Pago Pago (UTC-11) is 1 Dec in UTC: it belongs to November, 32 days before 1 Jan."""
    shop = shop_make(tz="Pacific/Pago_Pago")
    orders_add(shop, [{"customer": 1, "at": "2025-11-30 23:30", "value": "10"},
                      {"customer": 1, "at": "2025-12-31 23:30", "value": "5"}])
    doc = report_document(shop=shop, as_of=AS_OF, include_customers=True)
    nov = next(c for c in doc["cohorts"] if c["cohort"] == "2025-11")
    assert nov["customers"] == 1
    assert nov["retention"] == [100.0, 100.0]
    row = doc["rfm"]["customers"][0]
    assert (row["recency_days"], row["frequency"]) == (1, 2)
    assert doc["retention"]["median_days_between_orders"] == 31.0


def test_period_end_is_local_midnight_far_east_of_utc():
    """00:30 on 1 Jan in Kiritimati (UTC+14) is still 31 Dec in UTC, but it is after the as-of midnight."""
    shop = shop_make(tz="Pacific/Kiritimati")
    orders_add(shop, [{"customer": 1, "at": "2025-12-31 23:30", "value": "10"},
                      {"customer": 2, "at": "2026-01-01 00:30", "value": "99"}])
    doc = report_document(shop=shop, as_of=AS_OF, include_customers=True)
    assert (doc["clv"]["revenue"], doc["clv"]["customers"]) == ("10.00", 1)
    assert doc["rfm"]["customers"][0]["recency_days"] == 1


def test_leap_day():
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2024-02-28", "value": "10"},
                      {"customer": 1, "at": "2024-02-29", "value": "20"},
                      {"customer": 1, "at": "2024-03-01", "value": "40"}])
    doc = report_document(shop=shop, as_of=date(2024, 3, 1), include_customers=True)
    assert doc["period"] == {"start": "2023-03-02", "end": "2024-03-01", "days": 365}
    assert doc["clv"]["orders"] == 2
    assert doc["rfm"]["customers"][0]["recency_days"] == 1
    assert doc["retention"]["median_days_between_orders"] == 1.0
    later = report_document(shop=shop, as_of=date(2025, 3, 1))
    assert later["period"]["start"] == "2024-03-01"
    assert later["clv"]["orders"] == 1  # the leap-day order is one day before the period
    feb = next(c for c in later["cohorts"] if c["cohort"] == "2024-02")
    assert feb["retention"][:2] == [100.0, 100.0]


def test_shop_with_no_orders():
    shop = shop_make()
    doc = report_document(shop=shop, as_of=AS_OF, include_customers=True)
    assert doc["clv"]["revenue"] == "0.00"
    assert doc["clv"]["orders"] == 0
    assert doc["clv"]["aov"] is None
    assert doc["clv"]["clv"] is None
    assert doc["clv"]["guest_share"] is None
    assert doc["retention"]["crr"] is None
    assert doc["retention"]["median_days_between_orders"] is None
    assert doc["rfm"]["customers"] == []
    assert all(c["customers"] == 0 for c in doc["cohorts"])
    assert any("No counted orders" in w for w in doc["warnings"])


def test_one_customer():
    shop = shop_make()
    orders_add(shop, [{"customer": 9, "at": "2025-05-01", "value": "10"},
                      {"customer": 9, "at": "2025-05-11", "value": "30"}])
    doc = report_document(shop=shop, as_of=AS_OF, include_customers=True)
    row = doc["rfm"]["customers"][0]
    # Nobody is strictly worse, so every score is 1 and the lone customer is in the bottom group.
    assert (row["r"], row["f"], row["m"], row["group"]) == (1, 1, 1, "bottom")
    assert doc["retention"]["repeat_purchase_rate"] == 100.0
    assert doc["retention"]["median_days_between_orders"] == 10.0
    assert any("rest on 1 customers" in w for w in doc["warnings"])


def test_only_one_time_buyers_ties():
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2025-03-01", "value": "10"},
                      {"customer": 2, "at": "2025-03-01", "value": "20"},
                      {"customer": 3, "at": "2025-04-01", "value": "20"},
                      {"customer": 4, "at": "2025-05-01", "value": "40"}])
    doc = report_document(shop=shop, as_of=AS_OF, include_customers=True)
    rows = {c["customer_id"]: (c["r"], c["f"], c["m"]) for c in doc["rfm"]["customers"]}
    # F: all tied at 1. M: 10 -> 0 worse, 20s -> 1 worse each (1 + 3/4), 40 -> 3 worse (1 + 9/4).
    # R: recency 306, 306, 275, 245 -> 0, 0, 2 and 3 strictly larger.
    assert rows == {1: (1, 1, 1), 2: (1, 1, 1), 3: (2, 1, 1), 4: (3, 1, 3)}
    assert doc["retention"]["repeat_purchase_rate"] == 0.0
    assert doc["retention"]["median_days_between_orders"] is None


def test_five_point_scale_segments_with_ties():
    shop = shop_make()
    orders_add(shop, [{"customer": c, "at": f"2025-{m:02d}-01", "value": "10"}
                      for c, months in {1: [12, 11, 10], 2: [12], 3: [6, 5], 4: [2], 5: [12]}.items()
                      for m in months])
    doc = report_document(shop=shop, as_of=AS_OF, rfm_scale=5, include_customers=True)
    rows = {c["customer_id"]: (c["r"], c["f"], c["segment"]) for c in doc["rfm"]["customers"]}
    # Recency 31 (x3), 184, 334. F: 1 (x3), 2, 3.
    assert rows == {1: (3, 5, "Loyal"), 2: (3, 1, "About to sleep"), 5: (3, 1, "About to sleep"),
                    3: (2, 4, "At risk"), 4: (1, 1, "Hibernating")}
    assert doc["rfm"]["segments"]["About to sleep"] == 2
    assert sum(doc["rfm"]["segments"].values()) == 5
    assert len(doc["rfm"]["segment_rules"]) == 10


def test_shop_younger_than_period():
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2025-10-01", "value": "10"},
                      {"customer": 2, "at": "2025-11-01", "value": "10"}])
    doc = report_document(shop=shop, as_of=AS_OF)
    assert doc["retention"]["customers_at_start"] == 0
    assert doc["retention"]["crr"] is None
    assert doc["retention"]["new_customers"] == 2
    assert doc["clv"]["lifespan_source"] == "default"
    assert any("after the period's start" in w for w in doc["warnings"])


def test_excluded_tags_case_insensitive():
    shop = shop_make()
    AnalyticsSettings.objects.create(shop=shop, excluded_order_tags=["wholesale"])
    orders_add(shop, [{"customer": 1, "at": "2025-03-01", "value": "10"},
                      {"customer": 1, "at": "2025-04-01", "value": "900", "tags": ["Wholesale", "net30"]},
                      {"customer": None, "at": "2025-04-01", "value": "900", "tags": ["WHOLESALE"]}])
    customers_add(shop, [{"id": 1, "number_of_orders": 2, "amount_spent": "910"}])
    doc = report_document(shop=shop, as_of=AS_OF)
    assert (doc["clv"]["revenue"], doc["clv"]["orders"], doc["clv"]["guest_orders"]) == ("10.00", 1, 0)
    assert doc["settings"]["excluded_order_tags"] == ["wholesale"]
    assert doc["shopify"]["reconciliation"]["causes"]["excluded_tags"] == 1


def test_currency_minor_units():
    shop = shop_make(currency="JPY")
    orders_add(shop, [{"customer": 1, "at": "2025-03-01", "value": "1000"},
                      {"customer": 2, "at": "2025-03-01", "value": "1001"},
                      {"customer": 3, "at": "2025-03-01", "value": "1000"}])
    clv = report_document(shop=shop, as_of=AS_OF)["clv"]
    assert (clv["revenue"], clv["aov"]) == ("3001", "1000")


def test_range_method_when_every_customer_has_the_same_values():
    """Zero-width bins: everyone scores 1 on frequency and monetary and k on recency."""
    shop = shop_make()
    orders_add(shop, [{"customer": c, "at": "2025-06-01", "value": "40"} for c in (1, 2, 3)])
    AnalyticsSettings.objects.create(shop=shop, rfm_method="range", rfm_scale=5)
    rows = report_document(shop=shop, as_of=AS_OF, include_customers=True)["rfm"]["customers"]
    assert {(c["r"], c["f"], c["m"], c["total"], c["group"]) for c in rows} == {(5, 1, 1, 7, "bottom")}
