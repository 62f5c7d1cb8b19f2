"""(x, t_x, T, m) per customer, from transactions or straight from the shop's counted orders.

Conventions (the papers' and lifetimes'): purchases on the same calendar day (in
the shop's time zone) are one transaction, their values summed; x = purchase days
after the first; t_x = days from the first to the last purchase day; T = days from
the first purchase day to the last day observed; m = the mean value of the repeat
transactions (first purchase left out; 0 when x = 0). For a report "as of" a date
(exclusive, as METRICS.md defines the period end) the last day observed is the
day before, so a customer whose first order is on that day has T = 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection

from analytics.predictive.rows import FloatArray
from shops.models import Shop
from sync.models import Order

TimeUnit = Literal["days", "weeks"]
UNIT_DAYS: dict[str, int] = {"days": 1, "weeks": 7}
# METRICS.md order-value bases and the Order column each reads.
BASIS_COLUMNS: dict[str, str] = {"subtotal": "current_subtotal", "total": "current_total"}


@dataclass(frozen=True)
class Summary:
    customer_id: np.ndarray  # int64 Shopify ids
    x: FloatArray
    t_x: FloatArray  # in `unit`
    T: FloatArray  # in `unit`
    m: FloatArray  # mean repeat transaction value (float; the model is statistical)
    first_day: np.ndarray  # datetime64[D]
    last_observed: dt.date
    unit: TimeUnit

    def __len__(self) -> int:
        return len(self.x)


def summary_from_transactions(
    *,
    customer_ids: np.ndarray,
    days: np.ndarray,
    values: FloatArray,
    last_observed: dt.date,
    unit: TimeUnit = "days",
) -> Summary:
    """The summary of dated transactions (days as datetime64[D]) seen up to and including last_observed."""
    days = np.asarray(days, dtype="datetime64[D]")
    end = np.datetime64(last_observed, "D")
    keep = days <= end
    cid = np.asarray(customer_ids, dtype=np.int64)[keep]
    day = days[keep].astype(np.int64)
    val = np.asarray(values, dtype=np.float64)[keep]
    k = UNIT_DAYS[unit]
    if not len(cid):
        empty = np.zeros(0)
        return Summary(
            customer_id=np.zeros(0, dtype=np.int64),
            x=empty,
            t_x=empty,
            T=empty,
            m=empty,
            first_day=np.zeros(0, dtype="datetime64[D]"),
            last_observed=last_observed,
            unit=unit,
        )
    # One transaction per customer and day.
    order = np.lexsort((day, cid))
    cid, day, val = cid[order], day[order], val[order]
    new_txn = np.ones(len(cid), dtype=bool)
    new_txn[1:] = (cid[1:] != cid[:-1]) | (day[1:] != day[:-1])
    txn_idx = np.cumsum(new_txn) - 1
    t_cid = cid[new_txn]
    t_day = day[new_txn]
    t_val = np.bincount(txn_idx, weights=val)
    new_cust = np.ones(len(t_cid), dtype=bool)
    new_cust[1:] = t_cid[1:] != t_cid[:-1]
    cust_idx = np.cumsum(new_cust) - 1
    starts = np.flatnonzero(new_cust)
    n_txn = np.bincount(cust_idx)
    first = t_day[starts]
    last = t_day[np.r_[starts[1:], len(t_day)] - 1]
    total = np.bincount(cust_idx, weights=t_val)
    x = (n_txn - 1).astype(np.float64)
    repeat_value = total - t_val[starts]
    m = np.divide(repeat_value, x, out=np.zeros_like(x), where=x > 0)
    return Summary(
        customer_id=t_cid[starts],
        x=x,
        t_x=(last - first).astype(np.float64) / k,
        T=(end.astype(np.int64) - first).astype(np.float64) / k,
        m=m,
        first_day=first.astype("datetime64[D]"),
        last_observed=last_observed,
        unit=unit,
    )


def _day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


_DAYS_SQL = """
    SELECT customer_shopify_id AS cid,
           (processed_at AT TIME ZONE %(tz)s)::date AS day,
           SUM({value}) AS value
    FROM {table}
    WHERE shop_id = %(shop_id)s AND NOT test AND cancelled_at IS NULL
      AND customer_shopify_id IS NOT NULL
      AND processed_at >= %(start)s AND processed_at < %(end)s{excluded}
    GROUP BY 1, 2
