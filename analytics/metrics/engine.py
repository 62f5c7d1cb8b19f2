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
from datetime import date
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
    # Tie-aware quantile: `worse` counts the customers with a strictly worse value (from the
    # small recency and frequency histograms; rank() - 1 for monetary, which has no ties to
    # speak of).
    r = f"1 + ({k} * rw.worse) / st.n"
    f = f"1 + ({k} * fw.worse) / st.n"
    m = f"1 + ({k} * (rank() OVER (ORDER BY b.monetary) - 1)) / st.n"
    return r, f, m




def _median_from_counts(counts: list[tuple[int, int]]) -> float | None:
    """Exact median (mean of the two middle values when even) of a value -> count histogram."""
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    lo_rank, hi_rank = (total - 1) // 2, total // 2
    seen, lo = 0, None
    for value, n in sorted(counts):
        if lo is None and seen + n > lo_rank:
            lo = value
        if seen + n > hi_rank:
            return (lo + value) / 2 if lo is not None else float(value)
        seen += n
    return None


def metrics_collect(*, cursor: CursorWrapper, shop_id: int, params: ReportParams, bounds: Bounds,
                    snapshot_id: int | None = None) -> Raw:
    """Run every aggregate for the shop inside the caller's transaction (temp tables drop on commit).

    The shop's counted orders are read once, sorted by customer and time, into ``an_ev`` with
    their gap to the customer's previous order, the customer's first order date, and whether
    the row opens a new month or year for that customer; everything else aggregates that
    table (or the per-customer table built from it) without sorting the orders again. Every
    period boundary is a local midnight, so comparing instants equals comparing local dates.
    """
    value_col, refund_col = _value_sql(params)
    excluded = _excluded_sql(params)
    args: dict[str, Any] = {
        "shop": shop_id, "tz": bounds.tz, "start": bounds.start, "end": bounds.end,
        "end_date": bounds.end_date, "a_start": bounds.active_from_at_start, "a_end": bounds.active_from_at_end,
        "half": bounds.half_window_at_end, "start_date": bounds.start_date,
        "a_start_date": bounds.active_from_at_start.date(), "a_end_date": bounds.active_from_at_end.date(),
        "half_date": bounds.half_window_at_end.date(), "first_cohort": bounds.first_cohort_month,
        "last_month": bounds.last_month, "tags": params.settings_dict()["excluded_order_tags"],
        "snapshot": snapshot_id,
    }
    counted = (f"o.shop_id = %(shop)s AND NOT o.test AND o.cancelled_at IS NULL "
               f"AND o.customer_shopify_id IS NOT NULL AND o.processed_at < %(end)s AND NOT {excluded}")
    raw = Raw()
    # Work tables are unlogged tables in a schema of this backend's own, not temporary tables:
    # PostgreSQL's parallel workers cannot read temporary tables, and every big scan, sort and
    # aggregate below is worth splitting over both cores. They are created inside the caller's
    # transaction (invisible to other sessions, gone on rollback) and dropped before it commits.
    cursor.execute("SELECT pg_backend_pid(), current_setting('search_path')")
    pid, search_path = cursor.fetchone()
    schema = f"an_work_{int(pid)}"
    cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    cursor.execute(f"CREATE SCHEMA {schema}")
    cursor.execute(f"SET LOCAL search_path = {schema}, {search_path}")
    cursor.execute("SET LOCAL work_mem = '256MB'")
    cursor.execute("SET LOCAL synchronous_commit = off")
    # A dozen short statements: compiling each one costs more than it saves.
    cursor.execute("SET LOCAL jit = off")
    # The default costs keep the sorted pass over the orders on one core; shipping its rows
    # through Gather Merge is cheaper than sorting them all in one process.
    cursor.execute("SET LOCAL parallel_setup_cost = 10")
    cursor.execute("SET LOCAL parallel_tuple_cost = 0.001")

    # n = 1 for an order, 0 for a refund event (money only, never a purchase). The (shop,
    # customer, time) index would hand the window its order, but fetching a million rows
    # through it is far slower than one sequential scan and an in-memory sort.
    cursor.execute("SET LOCAL enable_indexscan = off")
    cursor.execute("SET LOCAL enable_bitmapscan = off")
    cursor.execute(f"""
        CREATE UNLOGGED TABLE an_ev AS
        SELECT c, d, mo, v, 1 AS n, d - prev AS gap, first_mo,
               prev IS NULL OR prev < mo AS new_month,
               prev IS NULL OR prev < d - (date_part('doy', d)::int - 1) AS new_year, t, rfd
        FROM (SELECT c, d, mo, v, t, rfd, lag(d) OVER w AS prev, first_value(mo) OVER w AS first_mo
              FROM (SELECT c, d, d - (date_part('day', d)::int - 1) AS mo, v, t, rfd
                    FROM (SELECT o.customer_shopify_id AS c, (o.processed_at AT TIME ZONE %(tz)s)::date AS d,
                                 {value_col} AS v, o.current_total AS t, o.total_refunded > 0 AS rfd
                          FROM sync_order o WHERE {counted}) y) z
              WINDOW w AS (PARTITION BY c ORDER BY d)) x""", args)
    cursor.execute("SET LOCAL enable_indexscan = on")
    cursor.execute("SET LOCAL enable_bitmapscan = on")
    if refund_col:
        cursor.execute(f"""
            CREATE UNLOGGED TABLE an_rf AS
            SELECT o.customer_shopify_id AS c, (r.created_at AT TIME ZONE %(tz)s)::date AS d, -{refund_col} AS v
            FROM sync_refund r JOIN sync_order o ON o.shop_id = r.shop_id AND o.shopify_id = r.order_shopify_id
            WHERE r.shop_id = %(shop)s AND r.created_at < %(end)s AND {counted}""", args)
    else:
        cursor.execute("CREATE UNLOGGED TABLE an_rf (c bigint, d date, v numeric)")

    cursor.execute("""
        CREATE UNLOGGED TABLE an_cu AS
        SELECT e.c, e.first_d, e.first_mo, e.last_d, e.last_before_start, e.orders_life, e.freq,
               e.monetary + coalesce(r.monetary, 0) AS monetary, e.spend_life + coalesce(r.spend_life, 0) AS spend_life,
               e.total_life, e.refunded_life
        FROM (
            SELECT c, min(d) AS first_d, min(first_mo) AS first_mo, max(d) AS last_d,
                   max(d) FILTER (WHERE d < %(start_date)s) AS last_before_start, count(*) AS orders_life,
                   count(*) FILTER (WHERE d >= %(start_date)s) AS freq,
                   coalesce(sum(v) FILTER (WHERE d >= %(start_date)s), 0) AS monetary, sum(v) AS spend_life,
                   sum(t) AS total_life, count(*) FILTER (WHERE rfd) AS refunded_life
            FROM an_ev GROUP BY c
        ) e LEFT JOIN (
            SELECT c, coalesce(sum(v) FILTER (WHERE d >= %(start_date)s), 0) AS monetary, sum(v) AS spend_life
            FROM an_rf GROUP BY c
        ) r USING (c)""", args)
    if refund_col:
        # Refund events join the order rows for the monthly and yearly money sums.
        cursor.execute("""
            INSERT INTO an_ev (c, d, mo, v, n, gap, first_mo, new_month, new_year, t, rfd)
            SELECT r.c, r.d, r.d - (date_part('day', r.d)::int - 1), r.v, 0, NULL, cu.first_mo, false, false, 0, false
            FROM an_rf r JOIN an_cu cu USING (c)""")

    cursor.execute("""
        SELECT count(*), count(*) FILTER (WHERE orders_life >= 2), min(first_d),
               count(*) FILTER (WHERE last_before_start >= %(a_start_date)s),
               count(*) FILTER (WHERE last_d >= %(a_end_date)s),
               count(*) FILTER (WHERE first_d >= %(start_date)s),
               count(*) FILTER (WHERE last_before_start >= %(a_start_date)s AND last_d < %(a_end_date)s),
               count(*) FILTER (WHERE freq >= 2),
               count(*) FILTER (WHERE freq > 0), coalesce(sum(freq), 0), coalesce(sum(monetary), 0)
        FROM an_cu""", args)
    row = cursor.fetchone()
    (raw.customers_ever, raw.repeat_ever, raw.first_order_date, raw.customers_at_start, raw.customers_at_end,
     raw.new_customers, raw.lost_customers, raw.repeat_in_period) = row[:8]
    raw.total = Aggregate(customers=row[8], orders=int(row[9]), revenue=Decimal(row[10]))

    cursor.execute("SELECT gap, count(*) FROM an_ev WHERE gap IS NOT NULL GROUP BY gap")
    gap_counts = [(int(g), int(n)) for g, n in cursor.fetchall()]
    raw.gaps = sum(n for _, n in gap_counts)
    raw.median_gap_days = _median_from_counts(gap_counts)
    raw.gap_bins = [sum(n for g, n in gap_counts if g >= lo and (hi is None or g <= hi)) for lo, hi in GAP_BINS]

    r_sql, f_sql, m_sql = _score_sql(params)
    segment = segment_case_sql("r", "f") if int(params.rfm_scale) == 5 else "NULL"
    cursor.execute(f"""
        CREATE UNLOGGED TABLE an_rfm AS
        WITH base AS (
            SELECT c, (%(end_date)s::date - last_d) AS recency, freq, monetary FROM an_cu WHERE freq > 0
        ), st AS (
            SELECT count(*) AS n, min(recency) AS rmin, max(recency) AS rmax, min(freq) AS fmin,
                   max(freq) AS fmax, min(monetary) AS mmin, max(monetary) AS mmax FROM base
        ), rw AS (
            SELECT recency, coalesce(sum(cnt) OVER (ORDER BY recency DESC ROWS BETWEEN UNBOUNDED PRECEDING
                                                    AND 1 PRECEDING), 0)::bigint AS worse
            FROM (SELECT recency, count(*) AS cnt FROM base GROUP BY 1) h
        ), fw AS (
            SELECT freq, coalesce(sum(cnt) OVER (ORDER BY freq ROWS BETWEEN UNBOUNDED PRECEDING
                                                 AND 1 PRECEDING), 0)::bigint AS worse
            FROM (SELECT freq, count(*) AS cnt FROM base GROUP BY 1) h
        ), scored AS (
            SELECT b.c, b.recency, b.freq, b.monetary, st.n,
                   ({r_sql})::int AS r, ({f_sql})::int AS f, ({m_sql})::int AS m
            FROM base b CROSS JOIN st JOIN rw USING (recency) JOIN fw USING (freq)
        ), tw AS (
            SELECT total, coalesce(sum(cnt) OVER (ORDER BY total ROWS BETWEEN UNBOUNDED PRECEDING
                                                  AND 1 PRECEDING), 0)::bigint AS worse
            FROM (SELECT r + f + m AS total, count(*) AS cnt FROM scored GROUP BY 1) h
        )
        SELECT s.c, s.recency, s.freq, s.monetary, s.r, s.f, s.m, s.r + s.f + s.m AS total,
               (1 + (3 * tw.worse) / s.n)::int AS grp, {segment} AS segment
        FROM scored s JOIN tw ON tw.total = s.r + s.f + s.m""", args)
    # Reconciliation is against Shopify's figures as they are now, so it counts every synced
    # order (not only those before the as-of date) and values them on Shopify's basis
    # (current total). The counted orders are already in an_cu; this pass reads only the
    # rest (test, cancelled, excluded, later, guest) and counts the period's guest orders.
    ok = "NOT o.test AND o.cancelled_at IS NULL"
    cursor.execute(f"""
        CREATE UNLOGGED TABLE an_ours AS
        SELECT o.customer_shopify_id AS c, count(*) AS all_orders,
               count(*) FILTER (WHERE o.test) AS tests,
               count(*) FILTER (WHERE NOT o.test AND o.cancelled_at IS NOT NULL) AS cancels,
               count(*) FILTER (WHERE {ok} AND {excluded}) AS excluded,
               count(*) FILTER (WHERE {ok} AND NOT {excluded}) AS orders,
               coalesce(sum(o.current_total) FILTER (WHERE {ok} AND NOT {excluded}), 0) AS spend,
               count(*) FILTER (WHERE {ok} AND NOT {excluded} AND o.total_refunded > 0) AS refunded,
               count(*) FILTER (WHERE {ok} AND NOT {excluded} AND o.processed_at >= %(start)s
                                AND o.processed_at < %(end)s) AS in_period
        FROM sync_order o WHERE o.shop_id = %(shop)s AND NOT ({counted}) GROUP BY 1""", args)
    cursor.execute("SELECT in_period FROM an_ours WHERE c IS NULL")
    guest = cursor.fetchone()
    raw.guest_orders = int(guest[0]) if guest else 0
    cursor.execute("""
        CREATE UNLOGGED TABLE an_rec AS
        WITH ours AS (
            SELECT coalesce(cu.c, x.c) AS c,
                   coalesce(cu.orders_life, 0) + coalesce(x.all_orders, 0) AS all_orders,
                   coalesce(x.tests, 0) AS tests, coalesce(x.cancels, 0) AS cancels,
                   coalesce(x.excluded, 0) AS excluded,
                   coalesce(cu.orders_life, 0) + coalesce(x.orders, 0) AS orders,
                   coalesce(cu.total_life, 0) + coalesce(x.spend, 0) AS spend,
                   coalesce(cu.refunded_life, 0) + coalesce(x.refunded, 0) AS refunded
            FROM an_cu cu FULL JOIN (SELECT * FROM an_ours WHERE c IS NOT NULL) x ON x.c = cu.c
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
    # One row per customer with everything the customer table needs, joined once.
    cursor.execute("""
        CREATE UNLOGGED TABLE an_cs AS
        SELECT cu.c, cu.freq, cu.monetary, cu.orders_life, cu.spend_life, rf.grp, rf.recency, rf.r, rf.f, rf.m,
               rf.total, rf.segment, rec.rfm_group AS shopify_group, rec.s_orders, rec.s_spend, rec.cause,
               CASE WHEN cu.last_d < %(a_end_date)s THEN 'lapsed'
                    WHEN cu.last_d < %(half_date)s THEN 'at_risk'
                    WHEN rf.grp = 3 THEN 'advocacy'
                    WHEN cu.orders_life >= 2 THEN 'retention'
                    ELSE 'purchase' END AS stage
        FROM an_cu cu LEFT JOIN an_rfm rf USING (c) LEFT JOIN an_rec rec USING (c)""", args)

    cursor.execute("SELECT r, f, count(*), sum(monetary) FROM an_rfm GROUP BY 1, 2")
    raw.rf_grid = {(r, f): (n, Decimal(v)) for r, f, n, v in cursor.fetchall()}
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
    # Grouped by month (cheap keys), then summed to years here: a customer's first order of a
    # year opens exactly one month, so new_year rows still count each customer once per year.
    cursor.execute("""
        SELECT cs.stage, e.mo, count(*) FILTER (WHERE e.new_year AND e.n = 1),
               count(*) FILTER (WHERE e.n = 1), sum(e.v)
        FROM an_ev e JOIN an_cs cs USING (c) GROUP BY 1, 2""")
    stage_years: dict[tuple[str, int], tuple[int, int, Decimal]] = {}
    for stage, mo, n, o, v in cursor.fetchall():
        prev_n, prev_o, prev_v = stage_years.get((stage, mo.year), (0, 0, Decimal(0)))
        stage_years[(stage, mo.year)] = (prev_n + n, prev_o + int(o), prev_v + Decimal(v))
    raw.stage_years = stage_years

    # Cohort cells and the monthly trend in one pass over the last 24 months' events.
    cursor.execute("""
        SELECT first_mo, mo, count(*) FILTER (WHERE new_month AND n = 1), count(*) FILTER (WHERE n = 1), sum(v),
               GROUPING(first_mo)
        FROM an_ev WHERE mo >= %(first_cohort)s
        GROUP BY GROUPING SETS ((first_mo, mo), (mo))""", args)
    for cohort, mo, customers, orders, revenue, only_month in cursor.fetchall():
        if only_month:
            if mo <= bounds.last_month:
                raw.months[mo] = (customers, int(orders), Decimal(revenue))
        elif cohort >= bounds.first_cohort_month:
            raw.cohort_cells[(cohort, mo)] = (customers, Decimal(revenue))
    cursor.execute("SELECT first_mo, count(*) FROM an_cu WHERE first_mo >= %(first_cohort)s GROUP BY 1", args)
    raw.cohort_sizes = dict(cursor.fetchall())

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
        SELECT grp, coalesce(nullif(shopify_group, ''), 'NONE'), count(*)
        FROM an_cs WHERE grp IS NOT NULL GROUP BY 1, 2""")
    raw.crosstab = {name: {} for name in GROUP_NAMES.values()}
    for grp, shopify_group, n in cursor.fetchall():
        raw.crosstab[GROUP_NAMES[grp]][shopify_group] = n

    if snapshot_id is not None:
        # In customer order, every (snapshot, customer) index entry lands on the index's last page.
        cursor.execute("""
            INSERT INTO analytics_customerscore (snapshot_id, customer_shopify_id, recency_days, frequency,
                monetary, r, f, m, total, rfm_group, segment, lifecycle_stage, shopify_rfm_group,
                orders_lifetime, spend_lifetime, shopify_number_of_orders, shopify_amount_spent,
                reconcile_cause)
            SELECT %(snapshot)s, c, recency, freq, monetary, r, f, m, total,
                   CASE grp WHEN 3 THEN 'top' WHEN 2 THEN 'middle' ELSE 'bottom' END,
                   coalesce(segment, ''), stage, coalesce(shopify_group, ''), orders_life,
                   spend_life, s_orders, s_spend, coalesce(cause, '')
            FROM an_cs WHERE grp IS NOT NULL ORDER BY c""", args)
    cursor.execute(f"DROP SCHEMA {schema} CASCADE")
    cursor.execute("SELECT set_config('search_path', %s, true)", [search_path])
    return raw
