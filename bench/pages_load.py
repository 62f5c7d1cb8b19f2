"""Report pages under load: a 1,000,000-order shop, 20 concurrent clients, gunicorn as deployed.

    .venv/bin/python bench/pages_load.py                      # 1M orders, 250k customers, 20 clients
    .venv/bin/python bench/pages_load.py --orders 20000 --customers 5000 --requests 20   # a quick look

Creates (and drops, unless --keep) a scratch database on the system PostgreSQL, generates the
shop straight into it with bench/analytics_refresh.py's generator, installs it (a credential,
all scopes), computes the stored snapshots the nightly refresh would (the as-of date's, with the
predictive block, and the previous period's), then starts gunicorn with config.stack.web_argv
(2 workers x 4 threads by default) against it. A second process (this script with --client) runs N client
threads over loopback with keep-alive connections; each request carries a fresh session token
(id_token), as the admin frame's loads do. Every page is requested --requests times after a
warm-up round over 4 connections (both workers warm); latency is the full response read.
Prints one JSON line per page and a summary line whose p95_ms is the slowest page's p95.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = "postgres://postgres@127.0.0.1:5432"
DOMAIN = "bench-analytics.myshopify.com"  # what the analytics generator names its shop
API_KEY = "tenure-bench-api-key"
API_SECRET = "tenure-bench-api-secret-0123456789abcdef"  # noqa: S105 - a scratch value for this bench
PAGES = {
    "overview": ("/app/overview", {}),
    "rfm": ("/app/rfm", {}),
    "rfm_sorted_filtered": ("/app/rfm", {"group": "middle", "sort": "monetary", "dir": "asc", "page": "3"}),
    "clv": ("/app/clv", {}),
    "retention": ("/app/retention", {}),
    "lifecycle": ("/app/lifecycle", {}),
    "marketing": ("/app/marketing", {}),
    "data": ("/app/data", {}),
    "settings": ("/app/settings", {}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_token() -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": f"https://{DOMAIN}/admin", "dest": f"https://{DOMAIN}", "aud": API_KEY, "sub": "1",
              "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": str(uuid.uuid4()), "sid": "bench"}
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


# --- the client process -----------------------------------------------------------------------------------------

def client_main(args: argparse.Namespace) -> None:
    """Run the load: `clients` threads share one queue of (page, path) jobs."""
    jobs: list[str] = []
    for _ in range(args.requests):
        jobs.extend(PAGES)
    random.Random(7).shuffle(jobs)
    lock = threading.Lock()
    results: dict[str, list[float]] = {name: [] for name in PAGES}
    errors: dict[str, int] = {}
    cursor = iter(jobs)

    def url_for(name: str) -> str:
        path, extra = PAGES[name]
        params = {"shop": DOMAIN, "host": "YmVuY2g", "embedded": "1", "id_token": session_token(),
                  "as_of": args.as_of, **extra}
        return f"{path}?{urlencode(params)}"

    def fetch(conn: http.client.HTTPConnection, name: str) -> tuple[int, float]:
        url = url_for(name)
        t0 = time.perf_counter()
        conn.request("GET", url, headers={"Host": f"127.0.0.1:{args.port}"})
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - t0) * 1000

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        while True:
            with lock:
                name = next(cursor, None)
            if name is None:
                break
            try:
                status, ms = fetch(conn, name)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
                status, ms = 0, 0.0
            with lock:
                if status == 200:
                    results[name].append(ms)
                else:
                    errors[name] = errors.get(name, 0) + 1
        conn.close()

    # Warm-up: every page over 4 parallel connections, so each gunicorn worker has read the
    # snapshot once (imports, connections, the first document read and render). The figures are
    # the steady state; warmup_ms is the first (cold) answer of each page.
    warmup_ms: dict[str, float] = {}

    def warm_round() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        for name in PAGES:
            status, ms = fetch(conn, name)
            if status != 200:
                raise SystemExit(f"warm-up {name}: HTTP {status}")
            with lock:
                warmup_ms.setdefault(name, round(ms, 1))
        conn.close()

    warmers = [threading.Thread(target=warm_round) for _ in range(4)]
    for t in warmers:
        t.start()
    for t in warmers:
        t.join()

    started, cpu0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    print(json.dumps({"results": results, "errors": errors, "wall_s": wall, "warmup_ms": warmup_ms,
                      "client_cpu_s": time.process_time() - cpu0}))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# --- the driver -------------------------------------------------------------------------------------------------

def setup_shop(*, orders: int, customers: int, as_of: date) -> dict[str, float]:
    from django.utils import timezone

    from analytics.services import snapshot_refresh
    from analytics.tasks import PREVIOUS_PREDICTIVE_REUSE
    from bench.analytics_refresh import generate
    from shops.models import Shop, ShopCredential

    t0 = time.perf_counter()
    generate(orders=orders, customers=customers, as_of=as_of)
    generate_s = time.perf_counter() - t0
    shop = Shop.objects.get(domain=DOMAIN)
    shop.scopes = "read_orders,read_all_orders,read_customers"
    shop.installed_at = timezone.now()
    shop.save(update_fields=["scopes", "installed_at"])
    credential = ShopCredential(shop=shop, scopes=shop.scopes)
    credential.access_token = "shpat_bench"  # noqa: S105
    credential.save()
    t0 = time.perf_counter()
    snapshot_refresh(shop=shop, as_of=as_of, predictive=True)
    refresh_s = time.perf_counter() - t0
    # As analytics.tasks.refresh_shop stores the previous period's snapshot (a block of its own).
    snapshot_refresh(shop=shop, as_of=as_of - timedelta(days=365), predictive_reuse_within=PREVIOUS_PREDICTIVE_REUSE)
    return {"generate_s": round(generate_s, 1), "refresh_with_predictive_s": round(refresh_s, 1)}


def _cpu_s(procs: Any) -> float:
    """User + system CPU seconds of these processes (ones that exited meanwhile count nothing)."""
    import psutil

    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (gunicorn's master and workers)."""
    import psutil

    root = psutil.Process(pid)
    return _cpu_s([root, *root.children(recursive=True)])


