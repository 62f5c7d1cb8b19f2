"""Backfill of a big devstore shop, end to end through the real worker; plus the naive baseline and
an incremental sync of ~1,000 changed orders.

    .venv/bin/python bench/backfill.py --orders 1000000 --customers 250000

What runs: a fresh PostgreSQL database (BENCH_DATABASE_URL server, default the system one on
127.0.0.1:5432), devstore as a subprocess (DevStore.spawn) with the generated shop, the app
installed through the managed-install flow (app home loaded with an id_token), a Celery worker
subprocess (solo pool, every sync queue; not the analytics queue, so the analytics refresh the
sync asks for does not pollute the worker's memory figure) that runs the backfill.

Prints one JSON line:
- orders_per_s: root orders / (result file ready -> last row committed) of the orders operation;
- ingest_s (both operations), wall_s (install -> backfill succeeded), export_s (devstore's side);
- download_s / parse_s / db_s / wait_s: where the ingest time went (the worker waiting for bytes,
  parsing, the writer's transactions, the reader blocked on a full queue); chunks and
  direct_copies (chunk tables COPYed straight in rather than staged);
- orders_ingest_cpu: CPU seconds of the worker, of devstore (serving the file) and of this
  database's PostgreSQL backends during the orders ingest (sampled every 100 ms);
- peak_worker_rss_mb: the worker process's peak resident memory (sampled every 100 ms);
- parse_shopify_bytes_ms / parse_plain_bytes_ms / parse_shopify_bytes_before_ms: the orders parser
  on 200,000 lines of the result file in Shopify's bytes (devstore writes them: `\\/` escapes and
  all), on the same lines unescaped, and under the rule before (any backslash sent a chunk through
  the escaping pass); escaping_pass_taken says whether Shopify's bytes still need it;
- naive_orders_per_s and naive_ratio: the same order lines written by a per-row ORM
  `update_or_create` loop on a sample (--naive-sample), ratio = orders_per_s / naive_orders_per_s;
- incremental_1000_s: an incremental sync after live trading changed >= 1,000 orders (task
  started -> finished), with incremental_changed_orders, incremental_mode, the totals it compared,
  what its reconciliation found (the bench delivers no webhook, so every order and customer that
  live trading deleted is there to find: incremental_live_deleted) and at what cost in points;
- load_avg_1m, cpus: the machine is shared, so read the rates with this in mind.

--backfill-only skips the naive baseline and the incremental.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")


def _psql(sql: str) -> None:
    subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", sql], check=True)  # noqa: S603, S607


class Sampler(threading.Thread):
    """Every 100 ms: the worker's resident memory (peak kept), and the CPU seconds used so far by the
    worker, by devstore (with its export children) and by this database's PostgreSQL backends
    (exited backends keep their last reading), stamped with wall-clock time."""

    def __init__(self, pid: int, *, devstore_pid: int | None, db: str) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.devstore = psutil.Process(devstore_pid) if devstore_pid else None
        self.db = db
        self.peak = 0
        self.samples: list[tuple[float, float, float, float]] = []  # (time, worker, devstore, postgres)
        self.backends: dict[int, float] = {}
        self.stop = threading.Event()

    @staticmethod
    def _cpu(proc: object) -> float:
        import psutil

        total = 0.0
        try:
            for p in [proc, *proc.children(recursive=True)]:  # type: ignore[attr-defined]
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
        return total

    def _postgres(self, conn: object, tick: int) -> float:
        import psutil

        if tick % 10 == 0:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.db]).fetchall()  # type: ignore[attr-defined]
            for (pid,) in rows:
                self.backends.setdefault(pid, 0.0)
        for pid in list(self.backends):
            try:
                t = psutil.Process(pid).cpu_times()
                self.backends[pid] = t.user + t.system
            except psutil.Error:
                continue
        return sum(self.backends.values())

    def run(self) -> None:
        import psutil
        import psycopg

        conn = psycopg.connect(f"{SERVER}/{self.db}", autocommit=True)
        mine = conn.info.backend_pid
        tick = 0
        while not self.stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.backends.pop(mine, None)
            pg = self._postgres(conn, tick)
            self.backends.pop(mine, None)
            devstore = self._cpu(self.devstore) if self.devstore is not None else 0.0
            self.samples.append((time.time(), self._cpu(self.proc), devstore, pg))
            tick += 1
            time.sleep(0.1)

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each side used between two wall-clock times (nearest samples)."""
        def at(t: float) -> tuple[float, float, float, float]:
            return min(self.samples, key=lambda s: abs(s[0] - t))

        a, b = at(start), at(end)
        return {"worker_cpu_s": round(b[1] - a[1], 2), "devstore_cpu_s": round(b[2] - a[2], 2),
                "postgres_cpu_s": round(b[3] - a[3], 2)}


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--incremental-orders", type=int, default=1000)
    parser.add_argument("--db", default="tenure_bench_backfill")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/4"))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--backfill-only", action="store_true", help="skip the naive baseline and the incremental")
    args = parser.parse_args()

    _psql(f'DROP DATABASE IF EXISTS "{args.db}"')
    _psql(f'CREATE DATABASE "{args.db}"')
    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{args.db}", "REDIS_URL": args.redis,
           "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from devstore.testing import DevStore, ShopSpec
    from shops.models import Shop
    from sync.models import Order, SyncRun

    call_command("migrate", interactive=False, verbosity=0)
    redis.Redis.from_url(args.redis).flushdb()
    spec = ShopSpec(name="bench-backfill", seed=42, customers=args.customers, orders=args.orders, months=36,
                    currency="USD", iana_timezone="America/New_York", plan="Basic")
    t = time.monotonic()
    # Webhooks go nowhere (no web server in this bench): drop them instead of retrying.
    ds = DevStore.spawn([spec], app_url="http://127.0.0.1:9", faults={spec.domain: {"webhook_drop_rate": 1}},
                        startup_timeout_s=600)
    generate_s = time.monotonic() - t
    worker = None
    sampler = None
    out: dict[str, object] = {"bench": "backfill", "orders": args.orders, "customers": args.customers}
    try:
        settings.SHOPIFY_API_BASE_URL = ds.base_url
        wenv = {**env, "SHOPIFY_API_BASE_URL": ds.base_url}
        worker = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING",
             "-Q", "default,webhooks,sync,backfill", "--without-heartbeat", "--without-gossip", "--without-mingle",
             "-n", f"bench-backfill-{os.getpid()}@%h"],
            cwd=ROOT, env=wenv, stdout=open(ROOT / "var" / "bench-backfill-worker.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        sampler = Sampler(worker.pid, devstore_pid=ds.process.pid if ds.process else None, db=args.db)
        sampler.start()
        time.sleep(3)
        started = time.monotonic()
        ds.install(spec.domain)
        home = urlsplit(ds.app_home_url(spec.domain))
        response = Client().get(f"{home.path}?{home.query}")
        if response.status_code not in (200, 302):
            raise RuntimeError(f"install failed: {response.status_code} {response.content[:300]!r}")
        shop = Shop.objects.get(domain=spec.domain)
        while True:
            run = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL).first()
            if run is not None and run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED):
                break
            if worker.poll() is not None:
                raise RuntimeError("worker died")
            time.sleep(0.5)
        wall_s = time.monotonic() - started
        if run.status != SyncRun.Status.SUCCEEDED:
            raise RuntimeError(f"backfill failed: {run.error}")
        phases = run.state["phases"]
        orders_ph = phases["orders"]
        n_orders = Order.objects.filter(shop=shop).count()
        ingest_orders_s = orders_ph["ingested_at"] - orders_ph["ready_at"]
        out.update({
            "generate_s": round(generate_s, 1),
            "orders_written": n_orders,
            "orders_per_s": round(n_orders / ingest_orders_s),
            "ingest_orders_s": round(ingest_orders_s, 2),
            "ingest_s": round(sum(p["ingested_at"] - p["ready_at"] for p in phases.values()), 2),
            "export_s": round(sum(p["ready_at"] - p["started_at"] for p in phases.values()), 2),
            "wall_s": round(wall_s, 2),
            "lines": sum(p["lines"] for p in phases.values()),
            "download_s": round(sum(p.get("download_s", 0) for p in phases.values()), 2),
            "parse_s": round(sum(p.get("parse_s", 0) for p in phases.values()), 2),
            "db_s": round(sum(p.get("db_s", 0) for p in phases.values()), 2),
            "wait_s": round(sum(p.get("wait_s", 0) for p in phases.values()), 2),
            "chunks": sum(p.get("chunks", 0) for p in phases.values()),
            "direct_copies": sum(p.get("direct", 0) for p in phases.values()),
            "orders_ingest_cpu": sampler.cpu_between(orders_ph["ready_at"], orders_ph["ingested_at"]),
            "peak_worker_rss_mb": round(sampler.peak / 2**20, 1),
        })
        out.update(parse_on_shopify_bytes(shop=shop, op_id=orders_ph["op"]))
        if not args.backfill_only:
            out.update(naive_baseline(shop=shop, op_id=orders_ph["op"], sample=args.naive_sample))
            out["naive_ratio"] = round(float(out["orders_per_s"]) / float(out["naive_orders_per_s"]), 1)  # type: ignore[arg-type]
            out.update(incremental(ds=ds, spec=spec, shop=shop, want=args.incremental_orders))
        out["peak_worker_rss_mb"] = round(sampler.peak / 2**20, 1)
    finally:
        if sampler is not None:
            sampler.stop.set()
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        ds.close()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _psql(f'DROP DATABASE IF EXISTS "{args.db}"')
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))  # noqa: T201


