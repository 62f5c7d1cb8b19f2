"""Analytics refresh at scale: a generated shop, the SQL engine against the pandas reading.

    .venv/bin/python bench/analytics_refresh.py --orders 1000000 --customers 250000

Creates (and drops, unless --keep) a scratch database on the system PostgreSQL, generates
the shop straight into it with generate_series, then measures:
- refresh_s: snapshot_refresh (every figure, customer rows written; predictive block off),
  best of --runs, after one warm-up when --runs > 1; refresh_cpu_s is the CPU the database
  backends (every shard's connection and their parallel workers, sampled every 50 ms) and
  this process spent on that run (the machine is shared: wall time moves with the load, reported as load_avg_1m);
- pandas_s / pandas_ratio: tests/analytics/reference_pandas.py loading the same tables and
  computing the same figures, in this process;
- report_ms: `manage.py report` answered from the stored snapshot (call_command in process,
  median of 5), plus report_process_ms for a fresh `manage.py report` process;
- peak_rss_mb: this process's peak RSS after the refreshes and reports (before pandas runs),
  i.e. what a worker doing the refresh holds.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = "postgres://postgres@127.0.0.1:5432"


def psql(db: str, sql: str) -> None:
    subprocess.run(["psql", f"{SERVER}/{db}", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a local process (the PostgreSQL backend doing the work)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu(threading.Thread):
    """CPU of every PostgreSQL process serving `db` (the refresh's shard connections come and go,
    so their /proc entries are sampled every 50 ms; a backend's last < 50 ms can be missed). Each
    new pid's command line is read once, so sampling costs little of the machine it measures."""

    def __init__(self, db: str) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seen: dict[int, float] = {}
        self.known: dict[int, bool] = {}
        self.stop = threading.Event()

    def _ours(self, pid: int) -> bool:
        if pid not in self.known:
            try:
                line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() + " "
            except OSError:
                return False
            self.known[pid] = (f" {self.db} " in line
                               or any(f"parallel worker for PID {p} " in line for p in self.seen))
        return self.known[pid]

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if self._ours(pid):
                try:
                    self.seen[pid] = process_cpu_s(pid)
                except OSError:
                    continue

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.05)

    def total(self) -> float:
        self.sample()
        return sum(self.seen.values())


