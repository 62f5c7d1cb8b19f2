# ruff: noqa: S608 - SQL fragments spliced in are constants chosen in this module; values are bound
"""The set-based half: work tables and aggregates in PostgreSQL.

Nothing here pulls the shop's orders into Python. Customers are split into shards by a hash
of their id; every per-customer figure depends on that customer's orders alone, so each
shard's tables and aggregates are built independently, on one database connection per shard
running at the same time (one core each). The only shop-wide steps are the RFM score
boundaries (quantiles need every customer's value) and the final sums, both small.

Per shard, the counted orders are read once, sorted by customer and time, into ``ev`` with
each order's gap to the customer's previous one and the customer's first order date;
the per-customer table ``cu`` is aggregated from it, and every other figure is a small
aggregate over those two (or the scored per-customer table ``cs``). Python receives counts
and exact sums and does the last divisions in ``analytics.metrics.document``.

With one shard everything runs on the caller's connection inside its transaction (tests,
and refreshes called inside a transaction). With more, the shards read the shop's rows
through one exported snapshot, so they see exactly the same data, and write committed
unlogged tables in a schema of this refresh's own, dropped at the end.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import connection, connections, transaction
from django.db.backends.utils import CursorWrapper

from analytics.metrics.params import Bounds, ReportParams, month_add
from analytics.metrics.segments import segment_case_sql

logger = logging.getLogger(__name__)

GROUP_NAMES = {3: "top", 2: "middle", 1: "bottom"}
# Time-between-orders histogram bins, in days (inclusive bounds; None = no upper bound).
GAP_BINS: tuple[tuple[int, int | None], ...] = ((0, 7), (8, 14), (15, 30), (31, 60), (61, 90), (91, 180),
                                                (181, 365), (366, None))
STAGES = ("purchase", "retention", "advocacy", "at_risk", "lapsed")
CAUSES = ("outside_window", "test_orders", "cancellations", "excluded_tags", "refund_basis", "unexplained")
SERIES_MONTHS = 24
SCHEMA_PREFIX = "an_refresh_"
# Earliest order year the lifecycle-by-year figures place (older orders would fall in bucket 0).
FIRST_YEAR = 1900
# A work schema older than this is a crashed refresh's leftover.
STALE_SCHEMA_S = 3600


@dataclass
class Aggregate:
    customers: int = 0
    orders: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, customers: int, orders: int, revenue: Decimal) -> None:
        self.customers += customers
        self.orders += orders
        self.revenue += revenue


@dataclass
class Raw:
    """Exact aggregates for one shop, period and settings; document.py turns them into figures."""

    guest_orders: int = 0
    total: Aggregate = field(default_factory=Aggregate)
    customers_ever: int = 0
    repeat_ever: int = 0
    first_order_date: date | None = None
    customers_at_start: int = 0
    customers_at_end: int = 0
    new_customers: int = 0
    lost_customers: int = 0
    repeat_in_period: int = 0
    median_gap_days: float | None = None
    gaps: int = 0
    groups: dict[str, Aggregate] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    stages: dict[str, Aggregate] = field(default_factory=dict)
    stage_members: dict[str, int] = field(default_factory=dict)
    # (stage, year) -> (customers with an order that year, orders, revenue)
    stage_years: dict[tuple[str, int], tuple[int, int, Decimal]] = field(default_factory=dict)
    cohort_sizes: dict[date, int] = field(default_factory=dict)
    # (cohort month, order month) -> (customers with an order, revenue)
    cohort_cells: dict[tuple[date, date], tuple[int, Decimal]] = field(default_factory=dict)
    crosstab: dict[str, dict[str, int]] = field(default_factory=dict)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    # For the report pages' charts: order month -> (customers with an order, orders, revenue),
    # (r, f) -> (customers, revenue), and gap counts per GAP_BINS bin.
    months: dict[date, tuple[int, int, Decimal]] = field(default_factory=dict)
    rf_grid: dict[tuple[int, int], tuple[int, Decimal]] = field(default_factory=dict)
    gap_bins: list[int] = field(default_factory=list)
    # Retention over time: for each of the last SERIES_MONTHS month starts t, the period
    # [t - P, t): (t, customers at start, at end, new, lost).
    series: list[tuple[date, int, int, int, int]] = field(default_factory=list)


def _units(value: Any) -> Decimal:
    """Money summed in SQL as whole ten-thousandths (the columns' scale) back to an exact Decimal."""
    return Decimal(value or 0).scaleb(-4)


def _value_sql(params: ReportParams) -> tuple[str, str]:
    """(order value column, refund amount column) for the basis and dating."""
    if params.refund_dating == "refund_date":
        if params.order_value_basis == "subtotal":
            # A refund whose line items are not read yet (bulk exports cannot carry them; sync reads
            # them by id) counts at its total until they are.
            return "o.subtotal", "coalesce(r.subtotal_amount, r.amount)"
        return "o.total", "r.amount"
    return ("o.current_subtotal", "") if params.order_value_basis == "subtotal" else ("o.current_total", "")


def _excluded_sql(params: ReportParams) -> str:
    """True when the order carries an excluded tag (tags compare case-insensitively, like Shopify's)."""
    if not params.settings_dict()["excluded_order_tags"]:
        return "false"
    return "EXISTS (SELECT 1 FROM unnest(o.tags) AS t(tag) WHERE lower(t.tag) = ANY(%(tags)s))"


def _median_from_counts(counts: dict[int, int]) -> float | None:
    """Exact median (mean of the two middle values when even) of a value -> count histogram."""
    total = sum(counts.values())
    if total == 0:
        return None
    lo_rank, hi_rank = (total - 1) // 2, total // 2
    seen, lo = 0, None
    for value, n in sorted(counts.items()):
        if lo is None and seen + n > lo_rank:
            lo = value
        if seen + n > hi_rank:
            return (lo + value) / 2 if lo is not None else float(value)
        seen += n
    return None


def _add(counts: dict[Any, int], key: Any, n: int) -> None:
    counts[key] = counts.get(key, 0) + int(n)


# --- the SQL of one shard -------------------------------------------------------------------------


@dataclass
class _Plan:
    """Everything one refresh's statements need: bound values and the SQL fragments they splice."""

    params: ReportParams
    bounds: Bounds
    schema: str
    shards: int
    args: dict[str, Any]
    counted: str
    value_col: str
    refund_col: str
    excluded: str
    series: list[tuple[date, date]] = field(default_factory=list)
    points: list[date] = field(default_factory=list)

    def shard_args(self, k: int) -> dict[str, Any]:
        return {**self.args, "k": k}

    def on(self, column: str) -> str:
        """The shard filter on a customer id column (every customer in exactly one shard)."""
        return "true" if self.shards == 1 else f"(hashint8({column}) & {self.shards - 1}) = %(k)s"

    def t(self, name: str, k: int) -> str:
        return f"{self.schema}.{name}_{k}"


def _plan(*, shop_id: int, params: ReportParams, bounds: Bounds, schema: str, shards: int) -> _Plan:
    value_col, refund_col = _value_sql(params)
    excluded = _excluded_sql(params)
    args: dict[str, Any] = {
        "shop": shop_id, "tz": bounds.tz, "start": bounds.start, "end": bounds.end,
        "end_date": bounds.end_date, "start_date": bounds.start_date,
        "a_start_date": bounds.active_from_at_start.date(), "a_end_date": bounds.active_from_at_end.date(),
        "half_date": bounds.half_window_at_end.date(), "first_cohort": bounds.first_cohort_month,
        "tags": params.settings_dict()["excluded_order_tags"],
    }
    counted = (f"o.shop_id = %(shop)s AND NOT o.test AND o.cancelled_at IS NULL "
               f"AND o.customer_shopify_id IS NOT NULL AND o.processed_at < %(end)s AND NOT {excluded}")
    # The series' period ends: the month starts up to the as-of date; each period's start
    # and end are points at which every customer's activity is read (one bit each).
    last = date(bounds.end_date.year, bounds.end_date.month, 1)
    ends = [month_add(last, i - SERIES_MONTHS + 1) for i in range(SERIES_MONTHS)]
    series = [(t - timedelta(days=params.period_days), t) for t in ends]
    points = sorted({d for pair in series for d in pair})
    # January firsts from long before any order to after the as-of date: bucket b is year FIRST_YEAR + b - 1.
    years = [date(y, 1, 1) for y in range(FIRST_YEAR, bounds.end_date.year + 2)]
    args.update({"points": points, "window": params.activity_window_days, "years": years})
    return _Plan(params=params, bounds=bounds, schema=schema, shards=shards, args=args, counted=counted,
                 value_col=value_col, refund_col=refund_col, excluded=excluded, series=series, points=points)


def _session_settings(cursor: CursorWrapper) -> None:
    cursor.execute("SET LOCAL work_mem = '256MB'")
    cursor.execute("SET LOCAL synchronous_commit = off")
    # A dozen short statements: compiling each one costs more than it saves.
    cursor.execute("SET LOCAL jit = off")


@dataclass
class _Part:
    """One shard's share of the figures; parts add up to the shop's."""

    totals: list[Any] = field(default_factory=list)
    gaps: dict[int, int] = field(default_factory=dict)
    cohort_cells: dict[tuple[date, date], tuple[int, Decimal]] = field(default_factory=dict)
    months: dict[date, tuple[int, int, Decimal]] = field(default_factory=dict)
    cohort_sizes: dict[date, int] = field(default_factory=dict)
    guest_orders: int = 0
    reconciliation: list[int] = field(default_factory=list)
    causes: dict[str, int] = field(default_factory=dict)
    scored: int = 0
    recency: dict[int, int] = field(default_factory=dict)
    freq: dict[int, int] = field(default_factory=dict)
    ranges: list[Any] = field(default_factory=list)
    activity: dict[int, int] = field(default_factory=dict)
    first_days: dict[date, int] = field(default_factory=dict)


def _phase_orders(cursor: CursorWrapper, *, plan: _Plan, k: int) -> _Part:
    """Read the shard's orders once: order events, per-customer table, order-level aggregates, reconciliation."""
    args = plan.shard_args(k)
    ev, rf, cu, ours, rec = (plan.t(n, k) for n in ("ev", "rf", "cu", "ours", "rec"))
    # The (shop, customer, time) index would hand the window its order, but fetching a million
    # rows through it is far slower than one sequential scan and an in-memory sort.
    cursor.execute("SET LOCAL enable_indexscan = off")
    cursor.execute("SET LOCAL enable_bitmapscan = off")
    if plan.shards == 1:
        # Alone on the machine's cores: let PostgreSQL's own workers share the scan and the sort.
        cursor.execute("SET LOCAL parallel_setup_cost = 10")
        cursor.execute("SET LOCAL parallel_tuple_cost = 0.001")
    else:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    # n = 1 for an order, 0 for a refund event (money only, never a purchase). Money is carried
    # as whole ten-thousandths (the columns' scale): bigint sums are exact and far cheaper.
    cursor.execute(f"""
        CREATE UNLOGGED TABLE {ev} AS
        SELECT c, d, v, 1 AS n, d - lag(d) OVER w AS gap, first_value(d) OVER w AS first_d, t, rfd
        FROM (SELECT o.customer_shopify_id AS c, (o.processed_at AT TIME ZONE %(tz)s)::date AS d,
                     ({plan.value_col} * 10000)::bigint AS v, (o.current_total * 10000)::bigint AS t,
                     o.total_refunded > 0 AS rfd
              FROM sync_order o WHERE {plan.counted} AND {plan.on("o.customer_shopify_id")}) y
        WINDOW w AS (PARTITION BY c ORDER BY d ROWS UNBOUNDED PRECEDING)""", args)
    cursor.execute("SET LOCAL enable_indexscan = on")
    cursor.execute("SET LOCAL enable_bitmapscan = on")
    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    if plan.refund_col:
        cursor.execute(f"""
            CREATE UNLOGGED TABLE {rf} AS
            SELECT o.customer_shopify_id AS c, (r.created_at AT TIME ZONE %(tz)s)::date AS d,
                   -({plan.refund_col} * 10000)::bigint AS v
            FROM sync_refund r JOIN sync_order o ON o.shop_id = r.shop_id AND o.shopify_id = r.order_shopify_id
            WHERE r.shop_id = %(shop)s AND r.created_at < %(end)s AND {plan.counted}
              AND {plan.on("o.customer_shopify_id")}""", args)
    else:
        cursor.execute(f"CREATE UNLOGGED TABLE {rf} (c bigint, d date, v bigint)")
    cursor.execute(f"""
        CREATE UNLOGGED TABLE {cu} AS
        SELECT e.c, e.first_d, e.first_d - (date_part('day', e.first_d)::int - 1) AS first_mo, e.last_d,
               e.last_before_start, e.orders_life, e.freq,
               e.monetary + coalesce(r.monetary, 0) AS monetary, e.spend_life + coalesce(r.spend_life, 0) AS spend_life,
               e.total_life, e.refunded_life, e.active
        FROM (
            SELECT c, min(d) AS first_d, max(d) AS last_d,
                   -- bit j: active at points[j], i.e. an order in [points[j] - A, points[j])
                   bit_or((1::bigint << width_bucket(d + %(window)s, %(points)s::date[]))
                          - (1::bigint << width_bucket(d, %(points)s::date[]))) AS active,
                   max(d) FILTER (WHERE d < %(start_date)s) AS last_before_start, count(*) AS orders_life,
                   count(*) FILTER (WHERE d >= %(start_date)s) AS freq,
                   coalesce(sum(v) FILTER (WHERE d >= %(start_date)s), 0)::bigint AS monetary,
                   sum(v)::bigint AS spend_life, sum(t)::bigint AS total_life,
                   count(*) FILTER (WHERE rfd) AS refunded_life
            FROM {ev} GROUP BY c
        ) e LEFT JOIN (
            SELECT c, coalesce(sum(v) FILTER (WHERE d >= %(start_date)s), 0)::bigint AS monetary,
                   sum(v)::bigint AS spend_life
            FROM {rf} GROUP BY c
        ) r USING (c)""", args)
    if plan.refund_col:
        # Refund events join the order rows for the monthly and yearly money sums.
        cursor.execute(f"""
            INSERT INTO {ev} (c, d, v, n, gap, first_d, t, rfd)
            SELECT r.c, r.d, r.v, 0, NULL, cu.first_d, 0, false FROM {rf} r JOIN {cu} cu USING (c)""")

    part = _Part()
    cursor.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE orders_life >= 2), min(first_d),
               count(*) FILTER (WHERE last_before_start >= %(a_start_date)s),
               count(*) FILTER (WHERE last_d >= %(a_end_date)s),
               count(*) FILTER (WHERE first_d >= %(start_date)s),
               count(*) FILTER (WHERE last_before_start >= %(a_start_date)s AND last_d < %(a_end_date)s),
               count(*) FILTER (WHERE freq >= 2),
               count(*) FILTER (WHERE freq > 0), coalesce(sum(freq), 0), coalesce(sum(monetary), 0),
               min(%(end_date)s - last_d) FILTER (WHERE freq > 0), max(%(end_date)s - last_d) FILTER (WHERE freq > 0),
               min(freq) FILTER (WHERE freq > 0), max(freq) FILTER (WHERE freq > 0),
               min(monetary) FILTER (WHERE freq > 0), max(monetary) FILTER (WHERE freq > 0)
        FROM {cu}""", args)
    row = cursor.fetchone()
    part.totals = list(row[:11])
    part.scored = int(row[8])
    part.ranges = list(row[11:])
    cursor.execute(f"SELECT gap, count(*) FROM {ev} WHERE gap IS NOT NULL GROUP BY gap")
    part.gaps = {int(g): int(n) for g, n in cursor.fetchall()}
    # Cohort cells and the monthly trend in one pass over the last 24 months' events; a row
    # opens its month for the customer when the customer's previous order was before it.
    cursor.execute(f"""
        SELECT first_mo, mo, count(*) FILTER (WHERE n = 1 AND (gap IS NULL OR d - gap < mo)),
               count(*) FILTER (WHERE n = 1), sum(v), GROUPING(first_mo)
        FROM (SELECT first_d - (date_part('day', first_d)::int - 1) AS first_mo,
                     d - (date_part('day', d)::int - 1) AS mo, d, gap, n, v
              FROM {ev} WHERE d >= %(first_cohort)s) e
        GROUP BY GROUPING SETS ((first_mo, mo), (mo))""", args)
    for cohort, mo, customers, orders, revenue, only_month in cursor.fetchall():
        if only_month:
            part.months[mo] = (int(customers), int(orders), _units(revenue))
        else:
            part.cohort_cells[(cohort, mo)] = (int(customers), _units(revenue))
    cursor.execute(f"SELECT first_mo, count(*) FROM {cu} WHERE first_mo >= %(first_cohort)s GROUP BY 1", args)
    part.cohort_sizes = {m: int(n) for m, n in cursor.fetchall()}
    cursor.execute(f"SELECT %(end_date)s - last_d, count(*) FROM {cu} WHERE freq > 0 GROUP BY 1", args)
    part.recency = {int(r): int(n) for r, n in cursor.fetchall()}
    cursor.execute(f"SELECT freq, count(*) FROM {cu} WHERE freq > 0 GROUP BY 1")
    part.freq = {int(f): int(n) for f, n in cursor.fetchall()}
    cursor.execute(f"SELECT active, count(*) FROM {cu} WHERE active <> 0 GROUP BY 1")
    part.activity = {int(a): int(n) for a, n in cursor.fetchall()}
    cursor.execute(f"SELECT first_d, count(*) FROM {cu} WHERE first_d >= %(first_point)s GROUP BY 1",
                   {**args, "first_point": plan.points[0]})
    part.first_days = {d: int(n) for d, n in cursor.fetchall()}

    # Reconciliation is against Shopify's figures as they are now, so it counts every synced
    # order (not only those before the as-of date) and values them on Shopify's basis
    # (current total). The counted orders are already in cu; this pass reads only the rest
    # (test, cancelled, excluded, later, guest) and counts the period's guest orders.
    ok = "NOT o.test AND o.cancelled_at IS NULL"
    guests = "o.customer_shopify_id IS NULL AND %(k)s = 0" if plan.shards > 1 else "false"
    cursor.execute(f"""
        CREATE UNLOGGED TABLE {ours} AS
        SELECT o.customer_shopify_id AS c, count(*) AS all_orders,
               count(*) FILTER (WHERE o.test) AS tests,
               count(*) FILTER (WHERE NOT o.test AND o.cancelled_at IS NOT NULL) AS cancels,
               count(*) FILTER (WHERE {ok} AND {plan.excluded}) AS excluded,
               count(*) FILTER (WHERE {ok} AND NOT {plan.excluded}) AS orders,
               coalesce(sum((o.current_total * 10000)::bigint) FILTER (WHERE {ok} AND NOT {plan.excluded}), 0) AS spend,
               count(*) FILTER (WHERE {ok} AND NOT {plan.excluded} AND o.total_refunded > 0) AS refunded,
               count(*) FILTER (WHERE {ok} AND NOT {plan.excluded} AND o.processed_at >= %(start)s
                                AND o.processed_at < %(end)s) AS in_period
        FROM sync_order o
        WHERE o.shop_id = %(shop)s AND NOT ({plan.counted}) AND ({plan.on("o.customer_shopify_id")} OR {guests})
        GROUP BY 1""", args)
    cursor.execute(f"SELECT in_period FROM {ours} WHERE c IS NULL")
    guest = cursor.fetchone()
    part.guest_orders = int(guest[0]) if guest else 0
    cursor.execute(f"""
        CREATE UNLOGGED TABLE {rec} AS
        WITH mine AS (
            SELECT coalesce(cu.c, x.c) AS c,
                   coalesce(cu.orders_life, 0) + coalesce(x.all_orders, 0) AS all_orders,
                   coalesce(x.tests, 0) AS tests, coalesce(x.cancels, 0) AS cancels,
                   coalesce(x.excluded, 0) AS excluded,
                   coalesce(cu.orders_life, 0) + coalesce(x.orders, 0) AS orders,
                   coalesce(cu.total_life, 0) + coalesce(x.spend, 0) AS spend,
                   coalesce(cu.refunded_life, 0) + coalesce(x.refunded, 0) AS refunded
            FROM {cu} cu FULL JOIN (SELECT * FROM {ours} WHERE c IS NOT NULL) x ON x.c = cu.c
        )
        SELECT sc.shopify_id AS c, sc.rfm_group, sc.number_of_orders AS s_orders, sc.amount_spent AS s_spend,
               coalesce(m.orders, 0) <> sc.number_of_orders AS orders_differ,
               coalesce(m.spend, 0) <> sc.amount_spent * 10000 AS spend_differ,
               CASE WHEN coalesce(m.orders, 0) = sc.number_of_orders
                         AND coalesce(m.spend, 0) = sc.amount_spent * 10000 THEN ''
                    WHEN sc.number_of_orders > coalesce(m.all_orders, 0) THEN 'outside_window'
                    WHEN m.tests > 0 THEN 'test_orders'
                    WHEN m.cancels > 0 THEN 'cancellations'
                    WHEN m.excluded > 0 THEN 'excluded_tags'
                    WHEN m.refunded > 0 THEN 'refund_basis'
                    ELSE 'unexplained' END AS cause
        FROM sync_customer sc LEFT JOIN mine m ON m.c = sc.shopify_id
        WHERE sc.shop_id = %(shop)s AND {plan.on("sc.shopify_id")}""", args)
    cursor.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE orders_differ), count(*) FILTER (WHERE spend_differ),
               count(*) FILTER (WHERE cause <> '') FROM {rec}""")
    part.reconciliation = [int(x) for x in cursor.fetchone()]
    cursor.execute(f"SELECT cause, count(*) FROM {rec} WHERE cause <> '' GROUP BY 1")
    part.causes = {c: int(n) for c, n in cursor.fetchall()}
    return part


