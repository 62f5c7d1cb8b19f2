"""The report document of docs/METRICS.md, built from exact aggregates (no database access here)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from analytics.metrics.engine import CAUSES, GAP_BINS, GROUP_NAMES, STAGES, Aggregate, Raw
from analytics.metrics.numbers import RATIO_PLACES, YEARS_PLACES, frac, money, num, pct, ratio
from analytics.metrics.params import COHORT_MONTHS, Bounds, ReportParams, month_add
from analytics.metrics.segments import SEGMENT_RULES

SMALL_SAMPLE = 30
SMALL_COHORT = 10
DEFAULT_LIFESPAN = Fraction(3)
LTV_TO_CAC_TARGET = 3
MARKETING_WARNINGS = ("CAC rests on ", "Retention cost per customer rests on ")

FORMULAS = {
    "clv.revenue": "sum of order values of counted orders in the period (basis and refund dating per settings)",
    "clv.orders": "number of counted orders in the period",
    "clv.customers": "distinct customers with at least one counted order in the period",
    "clv.guest_orders": "orders without a customer in the period (never in per-customer figures)",
    "clv.guest_share": "guest_orders / (guest_orders + orders) x 100",
    "clv.aov": "revenue / orders",
    "clv.purchase_frequency": "orders / customers",
    "clv.customer_value": "aov x purchase_frequency = revenue / customers",
    "clv.lifespan_years": "override if set; else period_days / 365 / (lost / customers_at_start) when the "
                          "shop has two periods of history and churn > 0; else 3",
    "clv.clv": "customer_value x 365 / period_days x lifespan_years",
    "retention.customers_at_start": "customers with a counted order in [start - A, start)",
    "retention.customers_at_end": "customers with a counted order in [end - A, end)",
    "retention.new_customers": "customers whose first counted order ever is in [start, end)",
    "retention.crr": "(customers_at_end - new_customers) / customers_at_start x 100 "
                     "(reactivated customers count, so crr + churn_rate need not be 100)",
    "retention.lost_customers": "customers at start with no counted order in [end - A, end)",
    "retention.churn_rate": "lost_customers / customers_at_start x 100",
    "retention.repeat_purchase_rate": "customers with 2+ counted orders in the period / customers x 100",
    "retention.repeat_purchase_rate_lifetime": "customers with 2+ counted orders before end / "
                                               "customers with 1+ x 100",
    "retention.median_days_between_orders": "median of all calendar-day gaps (shop time zone) between a "
                                            "customer's consecutive counted orders before end",
    "retention.series": "for each of the last 24 month starts t: customers_at_start, customers_at_end, "
                        "new_customers, lost_customers, crr and churn_rate of the period [t - period_days, t)",
    "rfm": "recency = end date - last order date (shop zone); frequency = orders in period; monetary = revenue "
           "in period. quantile: score = 1 + floor(k x share strictly worse); range: k equal-width bins of "
           "[min, max]. Groups: the quantile rule with k = 3 on R + F + M",
    "rfm.groups": "per group (top, middle, bottom): the CLV chain over the group's customers and their counted "
                  "orders in the period, with the shop's lifespan",
    "rfm.segments": "k = 5 only: customers per named segment, first matching row of rfm.segment_rules by R and F",
    "rfm.grid": "customers and their period revenue per (R, F) score pair",
    "lifecycle.by_year": "per stage and calendar year (shop zone): the stage's current members' counted orders, "
                         "ordering customers and revenue that year; aov = revenue / orders, orders_per_customer = "
                         "orders / ordering customers",
    "lifecycle": "at `end`: lapsed (no order in [end - A, end)), at_risk (last order in [end - A, end - A/2)), "
                 "advocacy (active, top RFM group), retention (active, 2+ orders), purchase (active, 1 order); "
                 "first matching rule wins",
    "cohorts": "customers by month of first counted order; retention[m] = share with a counted order in month "
               "cohort + m; revenue_per_customer[m] = cohort revenue through month cohort + m / cohort size",
    "shopify.rfm_crosstab": "customers per (our RFM group, Shopify's rfmGroup as last synced; NONE when Shopify "
                            "gives none), over the customers we score",
    "shopify.reconciliation": "per customer: our lifetime counted-basis orders and spend (every synced order, "
                              "valued as Shopify does: current total) against Shopify's numberOfOrders and "
                              "amountSpent; a difference gets the first cause that explains it",
    "marketing.cac": "acquisition_spend / new_customers",
    "marketing.ltv_to_cac": "clv / cac (3 or more is healthy)",
    "marketing.return_per_customer": "clv - cac",
    "marketing.max_cost_per_click": "clv x conversion_rate / 100",
    "marketing.retention_cost_per_customer": "retention_spend / customers_at_end",
}


def lifespan_for(raw: Raw, params: ReportParams, bounds: Bounds) -> tuple[Fraction, str]:
    if params.lifespan_override_years is not None:
        return frac(params.lifespan_override_years), "override"
    enough_history = (raw.first_order_date is not None
                      and raw.first_order_date <= bounds.history_needed_before.date())
    if enough_history and raw.lost_customers > 0 and raw.customers_at_start > 0:
        return Fraction(raw.customers_at_start * params.period_days, 365 * raw.lost_customers), "churn"
    return DEFAULT_LIFESPAN, "default"


def clv_chain(agg: Aggregate, *, lifespan: Fraction, source: str, period_days: int, currency: str,
              guest_orders: int | None = None) -> dict[str, Any]:
    revenue = frac(agg.revenue)
    cv = ratio(revenue, agg.customers)
    clv = None if cv is None else cv * 365 / period_days * lifespan
    return {
        "revenue": money(revenue, currency),
        "orders": agg.orders,
        "customers": agg.customers,
        "guest_orders": guest_orders,
        "aov": money(ratio(revenue, agg.orders), currency),
        "purchase_frequency": num(ratio(agg.orders, agg.customers)),
        "customer_value": money(cv, currency),
        "lifespan_years": num(lifespan, YEARS_PLACES),
        "lifespan_source": source,
        "clv": money(clv, currency),
    }


def _month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def _months_between(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def cohorts_block(raw: Raw, bounds: Bounds, currency: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(COHORT_MONTHS):
        cohort = month_add(bounds.first_cohort_month, i)
        size = raw.cohort_sizes.get(cohort, 0)
        span = _months_between(cohort, bounds.last_month) + 1
        retention: list[float | None] = []
        revenue: list[str | None] = []
        cumulative = Fraction(0)
        for m in range(span):
            active, rev = raw.cohort_cells.get((cohort, month_add(cohort, m)), (0, Decimal(0)))
            cumulative += frac(rev)
            retention.append(pct(ratio(active, size)))
            revenue.append(money(ratio(cumulative, size), currency))
        rows.append({"cohort": _month_label(cohort), "customers": size, "retention": retention,
                     "revenue_per_customer": revenue, "small_sample": 0 < size < SMALL_COHORT})
    return rows


def lifecycle_block(raw: Raw, params: ReportParams, currency: str, lifespan: Fraction,
                    source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    years = sorted({y for (_, y) in raw.stage_years})
    for stage in STAGES:
        agg = raw.stages[stage]
        pf = ratio(agg.orders, agg.customers)
        by_year = []
        for y in years:
            customers, orders, revenue = raw.stage_years.get((stage, y), (0, 0, Decimal(0)))
            by_year.append({"year": y, "customers": customers, "orders": orders,
                            "revenue": money(revenue, currency),
                            "aov": money(ratio(revenue, orders), currency),
                            "orders_per_customer": num(ratio(orders, customers))})
        out[stage] = {
            "customers": raw.stage_members[stage],
            "aov": money(ratio(agg.revenue, agg.orders), currency),
            "orders_per_customer_year": num(None if pf is None else pf * 365 / params.period_days, RATIO_PLACES),
            "clv": clv_chain(agg, lifespan=lifespan, source=source, period_days=params.period_days,
                             currency=currency),
            "by_year": by_year,
        }
    return out


def trend_block(raw: Raw, bounds: Bounds, currency: str) -> list[dict[str, Any]]:
    """Counted orders per calendar month (shop zone) for the cohort table's 24 months."""
    rows = []
    for i in range(COHORT_MONTHS):
        month = month_add(bounds.first_cohort_month, i)
        customers, orders, revenue = raw.months.get(month, (0, 0, Decimal(0)))
        rows.append({"month": _month_label(month), "customers": customers, "orders": orders,
                     "revenue": money(revenue, currency), "aov": money(ratio(frac(revenue), orders), currency),
                     "partial": month == bounds.last_month and bounds.end_date.day != 1})
    return rows