def generate(*, orders: int, customers: int, as_of: date) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("""
            INSERT INTO shops_shop (domain, shopify_gid, name, currency, iana_timezone, plan, scopes, state,
                                    needs_reauth_reason, paused_reason, created_at, updated_at)
            VALUES ('bench-analytics.myshopify.com', '', 'bench', 'USD', 'America/Los_Angeles', '', '',
                    'installed', '', '', now(), now()) RETURNING id""")
        shop_id = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO sync_customer (shop_id, shopify_id, created_at, updated_at, rfm_group, number_of_orders,
                                       amount_spent, amount_spent_currency, tags)
            SELECT %s, g, now(), now(),
                   (ARRAY['CHAMPIONS','LOYAL','AT_RISK','DORMANT','PROSPECTS','ACTIVE','NEW',''])[1 + (g %% 8)],
                   0, 0, 'USD', '{}'
            FROM generate_series(1, %s) g""", [shop_id, customers])
        # Skewed customers (most buy once), 3% guests, 1% test, 2% cancelled, 5% partly refunded,
        # orders spread over three years before the as-of date.
        cur.execute("""
            INSERT INTO sync_order (shop_id, shopify_id, name, customer_shopify_id, processed_at, created_at,
                updated_at, cancelled_at, test, financial_status, currency, presentment_currency, subtotal,
                current_subtotal, total, current_total, total_refunded, tags)
            SELECT %(shop)s, g, '#' || g,
                   CASE WHEN random() < 0.03 THEN NULL
                        ELSE 1 + floor(%(customers)s * power(random(), 1.6))::bigint END,
                   ts, ts, ts, CASE WHEN random() < 0.02 THEN ts END, random() < 0.01, 'paid', 'USD', 'USD',
                   sub, CASE WHEN refunded THEN round(sub * 0.6, 2) ELSE sub END,
                   sub + 5, CASE WHEN refunded THEN round(sub * 0.6, 2) + 5 ELSE sub + 5 END,
                   CASE WHEN refunded THEN sub - round(sub * 0.6, 2) ELSE 0 END,
                   CASE WHEN random() < 0.02 THEN ARRAY['wholesale']::varchar[] ELSE '{}'::varchar[] END
            FROM (
                SELECT g, (%(end)s::timestamptz - random() * interval '1095 days') AS ts,
                       round((5 + random() * 295)::numeric, 2) AS sub, random() < 0.05 AS refunded
                FROM generate_series(1, %(orders)s) g
            ) x""", {"shop": shop_id, "customers": customers, "orders": orders, "end": as_of.isoformat()})
        cur.execute("""
            INSERT INTO sync_refund (shop_id, shopify_id, order_shopify_id, created_at, processed_at, amount,
                                     subtotal_amount, updated_at)
            SELECT shop_id, shopify_id, shopify_id, processed_at + interval '9 days', processed_at + interval '9 days',
                   total_refunded, total_refunded, now()
            FROM sync_order WHERE shop_id = %s AND total_refunded > 0""", [shop_id])
        cur.execute("""
            UPDATE sync_customer c SET number_of_orders = o.n, amount_spent = o.spend
            FROM (SELECT customer_shopify_id, count(*) AS n, sum(current_total) AS spend FROM sync_order
                  WHERE shop_id = %s AND NOT test AND customer_shopify_id IS NOT NULL GROUP BY 1) o
            WHERE c.shop_id = %s AND c.shopify_id = o.customer_shopify_id""", [shop_id, shop_id])
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE sync_order")
        cur.execute("VACUUM ANALYZE sync_refund")
        cur.execute("VACUUM ANALYZE sync_customer")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--as-of", default="2026-01-01")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--db", default="tenure_bench_analytics")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is (no generation)")
    parser.add_argument("--shards", type=int, default=None,
                        help="connections per refresh (default: the ANALYTICS_REFRESH_SHARDS setting)")
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    as_of = date.fromisoformat(args.as_of)

    if not args.reuse:
        subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", f'DROP DATABASE IF EXISTS "{args.db}"'], check=True)
        subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", f'CREATE DATABASE "{args.db}"'], check=True)
    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{args.db}", "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    if args.shards:
        env["ANALYTICS_REFRESH_SHARDS"] = str(args.shards)
    os.environ.update(env)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from analytics.services import snapshot_refresh
        from shops.models import Shop

        t0 = time.perf_counter()
        if not args.reuse:
            generate(orders=args.orders, customers=args.customers, as_of=as_of)
        generate_s = time.perf_counter() - t0
        shop = Shop.objects.get(domain="bench-analytics.myshopify.com")

        times, cpu = [], []
        for _ in range(max(1, args.runs)):
            sampler = BackendCpu(args.db)
            sampler.sample()
            c0, p0, t0 = sampler.total(), time.process_time(), time.perf_counter()
            sampler.start()
            snapshot_refresh(shop=shop, as_of=as_of, predictive=False)
            times.append(time.perf_counter() - t0)
            sampler.stop.set()
            sampler.join()
            cpu.append(sampler.total() - c0 + time.process_time() - p0)
        best = min(range(len(times))[1:] or [0], key=lambda i: times[i])
        refresh_s = times[best]
        load = os.getloadavg()[0]

        report_times = []
        for _ in range(5):
            out = io.StringIO()
            t0 = time.perf_counter()
            call_command("report", shop.domain, "--as-of", as_of.isoformat(), stdout=out)
            report_times.append((time.perf_counter() - t0) * 1000)
            json.loads(out.getvalue())
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "report", shop.domain, "--as-of", as_of.isoformat()],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        report_process_ms = (time.perf_counter() - t0) * 1000
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        result: dict[str, object] = {
            "orders": args.orders, "customers": args.customers, "generate_s": round(generate_s, 2),
            "refresh_s": round(refresh_s, 3), "refresh_runs_s": [round(t, 3) for t in times],
            "refresh_cpu_s": round(cpu[best], 3), "load_avg_1m": round(load, 2),
            "shards": int(os.environ.get("ANALYTICS_REFRESH_SHARDS") or settings.ANALYTICS_REFRESH_SHARDS),
            "report_ms": round(statistics.median(report_times), 1),
            "report_process_ms": round(report_process_ms, 1), "peak_rss_mb": round(peak_rss_mb, 1),
        }
        if not args.skip_pandas:
            from tests.analytics.reference_pandas import load_frames, reference_document

            t0 = time.perf_counter()
            with connection.cursor() as cur:
                frames = load_frames(cur, shop.pk)
            load_s = time.perf_counter() - t0
            reference_document(frames, tz=shop.iana_timezone, currency=shop.currency, as_of=as_of)
            pandas_s = time.perf_counter() - t0
            result.update({"pandas_s": round(pandas_s, 2), "pandas_load_s": round(load_s, 2),
                           "pandas_ratio": round(pandas_s / refresh_s, 2)})
        result["cpus"] = os.cpu_count()
        print(json.dumps(result))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", f'DROP DATABASE IF EXISTS "{args.db}"'],
                           check=False)


if __name__ == "__main__":
    main()