def parse_on_shopify_bytes(*, shop: object, op_id: str, lines: int = 200_000, runs: int = 3) -> dict[str, object]:
    """The orders parser on the first `lines` of the result file as Shopify writes it (every `/` as
    `\\/`, `&` as `\\u0026`...), on the same lines unescaped, and with the rule it had before
    (any backslash sends a chunk through the escaping pass): best of `runs`, in milliseconds."""
    from sync import normalize as nz
    from sync.client import ShopifyClient

    client = ShopifyClient.for_shop(shop)  # type: ignore[arg-type]
    url = client.bulk_get(op_id)["url"]
    taken = []
    for line in client.bulk_lines(url):
        taken.append(line if line.endswith(b"\n") else line + b"\n")
        if len(taken) >= lines:
            break
    client.close()
    shopify = b"".join(taken)
    plain = shopify
    for escaped, raw in ((b"\\/", b"/"), (b"\\u0026", b"&"), (b"\\u003c", b"<"), (b"\\u003e", b">")):
        plain = plain.replace(escaped, raw)

    def best(data: bytes) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            nz.bulk_orders_parse(data, shop_id=1)
            times.append(time.perf_counter() - started)
        return round(min(times) * 1000, 1)

    shopify_ms, plain_ms = best(shopify), best(plain)
    current = nz._needs_escaping
    nz._needs_escaping = lambda data: b"\\" in data  # type: ignore[assignment]  # the rule before
    try:
        before_ms = best(shopify)
    finally:
        nz._needs_escaping = current  # type: ignore[assignment]
    return {"parse_lines": len(taken), "parse_shopify_bytes_ms": shopify_ms, "parse_plain_bytes_ms": plain_ms,
            "parse_shopify_bytes_before_ms": before_ms,
            "parse_escape_ratio": round(shopify_ms / plain_ms, 2), "escaping_pass_taken": nz._needs_escaping(shopify)}