def rf_grid_block(raw: Raw, scale: int, currency: str) -> list[dict[str, Any]]:
    return [{"r": r, "f": f, "customers": raw.rf_grid.get((r, f), (0, Decimal(0)))[0],
             "revenue": money(raw.rf_grid.get((r, f), (0, Decimal(0)))[1], currency)}
            for r in range(scale, 0, -1) for f in range(1, scale + 1)]


def series_block(raw: Raw) -> list[dict[str, Any]]:
    """The retention figures of the periods ending at each of the last 24 month starts."""
    return [{"end": end.isoformat(), "customers_at_start": s, "customers_at_end": e, "new_customers": n,
             "lost_customers": lost, "crr": pct(ratio(e - n, s)), "churn_rate": pct(ratio(lost, s))}
            for end, s, e, n, lost in raw.series]


def gap_histogram_block(raw: Raw) -> list[dict[str, Any]]:
    counts = raw.gap_bins or [0] * len(GAP_BINS)
    return [{"min_days": lo, "max_days": hi, "gaps": n} for (lo, hi), n in zip(GAP_BINS, counts, strict=True)]


def warnings_for(raw: Raw, params: ReportParams, bounds: Bounds, source: str,
                 cohorts: list[dict[str, Any]]) -> list[str]:
    w: list[str] = []
    c = raw.total.customers
    if raw.total.orders == 0:
        w.append("No counted orders in the period: the period's figures are empty.")
    elif c < SMALL_SAMPLE:
        w.append(f"The period's figures rest on {c} customers (fewer than {SMALL_SAMPLE}): read them as "
                 "indicative, not settled.")
    for name, agg in raw.groups.items():
        if 0 < agg.customers < SMALL_SAMPLE:
            w.append(f"RFM group {name} has {agg.customers} customers (fewer than {SMALL_SAMPLE}).")
    if int(params.rfm_scale) == 5:
        few = [f"{rule.name} ({raw.segments[rule.name]})" for rule in SEGMENT_RULES
               if 0 < raw.segments.get(rule.name, 0) < SMALL_SAMPLE]
        if few:
            w.append(f"RFM segments with fewer than {SMALL_SAMPLE} customers: {', '.join(few)}.")
    for stage in STAGES:
        n = raw.stage_members[stage]
        buyers = raw.stages[stage].customers
        if 0 < n < SMALL_SAMPLE:
            w.append(f"Lifecycle stage {stage} has {n} customers (fewer than {SMALL_SAMPLE}).")
        elif 0 < buyers < SMALL_SAMPLE:
            w.append(f"The CLV of lifecycle stage {stage} rests on the {buyers} of its customers who ordered in "
                     f"the period (fewer than {SMALL_SAMPLE}).")
    years = [f"{stage} {year} ({n})" for (stage, year), (n, _, _) in sorted(raw.stage_years.items(),
                                                                          key=lambda kv: (kv[0][1], kv[0][0]))
             if stage in STAGES and 0 < n < SMALL_SAMPLE]
    if years:
        w.append(f"Lifecycle by-year figures resting on fewer than {SMALL_SAMPLE} ordering customers: "
                 f"{', '.join(years)}.")
    if 0 < raw.repeat_ever < SMALL_SAMPLE:
        w.append(f"The median time between orders rests on {raw.repeat_ever} customers with two or more orders "
                 f"(fewer than {SMALL_SAMPLE}).")
    small = [row["cohort"] for row in cohorts if 0 < row["customers"] < SMALL_COHORT]
    if small:
        w.append(f"Cohorts with fewer than {SMALL_COHORT} customers: {', '.join(small)}.")
    if raw.customers_at_start and raw.customers_at_start < SMALL_SAMPLE:
        w.append(f"Retention and churn rest on {raw.customers_at_start} customers at the period's start "
                 f"(fewer than {SMALL_SAMPLE}).")
    if raw.first_order_date is not None and raw.first_order_date > bounds.start_date:
        w.append("The shop's first counted order is after the period's start: the period covers less "
                 f"history than its {params.period_days} days.")
    if source == "default":
        w.append("Lifespan is the 3-year default for young shops (not two periods of history, or no churn yet).")
    return w