"""
# Tags compare case-insensitively, as in the descriptive figures (analytics.metrics.engine).
_EXCLUDED_SQL = """
      AND NOT EXISTS (SELECT 1 FROM unnest(tags) AS t(tag) WHERE lower(t.tag) = ANY(%(excluded)s::text[]))"""


def excluded_tags_normal(tags: Sequence[str]) -> list[str]:
    """The excluded tags as the SQL compares them: trimmed, lower-case, distinct, sorted."""
    return sorted({t.strip().lower() for t in tags if t.strip()})


def _days_sql(basis: str, excluded: Sequence[str]) -> str:
    # Every interpolated piece is a constant, never input; the tags travel as a parameter.
    return _DAYS_SQL.format(
        value=BASIS_COLUMNS[basis], table=Order._meta.db_table, excluded=_EXCLUDED_SQL if excluded else ""
    )


def summary_for_shop(
    *,
    shop: Shop,
    as_of: dt.date,
    order_value_basis: str = "subtotal",
    unit: TimeUnit = "days",
    excluded_tags: Sequence[str] = (),
) -> Summary:
    """Counted orders before `as_of` (a date in the shop's zone, exclusive), summarised in SQL."""
    tz = ZoneInfo(shop.iana_timezone or "UTC")
    last_observed = as_of - dt.timedelta(days=1)
    excluded = excluded_tags_normal(excluded_tags)
    sql = f"""
        WITH days AS ({_days_sql(order_value_basis, excluded)}),
        firsts AS (SELECT cid, day, value, MIN(day) OVER (PARTITION BY cid) AS first_day FROM days)
        SELECT cid,
               COUNT(*) - 1,
               MAX(day) - MIN(day),
               %(last)s::date - MIN(day),
               COALESCE(SUM(value) FILTER (WHERE day > first_day), 0),
               MIN(day)
        FROM firsts GROUP BY cid ORDER BY cid
    """  # noqa: S608 - the only interpolated names are constants
    params: dict[str, Any] = {
        "tz": str(tz),
        "shop_id": shop.pk,
        "excluded": excluded,
        "start": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        "end": _day_start(as_of, tz),
        "last": last_observed,
    }
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    k = UNIT_DAYS[unit]
    n = len(rows)
    cid = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    x = np.fromiter((r[1] for r in rows), dtype=np.float64, count=n)
    t_x = np.fromiter((r[2] for r in rows), dtype=np.float64, count=n) / k
    T = np.fromiter((r[3] for r in rows), dtype=np.float64, count=n) / k
    repeat = np.fromiter((float(r[4] or Decimal(0)) for r in rows), dtype=np.float64, count=n)
    first = np.array([r[5] for r in rows], dtype="datetime64[D]") if n else np.zeros(0, dtype="datetime64[D]")
    m = np.divide(repeat, x, out=np.zeros_like(x), where=x > 0)
    return Summary(customer_id=cid, x=x, t_x=t_x, T=T, m=m, first_day=first, last_observed=last_observed, unit=unit)


def holdout_purchases_for_shop(
    *, shop: Shop, start: dt.date, end: dt.date, excluded_tags: Sequence[str] = ()
) -> tuple[np.ndarray, FloatArray]:
    """Purchase days per customer in [start, end) (shop zone): customer ids (sorted) and counts."""
    tz = ZoneInfo(shop.iana_timezone or "UTC")
    excluded = excluded_tags_normal(excluded_tags)
    sql = f"WITH days AS ({_days_sql('subtotal', excluded)}) SELECT cid, COUNT(*) FROM days GROUP BY cid ORDER BY cid"  # noqa: S608
    params: dict[str, Any] = {
        "tz": str(tz),
        "shop_id": shop.pk,
        "excluded": excluded,
        "start": _day_start(start, tz),
        "end": _day_start(end, tz),
    }
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    cid = np.array([r[0] for r in rows], dtype=np.int64)
    counts = np.array([r[1] for r in rows], dtype=np.float64)
    return cid, counts


def repeat_days_for_shop(
    *, shop: Shop, cohort_end: dt.date, start: dt.date, end: dt.date, excluded_tags: Sequence[str] = ()
) -> tuple[np.ndarray, FloatArray]:
    """Repeat purchase days per calendar day in [start, end), for customers first buying before cohort_end."""
    tz = ZoneInfo(shop.iana_timezone or "UTC")
    excluded = excluded_tags_normal(excluded_tags)
    sql = f"""
        WITH days AS ({_days_sql("subtotal", excluded)}),
        firsts AS (SELECT cid, day, MIN(day) OVER (PARTITION BY cid) AS first_day FROM days)
        SELECT day, COUNT(*) FROM firsts
        WHERE day > first_day AND first_day < %(cohort_end)s AND day >= %(from)s
        GROUP BY day ORDER BY day
    """  # noqa: S608
    params: dict[str, Any] = {
        "tz": str(tz),
        "shop_id": shop.pk,
        "excluded": excluded,
        "start": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        "end": _day_start(end, tz),
        "cohort_end": cohort_end,
        "from": start,
    }
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    days = np.array([r[0] for r in rows], dtype="datetime64[D]") if rows else np.zeros(0, dtype="datetime64[D]")
    return days, np.array([r[1] for r in rows], dtype=np.float64)