@dataclass
class _Scores:
    """The shop-wide RFM boundaries every shard scores its customers against."""

    r_sql: str
    f_sql: str
    m_sql: str
    args: dict[str, Any]
    quantile: bool = False

    def joins(self, *, scored_only: bool) -> str:
        """The score lookups (quantile method) over ``cu``: inner joins over the scored customers
        only, or left joins that leave the unscored customers' scores NULL."""
        if not self.quantile:
            return ""
        kind, cond = ("JOIN", "") if scored_only else ("LEFT JOIN", " AND cu.freq > 0")
        return (f"{kind} unnest(%(r_v)s::int[], %(r_s)s::int[]) AS rm(value, score) ON rm.value = cu.recency{cond} "
                f"{kind} unnest(%(f_v)s::int[], %(f_s)s::int[]) AS fm(value, score) ON fm.value = cu.freq{cond}")


def _worse_map(hist: dict[int, int], *, larger_is_worse: bool) -> dict[int, int]:
    """value -> number of customers with a strictly worse value."""
    out, seen = {}, 0
    for value in sorted(hist, reverse=larger_is_worse):
        out[value] = seen
        seen += hist[value]
    return out


def _scores(cursor: CursorWrapper, plan: _Plan, parts: list[_Part]) -> _Scores:
    """Score expressions over a per-customer row `cu` with `recency`: the quantile boundaries or the ranges."""
    k = int(plan.params.rfm_scale)
    n = sum(p.scored for p in parts)
    if n == 0:
        return _Scores(r_sql="1", f_sql="1", m_sql="1", args={})
    if plan.params.rfm_method == "range":
        present = [p.ranges for p in parts if p.scored]
        rmin, rmax = min(r[0] for r in present), max(r[1] for r in present)
        fmin, fmax = min(r[2] for r in present), max(r[3] for r in present)
        mmin, mmax = min(r[4] for r in present), max(r[5] for r in present)
        return _Scores(
            r_sql=(f"{k} - LEAST({k - 1}, COALESCE(({k} * (cu.recency - %(rmin)s)) "
                   f"/ NULLIF(%(rmax)s - %(rmin)s, 0), 0))"),
            f_sql=f"1 + LEAST({k - 1}, COALESCE(({k} * (cu.freq - %(fmin)s)) / NULLIF(%(fmax)s - %(fmin)s, 0), 0))",
            m_sql=(f"1 + LEAST({k - 1}, COALESCE(({k} * (cu.monetary - %(mmin)s)) "
                   f"/ NULLIF(%(mmax)s::bigint - %(mmin)s, 0), 0))"),
            args={"rmin": rmin, "rmax": rmax, "fmin": fmin, "fmax": fmax, "mmin": mmin, "mmax": mmax},
        )
    # Tie-aware quantile: score = 1 + floor(k x customers with a strictly worse value / n).
    # Recency and frequency take few distinct values: their scores come as small lookup arrays.
    recency: dict[int, int] = {}
    freq: dict[int, int] = {}
    for p in parts:
        for key, c in p.recency.items():
            _add(recency, key, c)
        for key, c in p.freq.items():
            _add(freq, key, c)
    r_worse = _worse_map(recency, larger_is_worse=True)
    f_worse = _worse_map(freq, larger_is_worse=False)
    r_keys = sorted(r_worse)
    f_keys = sorted(f_worse)
    # Monetary has no ties to speak of: m >= s exactly when at least q_s = ceil((s - 1) n / k)
    # customers spent strictly less, i.e. when the value exceeds the q_s-th smallest one.
    qs = [-(-(s - 1) * n // k) for s in range(2, k + 1)]
    wanted = sorted({q for q in qs if q >= 1})
    thresholds: dict[int, int] = {}
    if wanted:
        union = " UNION ALL ".join(f"SELECT monetary FROM {plan.t('cu', i)} WHERE freq > 0" for i in range(plan.shards))
        cursor.execute(f"SELECT m FROM (SELECT monetary AS m, row_number() OVER (ORDER BY monetary) AS i "
                       f"FROM ({union}) u) x WHERE i = ANY(%s) ORDER BY i", [wanted])
        values = [int(v) for (v,) in cursor.fetchall()]
        thresholds = dict(zip(wanted, values, strict=True))
    m_terms = ["1"] + [("1" if q < 1 else f"(cu.monetary > {thresholds[q]})::int") for q in qs]
    return _Scores(
        r_sql="rm.score", f_sql="fm.score", m_sql=" + ".join(m_terms),
        args={"r_v": r_keys, "r_s": [1 + (k * r_worse[v]) // n for v in r_keys],
              "f_v": f_keys, "f_s": [1 + (k * f_worse[v]) // n for v in f_keys]},
        quantile=True,
    )


def _scored_sql(plan: _Plan, scores: _Scores, k: int, *, everyone: bool = False) -> str:
    """The shard's customers with their recency and scores r, f, m and total: only the scored ones
    (an order in the period), or `everyone`, the others with NULL recency and scores."""
    def score(sql: str) -> str:
        return f"CASE WHEN cu.freq > 0 THEN ({sql})::int END"

    return f"""
        SELECT x.*, x.r + x.f + x.m AS total FROM (
            SELECT cu.c, cu.freq, cu.monetary, cu.orders_life, cu.spend_life, cu.last_d,
                   CASE WHEN cu.freq > 0 THEN cu.recency END AS recency, {score(scores.r_sql)} AS r,
                   {score(scores.f_sql)} AS f, {score(scores.m_sql)} AS m
            FROM (SELECT *, %(end_date)s - last_d AS recency FROM {plan.t('cu', k)}
                  {"" if everyone else "WHERE freq > 0"}) cu
            {scores.joins(scored_only=not everyone)}) x"""


def _phase_totals(cursor: CursorWrapper, *, plan: _Plan, scores: _Scores, k: int) -> dict[int, int]:
    cursor.execute(f"SELECT total, count(*) FROM ({_scored_sql(plan, scores, k)}) s GROUP BY 1",
                   {**plan.shard_args(k), **scores.args})
    return {int(t): int(n) for t, n in cursor.fetchall()}


@dataclass
class _Part2:
    rf_grid: dict[tuple[int, int], tuple[int, Decimal]] = field(default_factory=dict)
    groups: dict[int, tuple[int, int, Decimal]] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    stages: dict[str, tuple[int, int, int, Decimal]] = field(default_factory=dict)
    stage_years: dict[tuple[str, int], tuple[int, int, Decimal]] = field(default_factory=dict)
    crosstab: dict[tuple[int, str], int] = field(default_factory=dict)


def _phase_customers(cursor: CursorWrapper, *, plan: _Plan, scores: _Scores, grp: dict[int, int], k: int,
                     rows_id: int | None) -> _Part2:
    """Score, group and stage the shard's customers; the customer-level aggregates; the score rows."""
    args = {**plan.shard_args(k), **scores.args, "grp_t": sorted(grp), "grp_g": [grp[t] for t in sorted(grp)],
            "rows": rows_id}
    cs, rec, ev = plan.t("cs", k), plan.t("rec", k), plan.t("ev", k)
    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    segment = segment_case_sql("sc.r", "sc.f") if int(plan.params.rfm_scale) == 5 else "NULL"
    # Scored in the pass over cu itself (customers without an order in the period keep NULL
    # scores), rather than joining cu to its own scored rows.
    cursor.execute(f"""
        CREATE UNLOGGED TABLE {cs} AS
        SELECT sc.c, sc.freq, sc.monetary, sc.orders_life, sc.spend_life, g.grp, sc.recency, sc.r, sc.f, sc.m,
               sc.total, {segment} AS segment, rec.rfm_group AS shopify_group, rec.s_orders, rec.s_spend, rec.cause,
               CASE WHEN sc.last_d < %(a_end_date)s THEN 'lapsed'
                    WHEN sc.last_d < %(half_date)s THEN 'at_risk'
                    WHEN g.grp = 3 THEN 'advocacy'
                    WHEN sc.orders_life >= 2 THEN 'retention'
                    ELSE 'purchase' END AS stage
        FROM ({_scored_sql(plan, scores, k, everyone=True)}) sc
        LEFT JOIN unnest(%(grp_t)s::int[], %(grp_g)s::int[]) AS g(total, grp) ON g.total = sc.total
        LEFT JOIN {rec} rec USING (c)""", args)
    out = _Part2()
    cursor.execute(f"SELECT r, f, count(*), sum(monetary) FROM {cs} WHERE grp IS NOT NULL GROUP BY 1, 2")
    out.rf_grid = {(int(r), int(f)): (int(n), _units(v)) for r, f, n, v in cursor.fetchall()}
    cursor.execute(f"SELECT grp, count(*), sum(freq), sum(monetary) FROM {cs} WHERE grp IS NOT NULL GROUP BY 1")
    out.groups = {int(g): (int(n), int(o), _units(v)) for g, n, o, v in cursor.fetchall()}
    if int(plan.params.rfm_scale) == 5:
        cursor.execute(f"SELECT segment, count(*) FROM {cs} WHERE grp IS NOT NULL GROUP BY 1")
        out.segments = {s: int(n) for s, n in cursor.fetchall()}
    cursor.execute(f"""
        SELECT stage, count(*), count(*) FILTER (WHERE freq > 0), sum(freq), sum(monetary) FROM {cs} GROUP BY 1""")
    out.stages = {s: (int(m), int(c), int(o), _units(v)) for s, m, c, o, v in cursor.fetchall()}
    # A row opens its year for the customer when the customer's previous order was before it.
    # Years as buckets of a sorted array of January firsts (a few comparisons a row, no date
    # arithmetic); the small customer table is hashed rather than both sides sorted.
    cursor.execute("SET LOCAL enable_mergejoin = off")
    cursor.execute(f"""
        SELECT cs.stage, e.yb,
               count(*) FILTER (WHERE e.n = 1 AND (e.gap IS NULL
                                                   OR width_bucket(e.d - e.gap, %(years)s::date[]) < e.yb)),
               count(*) FILTER (WHERE e.n = 1), sum(e.v)
        FROM (SELECT c, d, gap, n, v, width_bucket(d, %(years)s::date[]) AS yb FROM {ev}) e
        JOIN {cs} cs USING (c) GROUP BY 1, 2""", args)
    first_year = plan.args["years"][0].year
    out.stage_years = {(s, first_year + int(b) - 1): (int(n), int(o), _units(v))
                       for s, b, n, o, v in cursor.fetchall()}
    cursor.execute(f"""
        SELECT grp, coalesce(nullif(shopify_group, ''), 'NONE'), count(*) FROM {cs}
        WHERE grp IS NOT NULL GROUP BY 1, 2""")
    out.crosstab = {(int(g), s): int(n) for g, s, n in cursor.fetchall()}
    if rows_id is not None:
        # In customer order, every (rows, customer) index entry lands on the index's last page.
        cursor.execute(f"""
            INSERT INTO analytics_customerscore (rows_id, customer_shopify_id, recency_days, frequency,
                monetary, r, f, m, total, rfm_group, segment, lifecycle_stage, shopify_rfm_group,
                orders_lifetime, spend_lifetime, shopify_number_of_orders, shopify_amount_spent,
                reconcile_cause)
            SELECT %(rows)s, c, recency, freq, monetary * 0.0001, r, f, m, total,
                   CASE grp WHEN 3 THEN 'top' WHEN 2 THEN 'middle' ELSE 'bottom' END,
                   coalesce(segment, ''), stage, coalesce(shopify_group, ''), orders_life,
                   spend_life * 0.0001, s_orders, s_spend, coalesce(cause, '')
            FROM {cs} WHERE grp IS NOT NULL ORDER BY c""", args)
    return out


# --- running the shards ---------------------------------------------------------------------------


class _Shard(threading.Thread):
    """A worker thread with its own database connection, running the steps given to it in turn."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="analytics-shard")
        self.inbox: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self.outbox: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def run(self) -> None:
        try:
            while (step := self.inbox.get()) is not None:
                try:
                    self.outbox.put((True, step()))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
                    self.outbox.put((False, exc))
        finally:
            connections.close_all()

    def submit(self, step: Callable[[], Any] | None) -> None:
        self.inbox.put(step)

    def result(self) -> Any:
        ok, value = self.outbox.get()
        if not ok:
            raise value
        return value


def _in_transaction(step: Callable[[CursorWrapper], Any], *, snapshot: str | None = None,
                    imported: threading.Event | None = None) -> Any:
    """`step(cursor)` in a transaction of its own; with `snapshot`, one that sees what the exporter saw.

    `imported` is set once the snapshot is taken (or this failed before): the exporting transaction
    must stay open until then, since a snapshot cannot be imported after its exporter has ended.
    """
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if snapshot is not None:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot])
            if imported is not None:
                imported.set()
            _session_settings(cursor)
            return step(cursor)
    finally:
        if imported is not None:
            imported.set()


def _drop_stale_schemas(cursor: CursorWrapper) -> None:
    cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [SCHEMA_PREFIX + "%"])
    now = int(time.time())
    for (name,) in cursor.fetchall():
        try:
            born = int(name[len(SCHEMA_PREFIX):].split("_")[0])
        except ValueError:
            continue
        if now - born > STALE_SCHEMA_S:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def metrics_collect(*, shop_id: int, params: ReportParams, bounds: Bounds, rows_id: int | None = None,
                    shards: int = 1) -> Raw:
    """Every aggregate for the shop; with `rows_id`, also write the customer score rows under that id.

    `shards` > 1 runs the shards on their own connections at once and needs the caller to be
    outside a transaction (the shards cannot see its uncommitted rows); inside one, one shard
    runs on the caller's connection.
    """
    if shards > 1 and connection.in_atomic_block:
        shards = 1
    schema = f"{SCHEMA_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    plan = _plan(shop_id=shop_id, params=params, bounds=bounds, schema=schema, shards=shards)
    if shards == 1:
        with transaction.atomic(), connection.cursor() as cursor:
            _session_settings(cursor)
            cursor.execute(f"CREATE SCHEMA {schema}")
            parts = [_phase_orders(cursor, plan=plan, k=0)]
            scores = _scores(cursor, plan, parts)
            totals = [_phase_totals(cursor, plan=plan, scores=scores, k=0)]
            grp = _groups(parts, totals)
            customer_parts = [_phase_customers(cursor, plan=plan, scores=scores, grp=grp, k=0, rows_id=rows_id)]
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        return _merge(plan, parts, customer_parts)

    with connection.cursor() as cursor:
        _drop_stale_schemas(cursor)
        cursor.execute(f"CREATE SCHEMA {schema}")
    workers = [_Shard() for _ in range(shards - 1)]
    for w in workers:
        w.start()
    try:
        # Shard 0 runs here, in the transaction whose snapshot the others import, so every shard
        # reads the same rows even while a sync is writing.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT pg_export_snapshot()")
            snap = cursor.fetchone()[0]
            imported = [threading.Event() for _ in workers]
            for i, (w, done) in enumerate(zip(workers, imported, strict=True), start=1):
                w.submit(partial(_in_transaction, partial(_phase_orders, plan=plan, k=i), snapshot=snap,
                                 imported=done))
            _session_settings(cursor)
            parts = [_phase_orders(cursor, plan=plan, k=0)]
            # On a small shop this shard can finish before a busy worker has even started.
            for done in imported:
                done.wait()
        parts += [w.result() for w in workers]
        with connection.cursor() as cursor:
            scores = _scores(cursor, plan, parts)
        totals = _on_all(workers, partial(_phase_totals, plan=plan, scores=scores))
        grp = _groups(parts, totals)
        customer_parts = _on_all(workers, partial(_phase_customers, plan=plan, scores=scores, grp=grp,
                                                  rows_id=rows_id))
    finally:
        for w in workers:
            w.submit(None)
        for w in workers:
            w.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return _merge(plan, parts, customer_parts)


def _on_all(workers: list[_Shard], step: Callable[..., Any]) -> list[Any]:
    """Run `step(cursor, k=shard)` on every shard at once (shard 0 here), each in its own transaction."""
    for i, w in enumerate(workers, start=1):
        w.submit(partial(_in_transaction, partial(step, k=i)))
    first = _in_transaction(partial(step, k=0))
    return [first] + [w.result() for w in workers]


def _groups(parts: list[_Part], totals: list[dict[int, int]]) -> dict[int, int]:
    """RFM total -> group (1..3): the tie-aware quantile rule with k = 3 on the total."""
    n = sum(p.scored for p in parts)
    hist: dict[int, int] = {}
    for t in totals:
        for key, c in t.items():
            _add(hist, key, c)
    worse = _worse_map(hist, larger_is_worse=False)
    return {total: 1 + (3 * w) // n for total, w in worse.items()}


def _merge(plan: _Plan, parts: list[_Part], customer_parts: list[_Part2]) -> Raw:
    raw = Raw()
    sums = [sum(int(p.totals[i] or 0) for p in parts) for i in (0, 1, 3, 4, 5, 6, 7, 8, 9)]
    (raw.customers_ever, raw.repeat_ever, raw.customers_at_start, raw.customers_at_end, raw.new_customers,
     raw.lost_customers, raw.repeat_in_period, customers, orders) = sums
    firsts = [p.totals[2] for p in parts if p.totals[2] is not None]
    raw.first_order_date = min(firsts) if firsts else None
    raw.total = Aggregate(customers=customers, orders=orders,
                          revenue=sum((_units(p.totals[10]) for p in parts), Decimal(0)))
    raw.guest_orders = sum(p.guest_orders for p in parts)

    gaps: dict[int, int] = {}
    for p in parts:
        for g, n in p.gaps.items():
            _add(gaps, g, n)
    raw.gaps = sum(gaps.values())
    raw.median_gap_days = _median_from_counts(gaps)
    raw.gap_bins = [sum(n for g, n in gaps.items() if g >= lo and (hi is None or g <= hi)) for lo, hi in GAP_BINS]

    bounds = plan.bounds
    for p in parts:
        for mo, (c, o, v) in p.months.items():
            if mo <= bounds.last_month:
                pc, po, pv = raw.months.get(mo, (0, 0, Decimal(0)))
                raw.months[mo] = (pc + c, po + o, pv + v)
        for cell, (c, v) in p.cohort_cells.items():
            if cell[0] >= bounds.first_cohort_month:
                pc, pv = raw.cohort_cells.get(cell, (0, Decimal(0)))
                raw.cohort_cells[cell] = (pc + c, pv + v)
        for mo, n in p.cohort_sizes.items():
            _add(raw.cohort_sizes, mo, n)

    raw.series = _series(plan, parts)

    compared, orders_differ, spend_differ, differing = (sum(p.reconciliation[i] for p in parts) for i in range(4))
    causes = dict.fromkeys(CAUSES, 0)
    for p in parts:
        for cause, n in p.causes.items():
            _add(causes, cause, n)
    raw.reconciliation = {"customers_compared": compared, "orders_differ": orders_differ,
                          "spend_differ": spend_differ, "customers_differing": differing, "causes": causes}

    raw.groups = {name: Aggregate() for name in GROUP_NAMES.values()}
    raw.stages = {s: Aggregate() for s in STAGES}
    raw.stage_members = dict.fromkeys(STAGES, 0)
    raw.crosstab = {name: {} for name in GROUP_NAMES.values()}
    for cp in customer_parts:
        for rf, (n, v) in cp.rf_grid.items():
            pn, pv = raw.rf_grid.get(rf, (0, Decimal(0)))
            raw.rf_grid[rf] = (pn + n, pv + v)
        for g, (c, o, v) in cp.groups.items():
            raw.groups[GROUP_NAMES[g]].add(c, o, v)
        for name, n in cp.segments.items():
            _add(raw.segments, name, n)
        for stage, (members, c, o, v) in cp.stages.items():
            raw.stage_members[stage] += members
            raw.stages[stage].add(c, o, v)
        for sy, (c, o, v) in cp.stage_years.items():
            pc, po, pv = raw.stage_years.get(sy, (0, 0, Decimal(0)))
            raw.stage_years[sy] = (pc + c, po + o, pv + v)
        for (g, shopify_group), n in cp.crosstab.items():
            _add(raw.crosstab[GROUP_NAMES[g]], shopify_group, n)
    return raw


def _series(plan: _Plan, parts: list[_Part]) -> list[tuple[date, int, int, int, int]]:
    """Customers at start and end, new and lost, for each period of the series (exact, from the bits)."""
    activity: dict[int, int] = {}
    first_days: dict[date, int] = {}
    for p in parts:
        for mask, n in p.activity.items():
            _add(activity, mask, n)
        for day, n in p.first_days.items():
            _add(first_days, day, n)
    index = {d: j for j, d in enumerate(plan.points)}
    out = []
    for start, end in plan.series:
        a, b = 1 << index[start], 1 << index[end]
        at_start = sum(n for mask, n in activity.items() if mask & a)
        at_end = sum(n for mask, n in activity.items() if mask & b)
        kept = sum(n for mask, n in activity.items() if mask & a and mask & b)
        new = sum(n for day, n in first_days.items() if start <= day < end)
        out.append((end, at_start, at_end, new, at_start - kept))
    return out