def _db_cpu_s(db: str) -> float:
    """CPU seconds of the PostgreSQL backends now connected to `db` (the server keeps its connections)."""
    import psutil

    return _cpu_s(p for p in psutil.process_iter(["cmdline"])
                  if f" {db} " in " ".join(p.info["cmdline"] or []) + " ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--as-of", default="2026-01-01")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="requests per page")
    parser.add_argument("--db", default="tenure_bench_pages")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return

    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{args.db}", "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET,
           "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7"), "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    setup: dict[str, float] = {}
    if not args.reuse:
        subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", f'DROP DATABASE IF EXISTS "{args.db}"'], check=True)
        subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", f'CREATE DATABASE "{args.db}"'], check=True)
    server = None
    try:
        if not args.reuse:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.db import connections

        if not args.reuse:
            setup = setup_shop(orders=args.orders, customers=args.customers, as_of=date.fromisoformat(args.as_of))
        connections.close_all()

        from config.stack import web_argv

        port = free_port()
        server = subprocess.Popen(web_argv(port), cwd=ROOT, env=env,  # noqa: S603
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        load_before = os.getloadavg()[0]
        server_cpu0, db_cpu0 = _tree_cpu_s(server.pid), _db_cpu_s(args.db)
        out = subprocess.run([sys.executable, __file__, "--client", "--port", str(port), "--as-of", args.as_of,
                              "--clients", str(args.clients), "--requests", str(args.requests)],
                             cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        load_after = os.getloadavg()[0]
        # CPU per request in the measured phase (the warm-up included): where the 2 cores went.
        n_all = sum(len(v) for v in data["results"].values()) + 4 * len(PAGES)
        cpu_ms = {"server": round((_tree_cpu_s(server.pid) - server_cpu0) * 1000 / n_all, 2),
                  "postgres": round((_db_cpu_s(args.db) - db_cpu0) * 1000 / n_all, 2),
                  "client": round(data["client_cpu_s"] * 1000 / n_all, 2)}
        per_page = {}
        for name, values in data["results"].items():
            row = {"page": name, "n": len(values), "errors": data["errors"].get(name, 0),
                   "p50_ms": round(statistics.median(values), 1) if values else None,
                   "p95_ms": round(pct(values, 0.95), 1), "p99_ms": round(pct(values, 0.99), 1),
                   "max_ms": round(max(values), 1) if values else None, "warmup_ms": data["warmup_ms"][name]}
            per_page[name] = row
            print(json.dumps({"bench": "pages_load", **row}))
        slowest = max(per_page.values(), key=lambda r: r["p95_ms"])
        total = sum(r["n"] for r in per_page.values())
        print(json.dumps({
            "bench": "pages_load", "orders": args.orders, "customers": args.customers, "clients": args.clients,
            "requests": total, "errors": sum(r["errors"] for r in per_page.values()),
            "p95_ms": slowest["p95_ms"], "slowest_page": slowest["page"],
            "pages_p95_ms": {k: v["p95_ms"] for k, v in per_page.items()},
            "throughput_rps": round(total / data["wall_s"], 1), "load_avg_1m": [round(load_before, 2),
                                                                                round(load_after, 2)],
            "cpu_ms_per_request": cpu_ms, "cpus": os.cpu_count(), **setup,
        }))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            subprocess.run(["psql", f"{SERVER}/postgres", "-q", "-c", f'DROP DATABASE IF EXISTS "{args.db}"'],
                           check=False)


if __name__ == "__main__":
    main()