def naive_baseline(*, shop: object, op_id: str, sample: int) -> dict[str, object]:
    """The same bulk lines written one row at a time through the ORM (what the COPY path replaces)."""
    import orjson
    from django.db import transaction

    from shops.models import Shop
    from sync import normalize as nz
    from sync.client import ShopifyClient
    from sync.models import Order, Refund

    naive = Shop.objects.create(domain="naive-baseline.myshopify.com", currency="USD")
    if not isinstance(shop, Shop):
        raise TypeError(shop)
    client = ShopifyClient.for_shop(shop)
    url = client.bulk_get(op_id)["url"]
    n = 0
    started = time.monotonic()
    for line in client.bulk_lines(url):
        obj = orjson.loads(line)
        if "__parentId" in obj:
            continue
        row = dict(zip(nz.ORDER_COLUMNS, nz.order_from_graphql(obj), strict=True))
        shopify_id = row.pop("shopify_id")
        with transaction.atomic():
            Order.objects.update_or_create(shop=naive, shopify_id=shopify_id, defaults=row)
            for refund in obj.get("refunds") or []:
                r = dict(zip(nz.REFUND_COLUMNS, nz.refund_from_graphql(refund, shopify_id), strict=True))
                Refund.objects.update_or_create(shop=naive, shopify_id=r.pop("shopify_id"), defaults=r)
        n += 1
        if n >= sample:
            break
    elapsed = time.monotonic() - started
    client.close()
    return {"naive_sample": n, "naive_orders_per_s": round(n / elapsed)}


def incremental(*, ds: object, spec: object, shop: object, want: int) -> dict[str, object]:
    """Trade until >= `want` orders changed, then one incremental sync through the worker."""
    from sync.models import SyncRun
    from sync.tasks import incremental_sync

    changed: set[int] = set()
    deleted = {"orders": 0, "customers": 0}
    while len(changed) < want:
        for topic, payload in ds.live_step(spec.domain, events=200):  # type: ignore[attr-defined]
            if topic in ("orders/delete", "customers/delete"):
                deleted[topic.split("/")[0]] += 1
            if topic.startswith("orders/"):
                changed.add(int(payload["id"]))
            elif topic == "refunds/create":
                changed.add(int(payload["order_id"]))
    before = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.INCREMENTAL).count()
    started = time.monotonic()
    incremental_sync.delay(shop.pk)  # type: ignore[attr-defined]
    while True:
        runs = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.INCREMENTAL).order_by("-created_at")
        run = runs.first()
        if runs.count() > before and run is not None and run.status not in ("pending", "running"):
            break
        time.sleep(0.1)
    enqueue_to_done = time.monotonic() - started
    if run.status != SyncRun.Status.SUCCEEDED:
        raise RuntimeError(f"incremental failed: {run.error}")
    task_s = (run.finished_at - run.started_at).total_seconds()
    return {"incremental_1000_s": round(task_s, 2), "incremental_enqueue_to_done_s": round(enqueue_to_done, 2),
            "incremental_changed_orders": run.state.get("changed_orders"), "incremental_live_orders": len(changed),
            "incremental_mode": run.state.get("mode"), "incremental_timings_s": run.state.get("timings_s"),
            "incremental_live_deleted": deleted,
            "incremental_totals": run.state.get("totals"), "incremental_client": run.state.get("client"),
            "incremental_reconciled": {kind: {k: len(v) if k == "days" else v for k, v in r.items()}
                                       for kind, r in (run.state.get("reconciled") or {}).items()}}


if __name__ == "__main__":
    main()