def document_build(*, raw: Raw, params: ReportParams, bounds: Bounds, shop_domain: str, currency: str,
                   include_customers_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    lifespan, source = lifespan_for(raw, params, bounds)
    p = params.period_days
    clv = clv_chain(raw.total, lifespan=lifespan, source=source, period_days=p, currency=currency,
                    guest_orders=raw.guest_orders)
    clv["guest_share"] = pct(ratio(raw.guest_orders, raw.guest_orders + raw.total.orders))
    s = raw.customers_at_start
    retention = {
        "customers_at_start": s,
        "customers_at_end": raw.customers_at_end,
        "new_customers": raw.new_customers,
        "crr": pct(ratio(raw.customers_at_end - raw.new_customers, s)),
        "lost_customers": raw.lost_customers,
        "churn_rate": pct(ratio(raw.lost_customers, s)),
        "repeat_purchase_rate": pct(ratio(raw.repeat_in_period, raw.total.customers)),
        "repeat_purchase_rate_lifetime": pct(ratio(raw.repeat_ever, raw.customers_ever)),
        "median_days_between_orders": raw.median_gap_days,
        "gap_histogram": gap_histogram_block(raw),
        "series": series_block(raw),
    }
    groups = {
        name: {"customers": raw.groups[name].customers,
               "clv": clv_chain(raw.groups[name], lifespan=lifespan, source=source, period_days=p,
                                currency=currency)}
        for name in GROUP_NAMES.values()
    }
    rfm: dict[str, Any] = {"scale": int(params.rfm_scale), "method": params.rfm_method, "groups": groups,
                           "grid": rf_grid_block(raw, int(params.rfm_scale), currency)}
    if int(params.rfm_scale) == 5:
        rfm["segments"] = {rule.name: raw.segments.get(rule.name, 0) for rule in SEGMENT_RULES}
        rfm["segment_rules"] = [
            {"name": r.name, "r": [r.r_min, r.r_max], "f": [r.f_min, r.f_max], "meaning": r.meaning}
            for r in SEGMENT_RULES
        ]
    if include_customers_rows is not None:
        rfm["customers"] = include_customers_rows
    cohorts = cohorts_block(raw, bounds, currency)
    settings = params.settings_dict()
    doc: dict[str, Any] = {
        "shop": shop_domain,
        "currency": currency,
        "as_of": params.as_of.isoformat(),
        "period": {"start": bounds.start_date.isoformat(), "end": bounds.end_date.isoformat(), "days": p},
        "settings": {
            "order_value_basis": settings["order_value_basis"],
            "refund_dating": settings["refund_dating"],
            "activity_window_days": settings["activity_window_days"],
            "rfm_scale": settings["rfm_scale"],
            "rfm_method": settings["rfm_method"],
            "lifespan_override_years": (None if params.lifespan_override_years is None
                                        else float(params.lifespan_override_years)),
            "excluded_order_tags": settings["excluded_order_tags"],
            "time_zone": bounds.tz,
        },
        "clv": clv,
        "retention": retention,
        "rfm": rfm,
        "lifecycle": lifecycle_block(raw, params, currency, lifespan, source),
        "lifecycle_unobservable": {
            "awareness": "needs ad reach or site-visit data (ads platforms, web analytics), not order data",
            "consideration": "needs product views and cart data (web analytics), not order data",
        },
        "cohorts": cohorts,
        "trend": trend_block(raw, bounds, currency),
        "marketing": marketing_block(clv=None, new_customers=raw.new_customers,
                                     customers_at_end=raw.customers_at_end, inputs=None, currency=currency),
        "shopify": {"rfm_crosstab": raw.crosstab, "reconciliation": raw.reconciliation},
        "warnings": warnings_for(raw, params, bounds, source, cohorts),
    }
    doc["explain"] = explain_build(doc, raw)
    return doc


def marketing_block(*, clv: str | None, new_customers: int, customers_at_end: int,
                    inputs: dict[str, Any] | None, currency: str) -> dict[str, Any]:
    """Marketing figures from the merchant's inputs; null wherever an input or a divisor is missing."""
    inputs = inputs or {}
    acq, ret, conv = inputs.get("acquisition_spend"), inputs.get("retention_spend"), inputs.get("conversion_rate")
    clv_f = None if clv is None else frac(Decimal(clv))
    cac = None if acq is None else ratio(frac(Decimal(acq)), new_customers)
    ltv = None if clv_f is None or cac is None or cac == 0 else clv_f / cac
    return {
        "acquisition_spend": money(None if acq is None else Decimal(acq), currency),
        "cac": money(cac, currency),
        "ltv_to_cac": num(ltv, 2),
        "ltv_to_cac_target": LTV_TO_CAC_TARGET,
        "ltv_to_cac_healthy": None if ltv is None else ltv >= LTV_TO_CAC_TARGET,
        "return_per_customer": money(None if clv_f is None or cac is None else clv_f - cac, currency),
        "conversion_rate": None if conv is None else float(Decimal(conv)),
        "max_cost_per_click": money(None if clv_f is None or conv is None else clv_f * frac(Decimal(conv)) / 100,
                                    currency),
        "retention_spend": money(None if ret is None else Decimal(ret), currency),
        "retention_cost_per_customer": money(None if ret is None else ratio(frac(Decimal(ret)), customers_at_end),
                                             currency),
        "inputs_period": inputs.get("period"),
    }


def explain_build(doc: dict[str, Any], raw: Raw) -> dict[str, dict[str, Any]]:
    clv, ret, mk = doc["clv"], doc["retention"], doc["marketing"]
    inputs: dict[str, dict[str, Any]] = {
        "clv.revenue": {"orders": clv["orders"], "order_value_basis": doc["settings"]["order_value_basis"],
                        "refund_dating": doc["settings"]["refund_dating"]},
        "clv.orders": {"period": doc["period"]},
        "clv.customers": {"period": doc["period"]},
        "clv.guest_orders": {"guest_share_pct": clv["guest_share"]},
        "clv.guest_share": {"guest_orders": clv["guest_orders"], "orders": clv["orders"]},
        "clv.aov": {"revenue": clv["revenue"], "orders": clv["orders"]},
        "clv.purchase_frequency": {"orders": clv["orders"], "customers": clv["customers"]},
        "clv.customer_value": {"revenue": clv["revenue"], "customers": clv["customers"]},
        "clv.lifespan_years": {"source": clv["lifespan_source"], "customers_at_start": ret["customers_at_start"],
                               "lost_customers": ret["lost_customers"], "period_days": doc["period"]["days"],
                               "override": doc["settings"]["lifespan_override_years"]},
        "clv.clv": {"customer_value": clv["customer_value"], "period_days": doc["period"]["days"],
                    "lifespan_years": clv["lifespan_years"]},
        "retention.customers_at_start": {"activity_window_days": doc["settings"]["activity_window_days"]},
        "retention.customers_at_end": {"activity_window_days": doc["settings"]["activity_window_days"]},
        "retention.new_customers": {"period": doc["period"]},
        "retention.crr": {"customers_at_end": ret["customers_at_end"], "new_customers": ret["new_customers"],
                          "customers_at_start": ret["customers_at_start"]},
        "retention.lost_customers": {"customers_at_start": ret["customers_at_start"]},
        "retention.churn_rate": {"lost_customers": ret["lost_customers"],
                                 "customers_at_start": ret["customers_at_start"]},
        "retention.repeat_purchase_rate": {"repeat_customers": raw.repeat_in_period, "customers": clv["customers"]},
        "retention.repeat_purchase_rate_lifetime": {"repeat_customers": raw.repeat_ever,
                                                    "customers": raw.customers_ever},
        "retention.median_days_between_orders": {"gaps": raw.gaps},
        "retention.series": {"period_days": doc["period"]["days"],
                             "activity_window_days": doc["settings"]["activity_window_days"]},
        "rfm": {"scale": doc["rfm"]["scale"], "method": doc["rfm"]["method"]},
        "rfm.groups": {name: {"customers": g["customers"], "revenue": g["clv"]["revenue"],
                              "orders": g["clv"]["orders"]} for name, g in doc["rfm"]["groups"].items()},
        "rfm.segments": {"scale": doc["rfm"]["scale"]},
        "rfm.grid": {"scale": doc["rfm"]["scale"], "method": doc["rfm"]["method"]},
        "lifecycle.by_year": {"years": sorted({y["year"] for st in doc["lifecycle"].values() for y in st["by_year"]})},
        "lifecycle": {"activity_window_days": doc["settings"]["activity_window_days"]},
        "cohorts": {"cohorts": COHORT_MONTHS},
        "shopify.rfm_crosstab": {"customers": sum(sum(row.values()) for row in raw.crosstab.values())},
        "shopify.reconciliation": {"customers_compared": raw.reconciliation.get("customers_compared"),
                                   "causes_in_order": list(CAUSES)},
        "marketing.cac": {"acquisition_spend": mk["acquisition_spend"], "new_customers": ret["new_customers"]},
        "marketing.ltv_to_cac": {"clv": clv["clv"], "cac": mk["cac"]},
        "marketing.return_per_customer": {"clv": clv["clv"], "cac": mk["cac"]},
        "marketing.max_cost_per_click": {"clv": clv["clv"], "conversion_rate": mk["conversion_rate"]},
        "marketing.retention_cost_per_customer": {"retention_spend": mk["retention_spend"],
                                                  "customers_at_end": ret["customers_at_end"]},
    }
    return {key: {"formula": FORMULAS[key], "inputs": inputs[key]} for key in FORMULAS}


def marketing_apply(doc: dict[str, Any], inputs: dict[str, Any] | None) -> dict[str, Any]:
    """Fill the marketing block (and its explain entries) of a stored document at read time."""
    ret = doc["retention"]
    mk = marketing_block(clv=doc["clv"]["clv"], new_customers=ret["new_customers"],
                         customers_at_end=ret["customers_at_end"], inputs=inputs, currency=doc["currency"])
    doc["marketing"] = mk
    explain = doc.get("explain", {})
    clv = doc["clv"]["clv"]
    updates = {
        "marketing.cac": {"acquisition_spend": mk["acquisition_spend"], "new_customers": ret["new_customers"]},
        "marketing.ltv_to_cac": {"clv": clv, "cac": mk["cac"]},
        "marketing.return_per_customer": {"clv": clv, "cac": mk["cac"]},
        "marketing.max_cost_per_click": {"clv": clv, "conversion_rate": mk["conversion_rate"]},
        "marketing.retention_cost_per_customer": {"retention_spend": mk["retention_spend"],
                                                  "customers_at_end": ret["customers_at_end"]},
    }
    for key, value in updates.items():
        explain[key] = {"formula": FORMULAS[key], "inputs": value}
    # A new list: the stored document may be shared between requests.
    extra = []
    if mk["acquisition_spend"] is not None and 0 < ret["new_customers"] < SMALL_SAMPLE:
        extra.append(f"CAC rests on {ret['new_customers']} new customers (fewer than {SMALL_SAMPLE}).")
    if mk["retention_spend"] is not None and 0 < ret["customers_at_end"] < SMALL_SAMPLE:
        extra.append(f"Retention cost per customer rests on {ret['customers_at_end']} customers at the period's "
                     f"end (fewer than {SMALL_SAMPLE}).")
    doc["warnings"] = [*[x for x in doc.get("warnings", []) if not x.startswith(MARKETING_WARNINGS)], *extra]
    return doc
