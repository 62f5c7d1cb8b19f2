# ruff: noqa: S608 - SQL fragments spliced in are constants chosen in this module; values are bound
"""The set-based half: temporary tables and aggregates in PostgreSQL, one transaction per refresh.

Nothing here pulls the shop's orders into Python. The shop's counted orders (and, under
refund dating, its refunds) become one temporary event table; per-customer and
per-customer-month tables are aggregated from it; every figure is then a small aggregate
over those. Python receives counts and exact Decimal sums and does the last divisions in
``analytics.metrics.document``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.backends.utils import CursorWrapper

from analytics.metrics.params import Bounds, ReportParams
from analytics.metrics.segments import segment_case_sql

GROUP_NAMES = {3: "top", 2: "middle", 1: "bottom"}
# Time-between-orders histogram bins, in days (inclusive bounds; None = no upper bound).
GAP_BINS: tuple[tuple[int, int | None], ...] = ((0, 7), (8, 14), (15, 30), (31, 60), (61, 90), (91, 180),
                                                (181, 365), (366, None))
STAGES = ("purchase", "retention", "advocacy", "at_risk", "lapsed")


@dataclass
class Aggregate:
    customers: int = 0
    orders: int = 0
    revenue: Decimal = Decimal(0)


@dataclass
class Raw:
    """Exact aggregates for one shop, period and settings; document.py turns them into figures."""

    guest_orders: int = 0
    total: Aggregate = field(default_factory=Aggregate)
    customers_ever: int = 0
    repeat_ever: int = 0
    first_order_at: datetime | None = None
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


def _value_sql(params: ReportParams) -> tuple[str, str]:
    """(order value column, refund amount column) for the basis and dating."""
    if params.refund_dating == "refund_date":
        if params.order_value_basis == "subtotal":
            return "o.subtotal", "r.subtotal_amount"
        return "o.total", "r.amount"
    return ("o.current_subtotal", "") if params.order_value_basis == "subtotal" else ("o.current_total", "")


def _excluded_sql(params: ReportParams) -> str:
    """True when the order carries an excluded tag (tags compare case-insensitively, like Shopify's)."""
    if not params.settings_dict()["excluded_order_tags"]:
        return "false"
    return "EXISTS (SELECT 1 FROM unnest(o.tags) AS t(tag) WHERE lower(t.tag) = ANY(%(tags)s))"


def _score_sql(params: ReportParams) -> tuple[str, str, str]:
    k = int(params.rfm_scale)
    if params.rfm_method == "range":
        r = f"{k} - LEAST({k - 1}, COALESCE(({k} * (b.recency - st.rmin)) / NULLIF(st.rmax - st.rmin, 0), 0))"
        f = f"1 + LEAST({k - 1}, COALESCE(({k} * (b.freq - st.fmin)) / NULLIF(st.fmax - st.fmin, 0), 0))"
        m = (f"(1 + LEAST({k - 1}, COALESCE(div({k} * (b.monetary - st.mmin), "
             f"NULLIF(st.mmax - st.mmin, 0)), 0)))::int")
        return r, f, m
    # Tie-aware quantile: rank() - 1 counts the customers with a strictly better-placed value.
    r = f"1 + ({k} * (rank() OVER (ORDER BY b.recency DESC) - 1)) / st.n"
    f = f"1 + ({k} * (rank() OVER (ORDER BY b.freq) - 1)) / st.n"
    m = f"1 + ({k} * (rank() OVER (ORDER BY b.monetary) - 1)) / st.n"
    return r, f, m


def metrics_collect(*, cursor: CursorWrapper, shop_id: int, params: ReportParams, bounds: Bounds,
                    snapshot_id: int | None = None) -> Raw:
    """Run every aggregate for the shop inside the caller's transaction (temp tables drop on commit)."""
    value_col, refund_col = _value_sql(params)
    excluded = _excluded_sql(params)
    args: dict[str, Any] = {
        "shop": shop_id, "tz": bounds.tz, "start": bounds.start, "end": bounds.end,
        "end_date": bounds.end_date, "a_start": bounds.active_from_at_start, "a_end": bounds.active_from_at_end,
        "half": bounds.half_window_at_end, "first_cohort": bounds.first_cohort_month,
        "last_month": bounds.last_month, "tags": params.settings_dict()["excluded_order_tags"],
        "snapshot": snapshot_id,
    }
    counted = (f"o.shop_id = %(shop)s AND NOT o.test AND o.cancelled_at IS NULL "
               f"AND o.customer_shopify_id IS NOT NULL AND o.processed_at < %(end)s AND NOT {excluded}")
    raw = Raw()
    cursor.execute("SET LOCAL work_mem = '256MB'")
    for name in ("an_ev", "an_cu", "an_cm", "an_rfm", "an_cs", "an_rec"):
        cursor.execute(f"DROP TABLE IF EXISTS {name}")

    refunds = ""
    if refund_col:
        refunds = f"""
        UNION ALL
        SELECT o.customer_shopify_id, r.created_at, (r.created_at AT TIME ZONE %(tz)s)::date, -{refund_col}, 0
        FROM sync_refund r JOIN sync_order o ON o.shop_id = r.shop_id AND o.shopify_id = r.order_shopify_id
        WHERE r.shop_id = %(shop)s AND r.created_at < %(end)s AND {counted}"""
    # n = 1 for an order, 0 for a refund event (money only, never a purchase).
    cursor.execute(f"""
        CREATE TEMP TABLE an_ev ON COMMIT DROP AS
        SELECT o.customer_shopify_id AS c, o.processed_at AS ts,
               (o.processed_at AT TIME ZONE %(tz)s)::date AS d, {value_col} AS v, 1 AS n
        FROM sync_order o WHERE {counted}{refunds}""", args)

    cursor.execute(f"""
        SELECT count(*) FROM sync_order o
        WHERE o.shop_id = %(shop)s AND NOT o.test AND o.cancelled_at IS NULL AND o.customer_shopify_id IS NULL
          AND o.processed_at >= %(start)s AND o.processed_at < %(end)s AND NOT {excluded}""", args)
    raw.guest_orders = cursor.fetchone()[0]

    cursor.execute("""
        CREATE TEMP TABLE an_cu ON COMMIT DROP AS
        SELECT c,
               min(ts) FILTER (WHERE n = 1) AS first_ts,
               date_trunc('month', min(d) FILTER (WHERE n = 1))::date AS first_mo,
               max(ts) FILTER (WHERE n = 1) AS last_ts,
               max(d) FILTER (WHERE n = 1) AS last_d,
               max(ts) FILTER (WHERE n = 1 AND ts < %(start)s) AS last_before_start,
               count(*) FILTER (WHERE n = 1) AS orders_life,
               count(*) FILTER (WHERE n = 1 AND ts >= %(start)s) AS freq,
               coalesce(sum(v) FILTER (WHERE ts >= %(start)s), 0) AS monetary,
               sum(v) AS spend_life
        FROM an_ev GROUP BY c""", args)
    cursor.execute("""
        CREATE TEMP TABLE an_cm ON COMMIT DROP AS
        SELECT c, date_trunc('month', d)::date AS mo, count(*) FILTER (WHERE n = 1) AS orders, sum(v) AS rev
        FROM an_ev GROUP BY 1, 2""")

    cursor.execute("""
        SELECT count(*), count(*) FILTER (WHERE orders_life >= 2), min(first_ts),
               count(*) FILTER (WHERE last_before_start >= %(a_start)s),
               count(*) FILTER (WHERE last_ts >= %(a_end)s),
               count(*) FILTER (WHERE first_ts >= %(start)s),
               count(*) FILTER (WHERE last_before_start >= %(a_start)s AND last_ts < %(a_end)s),
               count(*) FILTER (WHERE freq >= 2),
               count(*) FILTER (WHERE freq > 0), coalesce(sum(freq), 0), coalesce(sum(monetary), 0)
        FROM an_cu""", args)
    row = cursor.fetchone()
    (raw.customers_ever, raw.repeat_ever, raw.first_order_at, raw.customers_at_start, raw.customers_at_end,
     raw.new_customers, raw.lost_customers, raw.repeat_in_period) = row[:8]
    raw.total = Aggregate(customers=row[8], orders=int(row[9]), revenue=Decimal(row[10]))

    bins = ", ".join(f"count(*) FILTER (WHERE gap >= {lo}" + (f" AND gap <= {hi})" if hi is not None else ")")
                     for lo, hi in GAP_BINS)
    cursor.execute(f"""
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap), count(*), {bins} FROM (
            SELECT d - lag(d) OVER (PARTITION BY c ORDER BY ts, d) AS gap FROM an_ev WHERE n = 1) g
        WHERE gap IS NOT NULL""")
    row = cursor.fetchone()
    raw.median_gap_days, raw.gaps = row[0], row[1]
    raw.gap_bins = [int(n) for n in row[2:]]

    r_sql, f_sql, m_sql = _score_sql(params)
    segment = segment_case_sql("r", "f") if int(params.rfm_scale) == 5 else "NULL"
    cursor.execute(f"""
        CREATE TEMP TABLE an_rfm ON COMMIT DROP AS
        WITH base AS (
            SELECT c, (%(end_date)s::date - last_d) AS recency, freq, monetary FROM an_cu WHERE freq > 0
        ), st AS (
            SELECT count(*) AS n, min(recency) AS rmin, max(recency) AS rmax, min(freq) AS fmin,
                   max(freq) AS fmax, min(monetary) AS mmin, max(monetary) AS mmax FROM base
        ), scored AS (
            SELECT b.c, b.recency, b.freq, b.monetary, st.n,
                   ({r_sql})::int AS r, ({f_sql})::int AS f, ({m_sql})::int AS m
            FROM base b CROSS JOIN st
        )
        SELECT c, recency, freq, monetary, r, f, m, r + f + m AS total,
               (1 + (3 * (rank() OVER (ORDER BY r + f + m) - 1)) / n)::int AS grp,
               {segment} AS segment
        FROM scored""", args)
    cursor.execute("""
        CREATE TEMP TABLE an_cs ON COMMIT DROP AS
        SELECT cu.*, rf.grp,
               CASE WHEN cu.last_ts < %(a_end)s THEN 'lapsed'
                    WHEN cu.last_ts < %(half)s THEN 'at_risk'
                    WHEN rf.grp = 3 THEN 'advocacy'
                    WHEN cu.orders_life >= 2 THEN 'retention'
                    ELSE 'purchase' END AS stage
        FROM an_cu cu LEFT JOIN an_rfm rf USING (c)""", args)

    cursor.execute("SELECT r, f, count(*), sum(monetary) FROM an_rfm GROUP BY 1, 2")
    raw.rf_grid = {(r, f): (n, Decimal(v)) for r, f, n, v in cursor.fetchall()}
    cursor.execute("""
        SELECT mo, count(*) FILTER (WHERE orders > 0), sum(orders), sum(rev) FROM an_cm
        WHERE mo >= %(first_cohort)s AND mo <= %(last_month)s GROUP BY 1""", args)
    raw.months = {mo: (n, int(o), Decimal(v)) for mo, n, o, v in cursor.fetchall()}
    cursor.execute("SELECT grp, count(*), sum(freq), sum(monetary) FROM an_rfm GROUP BY grp")
    raw.groups = {name: Aggregate() for name in GROUP_NAMES.values()}
    for grp, customers, orders, revenue in cursor.fetchall():
        raw.groups[GROUP_NAMES[grp]] = Aggregate(customers, int(orders), Decimal(revenue))
    if int(params.rfm_scale) == 5:
        cursor.execute("SELECT segment, count(*) FROM an_rfm GROUP BY segment")
        raw.segments = {name: n for name, n in cursor.fetchall()}

    cursor.execute("""
        SELECT stage, count(*), count(*) FILTER (WHERE freq > 0), sum(freq), sum(monetary)
        FROM an_cs GROUP BY stage""")
    raw.stages = {s: Aggregate() for s in STAGES}
    raw.stage_members = dict.fromkeys(STAGES, 0)
    for stage, members, customers, orders, revenue in cursor.fetchall():
        raw.stage_members[stage] = members
        raw.stages[stage] = Aggregate(customers, int(orders), Decimal(revenue))
    cursor.execute("""
        SELECT cs.stage, extract(year FROM m.mo)::int AS y, count(DISTINCT m.c) FILTER (WHERE m.orders > 0),
               sum(m.orders), sum(m.rev)
        FROM an_cm m JOIN an_cs cs USING (c) GROUP BY 1, 2""")
    raw.stage_years = {(s, y): (n, int(o), Decimal(v)) for s, y, n, o, v in cursor.fetchall()}

    cursor.execute("""
        SELECT first_mo, count(*) FROM an_cu WHERE first_mo >= %(first_cohort)s GROUP BY 1""", args)
    raw.cohort_sizes = dict(cursor.fetchall())
    cursor.execute("""
        SELECT cu.first_mo, m.mo, count(*) FILTER (WHERE m.orders > 0), sum(m.rev)
        FROM an_cm m JOIN an_cu cu USING (c) WHERE cu.first_mo >= %(first_cohort)s GROUP BY 1, 2""", args)
    raw.cohort_cells = {(c, mo): (n, Decimal(v)) for c, mo, n, v in cursor.fetchall()}

    # Reconciliation is against Shopify's figures as they are now, so it reads every synced
    # order (not only those before the as-of date) and values them on Shopify's basis.
    ok = "NOT o.test AND o.cancelled_at IS NULL"
    cursor.execute(f"""
        CREATE TEMP TABLE an_rec ON COMMIT DROP AS
        WITH ours AS (
            SELECT o.customer_shopify_id AS c, count(*) AS all_orders,
                   count(*) FILTER (WHERE o.test) AS tests,
                   count(*) FILTER (WHERE NOT o.test AND o.cancelled_at IS NOT NULL) AS cancels,
                   count(*) FILTER (WHERE {ok} AND {excluded}) AS excluded,
                   count(*) FILTER (WHERE {ok} AND NOT {excluded}) AS orders,
                   coalesce(sum(o.current_total) FILTER (WHERE {ok} AND NOT {excluded}), 0) AS spend,
                   count(*) FILTER (WHERE {ok} AND NOT {excluded} AND o.total_refunded > 0) AS refunded
            FROM sync_order o WHERE o.shop_id = %(shop)s AND o.customer_shopify_id IS NOT NULL GROUP BY 1
        )
        SELECT sc.shopify_id AS c, sc.rfm_group, sc.number_of_orders AS s_orders, sc.amount_spent AS s_spend,
               coalesce(ours.orders, 0) <> sc.number_of_orders AS orders_differ,
               coalesce(ours.spend, 0) <> sc.amount_spent AS spend_differ,
               CASE WHEN coalesce(ours.orders, 0) = sc.number_of_orders
                         AND coalesce(ours.spend, 0) = sc.amount_spent THEN ''
                    WHEN sc.number_of_orders > coalesce(ours.all_orders, 0) THEN 'outside_window'
                    WHEN ours.tests > 0 THEN 'test_orders'
                    WHEN ours.cancels > 0 THEN 'cancellations'
                    WHEN ours.excluded > 0 THEN 'excluded_tags'
                    WHEN ours.refunded > 0 THEN 'refund_basis'
                    ELSE 'unexplained' END AS cause
        FROM sync_customer sc LEFT JOIN ours ON ours.c = sc.shopify_id
        WHERE sc.shop_id = %(shop)s""", args)
    cursor.execute("""
        SELECT count(*), count(*) FILTER (WHERE orders_differ), count(*) FILTER (WHERE spend_differ),
               count(*) FILTER (WHERE cause <> '') FROM an_rec""")
    compared, orders_differ, spend_differ, differing = cursor.fetchone()
    cursor.execute("SELECT cause, count(*) FROM an_rec WHERE cause <> '' GROUP BY 1")
    causes = dict.fromkeys(("outside_window", "test_orders", "cancellations", "excluded_tags",
                            "refund_basis", "unexplained"), 0)
    causes.update(dict(cursor.fetchall()))
    raw.reconciliation = {"customers_compared": compared, "orders_differ": orders_differ,
                          "spend_differ": spend_differ, "customers_differing": differing, "causes": causes}

    cursor.execute("""
        SELECT rf.grp, coalesce(nullif(rec.rfm_group, ''), 'NONE'), count(*)
        FROM an_rfm rf LEFT JOIN an_rec rec USING (c) GROUP BY 1, 2""")
    raw.crosstab = {name: {} for name in GROUP_NAMES.values()}
    for grp, shopify_group, n in cursor.fetchall():
        raw.crosstab[GROUP_NAMES[grp]][shopify_group] = n

    if snapshot_id is not None:
        cursor.execute("""
            INSERT INTO analytics_customerscore (snapshot_id, customer_shopify_id, recency_days, frequency,
                monetary, r, f, m, total, rfm_group, segment, lifecycle_stage, shopify_rfm_group,
                orders_lifetime, spend_lifetime, shopify_number_of_orders, shopify_amount_spent,
                reconcile_cause)
            SELECT %(snapshot)s, rf.c, rf.recency, rf.freq, rf.monetary, rf.r, rf.f, rf.m, rf.total,
                   CASE rf.grp WHEN 3 THEN 'top' WHEN 2 THEN 'middle' ELSE 'bottom' END,
                   coalesce(rf.segment, ''), cs.stage, coalesce(rec.rfm_group, ''), cs.orders_life,
                   cs.spend_life, rec.s_orders, rec.s_spend, coalesce(rec.cause, '')
            FROM an_rfm rf JOIN an_cs cs USING (c) LEFT JOIN an_rec rec USING (c)""", args)
    for name in ("an_ev", "an_cu", "an_cm", "an_rfm", "an_cs", "an_rec"):
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
    return raw
