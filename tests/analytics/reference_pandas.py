"""A plain pandas reading of docs/METRICS.md, written apart from analytics/metrics on purpose.

It loads the shop's rows into DataFrames and computes the report figures row by row in
Python and pandas; the property test checks that every figure equals the SQL engine's,
and the benchmark times it against the engine on the same tables. Money stays Decimal
(object columns) and the last divisions use Fraction, rounded half up once, as the
contract asks.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

THREE_PLACES = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
ZERO_PLACES = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF",
               "XOF", "XPF"}

# (name, R range, F range), as the page prints them.
SEGMENTS = [
    ("Champions", (5, 5), (4, 5)), ("Loyal", (3, 4), (4, 5)), ("Potential loyalists", (4, 5), (2, 3)),
    ("New customers", (5, 5), (1, 1)), ("Promising", (4, 4), (1, 1)), ("Need attention", (3, 3), (3, 3)),
    ("About to sleep", (3, 3), (1, 2)), ("At risk", (1, 2), (3, 4)), ("Cannot lose them", (1, 2), (5, 5)),
    ("Hibernating", (1, 2), (1, 2)),
]


def load_frames(cursor: Any, shop_id: int) -> dict[str, pd.DataFrame]:
    cursor.execute("""SELECT shopify_id, customer_shopify_id, processed_at, cancelled_at IS NOT NULL, test, subtotal,
                             current_subtotal, total, current_total, total_refunded, tags
                      FROM sync_order WHERE shop_id = %s""", [shop_id])
    orders = pd.DataFrame(cursor.fetchall(), columns=[
        "id", "customer", "processed_at", "cancelled", "test", "subtotal", "current_subtotal", "total",
        "current_total", "total_refunded", "tags"])
    cursor.execute("SELECT order_shopify_id, created_at, amount, subtotal_amount FROM sync_refund WHERE shop_id = %s",
                   [shop_id])
    refunds = pd.DataFrame(cursor.fetchall(), columns=["order_id", "created_at", "amount", "subtotal_amount"])
    cursor.execute("SELECT shopify_id, rfm_group, number_of_orders, amount_spent FROM sync_customer WHERE shop_id = %s",
                   [shop_id])
    customers = pd.DataFrame(cursor.fetchall(), columns=["id", "rfm_group", "number_of_orders", "amount_spent"])
    return {"orders": orders, "refunds": refunds, "customers": customers}


def _rhu(x: Fraction, places: int) -> Decimal:
    q = x * 10**places
    neg = q < 0
    q = abs(q)
    n = int(q)
    if q - n >= Fraction(1, 2):
        n += 1
    return Decimal(-n if neg else n).scaleb(-places)


def _money(x: Any, currency: str) -> str | None:
    if x is None:
        return None
    places = 0 if currency in ZERO_PLACES else 3 if currency in THREE_PLACES else 2
    return str(_rhu(Fraction(x), places))


def _div(a: Any, b: Any) -> Fraction | None:
    return None if b == 0 else Fraction(a) / Fraction(b)


def _pct(x: Fraction | None) -> float | None:
    return None if x is None else float(_rhu(x * 100, 2))


def _num(x: Fraction | None, places: int = 4) -> float | None:
    return None if x is None else float(_rhu(x, places))


def _dsum(values: Any) -> Decimal:
    total = Decimal(0)
    for v in values:
        total += v
    return total


def reference_document(frames: dict[str, pd.DataFrame], *, tz: str, currency: str, as_of: date, period_days: int = 365,
                       activity_days: int = 365, basis: str = "subtotal", dating: str = "order_date", k: int = 3,
                       method: str = "quantile", lifespan_override: Decimal | None = None,
                       excluded_tags: tuple[str, ...] = (),
                       marketing: dict[str, Decimal | None] | None = None) -> dict[str, Any]:
    zone = ZoneInfo(tz)

    def midnight(d: date) -> pd.Timestamp:
        return pd.Timestamp(datetime.combine(d, time(0), tzinfo=zone))

    end = midnight(as_of)
    start_date = as_of - timedelta(days=period_days)
    start = midnight(start_date)
    a_start = midnight(start_date - timedelta(days=activity_days))
    a_end = midnight(as_of - timedelta(days=activity_days))
    half = midnight(as_of - timedelta(days=activity_days // 2))
    excluded = {t.strip().lower() for t in excluded_tags if t.strip()}

    o = frames["orders"].copy()
    o["processed_at"] = pd.to_datetime(o["processed_at"], utc=True)
    o["excluded"] = [bool(excluded & {t.lower() for t in tags}) for tags in o["tags"]] if len(o) else []
    o["ok"] = ~o["test"].astype(bool) & ~o["cancelled"].astype(bool) & ~o["excluded"].astype(bool)
    counted = o[o["ok"] & o["customer"].notna() & (o["processed_at"] < end)].copy()
    counted["customer"] = counted["customer"].astype("int64")
    guests = o[o["ok"] & o["customer"].isna() & (o["processed_at"] >= start) & (o["processed_at"] < end)]

    if dating == "refund_date":
        value_col = "subtotal" if basis == "subtotal" else "total"
        ev = pd.DataFrame({"c": counted["customer"], "ts": counted["processed_at"], "v": counted[value_col],
                           "n": 1})
        rf = frames["refunds"].copy()
        if len(rf):
            rf["created_at"] = pd.to_datetime(rf["created_at"], utc=True)
            rf = rf[rf["created_at"] < end].merge(counted[["id", "customer"]], left_on="order_id", right_on="id")
            amount = rf["subtotal_amount"] if basis == "subtotal" else rf["amount"]
            ev = pd.concat([ev, pd.DataFrame({"c": rf["customer"], "ts": rf["created_at"],
                                              "v": [-x for x in amount], "n": 0})], ignore_index=True)
    else:
        value_col = "current_subtotal" if basis == "subtotal" else "current_total"
        ev = pd.DataFrame({"c": counted["customer"], "ts": counted["processed_at"], "v": counted[value_col],
                           "n": 1})
    ev = ev.reset_index(drop=True)
    ev["local"] = ev["ts"].dt.tz_convert(zone).dt.tz_localize(None)
    ev["day"] = ev["local"].dt.floor("D")
    ev["month"] = ev["local"].dt.to_period("M")
    ev["in_p"] = ev["ts"] >= start
    orders_ev = ev[ev["n"] == 1]

    # Per customer.
    per = pd.DataFrame({
        "first_ts": orders_ev.groupby("c")["ts"].min(),
        "last_ts": orders_ev.groupby("c")["ts"].max(),
        "last_day": orders_ev.groupby("c")["day"].max(),
        "first_month": orders_ev.groupby("c")["month"].min(),
        "orders_life": orders_ev.groupby("c").size(),
    })
    per["last_before_start"] = orders_ev[orders_ev["ts"] < start].groupby("c")["ts"].max()
    per["freq"] = orders_ev[orders_ev["in_p"]].groupby("c").size()
    per["freq"] = per["freq"].fillna(0).astype("int64")
    mon = ev[ev["in_p"]].groupby("c")["v"].apply(_dsum)
    per["monetary"] = [mon.get(c, Decimal(0)) for c in per.index]
    life = ev.groupby("c")["v"].apply(_dsum)
    per["spend_life"] = [life.get(c, Decimal(0)) for c in per.index]

    in_p = per[per["freq"] > 0]
    revenue = _dsum(per["monetary"])
    orders_n = int(in_p["freq"].sum())
    customers_n = len(in_p)
    s_mask = per["last_before_start"].notna() & (per["last_before_start"] >= a_start)
    e_mask = per["last_ts"] >= a_end
    s_n, e_n = int(s_mask.sum()), int(e_mask.sum())
    n_new = int((per["first_ts"] >= start).sum())
    lost = int((s_mask & ~e_mask).sum())

    if lifespan_override is not None:
        lifespan, source = Fraction(lifespan_override), "override"
    elif len(per) and per["first_ts"].min() <= midnight(as_of - timedelta(days=2 * period_days)) and lost > 0:
        lifespan, source = Fraction(s_n * period_days, 365 * lost), "churn"
    else:
        lifespan, source = Fraction(3), "default"

    def chain(rev: Decimal, orders: int, custs: int, guest: int | None = None) -> dict[str, Any]:
        cv = _div(rev, custs)
        return {"revenue": _money(rev, currency), "orders": orders, "customers": custs, "guest_orders": guest,
                "aov": _money(_div(rev, orders), currency), "purchase_frequency": _num(_div(orders, custs)),
                "customer_value": _money(cv, currency), "lifespan_years": _num(lifespan, 2),
                "lifespan_source": source,
                "clv": _money(None if cv is None else cv * 365 / period_days * lifespan, currency)}

    clv = chain(revenue, orders_n, customers_n, len(guests))
    clv["guest_share"] = _pct(_div(len(guests), len(guests) + orders_n))

    srt = orders_ev.sort_values(["c", "ts"])
    days = (srt["day"] - pd.Timestamp("1970-01-01")).dt.days
    gaps = days.groupby(srt["c"]).diff().dropna()
    retention = {
        "customers_at_start": s_n, "customers_at_end": e_n, "new_customers": n_new,
        "crr": _pct(_div(e_n - n_new, s_n)), "lost_customers": lost, "churn_rate": _pct(_div(lost, s_n)),
        "repeat_purchase_rate": _pct(_div(int((in_p["freq"] >= 2).sum()), customers_n)),
        "repeat_purchase_rate_lifetime": _pct(_div(int((per["orders_life"] >= 2).sum()), len(per))),
        "median_days_between_orders": float(np.median(gaps.to_numpy())) if len(gaps) else None,
    }

    # The same retention figures for the periods ending at each of the last 24 month starts.
    first_of = date(as_of.year, as_of.month, 1)
    series = []
    for i in range(23, -1, -1):
        idx = first_of.year * 12 + first_of.month - 1 - i
        t = date(idx // 12, idx % 12 + 1, 1)
        p_start = t - timedelta(days=period_days)

        def active(at: date) -> set[int]:
            lo, hi = midnight(at - timedelta(days=activity_days)), midnight(at)
            hit = orders_ev[(orders_ev["ts"] >= lo) & (orders_ev["ts"] < hi)]
            return set(int(c) for c in hit["c"])

        at_start, at_end = active(p_start), active(t)
        new = int(((per["first_ts"] >= midnight(p_start)) & (per["first_ts"] < midnight(t))).sum())
        lost_t = len(at_start - at_end)
        series.append({"end": t.isoformat(), "customers_at_start": len(at_start), "customers_at_end": len(at_end),
                       "new_customers": new, "lost_customers": lost_t,
                       "crr": _pct(_div(len(at_end) - new, len(at_start))),
                       "churn_rate": _pct(_div(lost_t, len(at_start)))})
    retention["series"] = series

    # RFM.
    rfm = in_p.copy()
    n = len(rfm)
    end_day = pd.Timestamp(as_of)
    rfm["recency"] = (end_day - rfm["last_day"]).dt.days.astype("int64")

    def quantile(values: list[Any], larger_is_better: bool) -> list[int]:
        ordered = sorted(values)
        out = []
        for v in values:
            worse = bisect_left(ordered, v) if larger_is_better else n - bisect_right(ordered, v)
            out.append(1 + (k * worse) // n)
        return out

    def ranged(values: list[Any], larger_is_better: bool) -> list[int]:
        lo, hi = min(values), max(values)
        out = []
        for v in values:
            idx = 0 if hi == lo else min(k - 1, int((k * (v - lo)) // (hi - lo)))
            out.append(1 + idx if larger_is_better else k - idx)
        return out

    score = quantile if method == "quantile" else ranged
    if n:
        rfm["r"] = score(list(rfm["recency"]), False)
        rfm["f"] = score(list(rfm["freq"]), True)
        rfm["m"] = score(list(rfm["monetary"]), True)
        rfm["total"] = rfm["r"] + rfm["f"] + rfm["m"]
        totals = sorted(rfm["total"])
        rfm["grp"] = [1 + (3 * bisect_left(totals, v)) // n for v in rfm["total"]]
    else:
        for col in ("r", "f", "m", "total", "grp"):
            rfm[col] = pd.Series(dtype="int64")
    names = {3: "top", 2: "middle", 1: "bottom"}
    rfm["group"] = [names[g] for g in rfm["grp"]]
    groups = {}
    for name in ("top", "middle", "bottom"):
        g = rfm[rfm["group"] == name]
        groups[name] = {"customers": len(g), "clv": chain(_dsum(g["monetary"]), int(g["freq"].sum()), len(g))}
    out_rfm: dict[str, Any] = {"scale": k, "method": method, "groups": groups}
    if k == 5:
        def seg(r: int, f: int) -> str:
            return next(nm for nm, (r0, r1), (f0, f1) in SEGMENTS if r0 <= r <= r1 and f0 <= f <= f1)
        rfm["segment"] = [seg(r, f) for r, f in zip(rfm["r"], rfm["f"], strict=True)]
        out_rfm["segments"] = {nm: int((rfm["segment"] == nm).sum()) for nm, _, _ in SEGMENTS}

    # Lifecycle.
    grp_of = rfm["grp"].to_dict()
    grp = per.index.map(lambda c: grp_of.get(c, 0))
    per["stage"] = np.select(
        [per["last_ts"] < a_end, per["last_ts"] < half, grp == 3, per["orders_life"] >= 2],
        ["lapsed", "at_risk", "advocacy", "retention"], default="purchase")
    stages = per["stage"].to_dict()
    ev["stage"] = ev["c"].map(stages)
    ev["year"] = ev["local"].dt.year
    years = sorted(set(ev["year"]))
    year_stats: dict[tuple[str, int], tuple[int, int, Decimal]] = {}
    for (stage, y), sub in ev.groupby(["stage", "year"]):
        is_order = sub["n"] == 1
        year_stats[(stage, int(y))] = (int(is_order.sum()), int(sub.loc[is_order, "c"].nunique()), _dsum(sub["v"]))
    lifecycle = {}
    for stage in ("purchase", "retention", "advocacy", "at_risk", "lapsed"):
        members = per[per["stage"] == stage]
        active = members[members["freq"] > 0]
        rev = _dsum(members["monetary"])
        o_n, c_n = int(active["freq"].sum()), len(active)
        pf = _div(o_n, c_n)
        by_year = []
        for y in years:
            yo, yc, yr = year_stats.get((stage, y), (0, 0, Decimal(0)))
            by_year.append({"year": int(y), "customers": yc, "orders": yo, "revenue": _money(yr, currency),
                            "aov": _money(_div(yr, yo), currency), "orders_per_customer": _num(_div(yo, yc))})
        lifecycle[stage] = {"customers": len(members), "aov": _money(_div(rev, o_n), currency),
                            "orders_per_customer_year": _num(None if pf is None else pf * 365 / period_days),
                            "clv": chain(rev, o_n, c_n), "by_year": by_year}

    # Cohorts: the 24 months ending with the month of the period's last day.
    last_day = as_of - timedelta(days=1)
    last_month = pd.Period(year=last_day.year, month=last_day.month, freq="M")
    first_month = per["first_month"].to_dict()
    shown = {last_month - i for i in range(24)}
    ev["cohort"] = [first_month.get(c) for c in ev["c"]]
    cells: dict[tuple[Any, Any], tuple[int, Decimal]] = {}
    in_shown = pd.Series([c in shown for c in ev["cohort"]], index=ev.index, dtype=bool)
    for (cm, mo), sub in ev[in_shown].groupby(["cohort", "month"]):
        cells[(cm, mo)] = (int(sub.loc[sub["n"] == 1, "c"].nunique()), _dsum(sub["v"]))
    sizes = per["first_month"].value_counts().to_dict()
    cohorts = []
    for i in range(23, -1, -1):
        cm = last_month - i
        size = int(sizes.get(cm, 0))
        span = (last_month - cm).n + 1
        ret_list, rev_list, cum = [], [], Fraction(0)
        for m in range(span):
            active_n, month_rev = cells.get((cm, cm + m), (0, Decimal(0)))
            cum += Fraction(month_rev)
            ret_list.append(_pct(_div(active_n, size)))
            rev_list.append(_money(_div(cum, size), currency))
        cohorts.append({"cohort": str(cm), "customers": size, "retention": ret_list, "revenue_per_customer": rev_list})

    # Against Shopify: every synced order, Shopify's valuation (current total).
    cust = frames["customers"]
    withc = o[o["customer"].notna()].copy()
    withc["customer"] = withc["customer"].astype("int64")
    crosstab: dict[str, dict[str, int]] = {"top": {}, "middle": {}, "bottom": {}}
    shopify_group = {int(r.id): (r.rfm_group or "NONE") for r in cust.itertuples()}
    for c, g in zip(rfm.index, rfm["group"], strict=True):
        sg = shopify_group.get(int(c), "NONE")
        crosstab[g][sg] = crosstab[g].get(sg, 0) + 1
    causes = dict.fromkeys(["outside_window", "test_orders", "cancellations", "excluded_tags", "refund_basis",
                            "unexplained"], 0)
    if len(withc):
        withc["okc"] = withc["ok"].astype(int)
        withc["ok_total"] = [t if ok else Decimal(0) for t, ok in zip(withc["current_total"], withc["ok"], strict=True)]
        withc["tst"] = withc["test"].astype(int)
        withc["cnl"] = (~withc["test"] & withc["cancelled"]).astype(int)
        withc["exc"] = (~withc["test"] & ~withc["cancelled"] & withc["excluded"]).astype(int)
        withc["rfd"] = (withc["ok"] & (withc["total_refunded"] > 0)).astype(int)
        g = withc.groupby("customer")
        mine = pd.DataFrame({"all": g.size(), "orders": g["okc"].sum(), "spend": g["ok_total"].apply(_dsum),
                             "tst": g["tst"].sum(), "cnl": g["cnl"].sum(), "exc": g["exc"].sum(),
                             "rfd": g["rfd"].sum()})
    else:
        mine = pd.DataFrame(columns=["all", "orders", "spend", "tst", "cnl", "exc", "rfd"])
    joined = cust.merge(mine, left_on="id", right_index=True, how="left")
    for col in ("all", "orders", "tst", "cnl", "exc", "rfd"):
        joined[col] = joined[col].fillna(0).astype("int64")
    joined["spend"] = [Decimal(0) if not isinstance(x, Decimal) else x for x in joined["spend"]]
    od = joined["orders"] != joined["number_of_orders"]
    sd = pd.Series([a != b for a, b in zip(joined["spend"], joined["amount_spent"], strict=True)], index=joined.index,
                   dtype=bool)
    differ = od | sd
    cause = np.select(
        [joined["number_of_orders"] > joined["all"], joined["tst"] > 0, joined["cnl"] > 0, joined["exc"] > 0,
         joined["rfd"] > 0], ["outside_window", "test_orders", "cancellations", "excluded_tags", "refund_basis"],
        default="unexplained")
    for name in cause[differ.to_numpy()]:
        causes[str(name)] += 1
    orders_differ, spend_differ, differing = int(od.sum()), int(sd.sum()), int(differ.sum())

    customers_rows = [
        {"customer_id": int(c), "recency_days": int(row["recency"]), "frequency": int(row["freq"]),
         "monetary": _money(row["monetary"], currency), "r": int(row["r"]), "f": int(row["f"]), "m": int(row["m"]),
         "total": int(row["total"]), "group": row["group"], "lifecycle_stage": stages[c]}
        for c, row in rfm.iterrows()
    ]
    # Marketing, from the merchant's inputs and the CLV as shown (rounded).
    mk_in = marketing or {}
    acq, ret_spend, conv = mk_in.get("acquisition_spend"), mk_in.get("retention_spend"), mk_in.get("conversion_rate")
    clv_shown = None if clv["clv"] is None else Fraction(Decimal(clv["clv"]))
    cac = None if acq is None else _div(Fraction(acq), n_new)
    ltv = None if clv_shown is None or cac is None or cac == 0 else clv_shown / cac
    out_marketing = {
        "cac": _money(cac, currency),
        "ltv_to_cac": None if ltv is None else float(_rhu(ltv, 2)),
        "return_per_customer": _money(None if clv_shown is None or cac is None else clv_shown - cac, currency),
        "max_cost_per_click": _money(None if clv_shown is None or conv is None
                                     else clv_shown * Fraction(conv) / 100, currency),
        "retention_cost_per_customer": _money(None if ret_spend is None else _div(Fraction(ret_spend), e_n),
                                              currency),
    }
    return {
        "marketing": out_marketing,
        "clv": clv, "retention": retention, "rfm": out_rfm, "lifecycle": lifecycle, "cohorts": cohorts,
        "shopify": {"rfm_crosstab": crosstab,
                    "reconciliation": {"customers_compared": len(cust), "orders_differ": int(orders_differ),
                                       "spend_differ": int(spend_differ), "customers_differing": differing,
                                       "causes": causes}},
        "customers": sorted(customers_rows, key=lambda x: (-x["total"], x["customer_id"])),
    }
