"""Load test of POST /webhooks: gunicorn + real PostgreSQL/Redis, driven from this process.

    .venv/bin/python bench/webhooks_load.py [--per-level 3000] [--levels 25,50,100,200,300]
                                            [--max-seconds 40] [--rates 500,1000,1500]

What it does:
  1. creates a scratch database (tenure_bench_webhooks) on the PostgreSQL at
     BENCH_DATABASE_URL (default: the system server on 127.0.0.1:5432) and migrates it;
  2. starts the app as `make demo` does (config.stack.web_argv: gunicorn, 2 workers x 4
     threads) on a free port, with the broker on BENCH_REDIS_URL (default Redis DB 3);
  3. from this process (asyncio, raw HTTP/1.1 keep-alive sockets on loopback) sends signed
     orders/create deliveries, each with its own webhook id, at each concurrency level in
     turn (that many requests in flight), bounded by --per-level and --max-seconds;
  4. then, open loop, deliveries arriving at each --rates rate whatever the server does,
     latency counted from each one's scheduled arrival;
  5. checks in the database that every delivery answered 200 was recorded exactly once;
  6. prints one JSON line per level and per rate and a final summary line whose
     accepted_per_s / p50_ms / p99_ms are the --goal-rate run's (closed_loop: at 200 in
     flight), then stops gunicorn, drops the scratch database and flushes the bench Redis
     DB (the queued tasks are not run: this measures the endpoint, not the handlers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway app secret for the scratch server
SHOP = "bench.myshopify.com"
DB_NAME = "tenure_bench_webhooks"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def order_payload(n: int) -> bytes:
    """A realistic orders/create body (~2.5 KB) including the PII the endpoint must strip."""
    return json.dumps({
        "id": 5_000_000 + n, "name": f"#{1000 + n}", "email": "ann@example.com", "phone": "+6421000000",
        "created_at": "2026-11-22T08:00:00+13:00", "updated_at": "2026-11-22T08:00:00+13:00",
        "processed_at": "2026-11-22T08:00:00+13:00", "cancelled_at": None, "test": False,
        "financial_status": "paid", "currency": "NZD", "presentment_currency": "NZD",
        "subtotal_price": "40.00", "current_subtotal_price": "40.00", "total_price": "46.00",
        "current_total_price": "46.00", "total_tax": "6.00", "tags": "vip, repeat",
        "customer": {"id": 9_000 + n % 500, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
                     "default_address": {"address1": "1 Queen St", "city": "Auckland", "zip": "1010"}},
        "billing_address": {"name": "Ann Lee", "address1": "1 Queen St", "city": "Auckland", "zip": "1010"},
        "shipping_address": {"name": "Ann Lee", "address1": "1 Queen St", "city": "Auckland", "zip": "1010"},
        "line_items": [{"id": 70_000 + n * 10 + i, "title": f"Widget {i}", "quantity": 1, "price": "10.00",
                        "sku": f"W-{i}", "variant_id": 800 + i, "product_id": 600 + i} for i in range(4)],
        "refunds": [], "note": "leave at the door", "browser_ip": "203.0.113.7",
    }).encode()


def request_bytes(port: int, n: int) -> tuple[str, bytes]:
    body = order_payload(n)
    webhook_id = str(uuid.uuid4())
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    head = (
        f"POST /webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Shopify-Topic: orders/create\r\nX-Shopify-Hmac-Sha256: {signature}\r\n"
        f"X-Shopify-Shop-Domain: {SHOP}\r\nX-Shopify-Webhook-Id: {webhook_id}\r\n"
        f"X-Shopify-Event-Id: {webhook_id}\r\nX-Shopify-Api-Version: 2026-10\r\n"
        f"X-Shopify-Triggered-At: 2026-11-22T08:00:00.000Z\r\n\r\n"
    )
    return webhook_id, head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def run_level(port: int, *, concurrency: int, count: int, max_seconds: float,
                    start_n: int) -> tuple[list[float], dict[str, int], float, list[str]]:
    """`concurrency` connections, each sending one delivery at a time, until `count` are sent."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    accepted_ids: list[str] = []
    # Built before the clock starts so the generator's own CPU stays off the measured window.
    prepared = [request_bytes(port, n) for n in range(start_n, start_n + count)]
    next_n = 0
    end_n = count
    deadline = time.monotonic() + max_seconds

    async def connection() -> None:
        nonlocal next_n
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_n < end_n and time.monotonic() < deadline:
                n = next_n
                next_n += 1
                webhook_id, data = prepared[n]
                started = time.perf_counter()
                try:
                    writer.write(data)
                    await writer.drain()
                    status = await read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    # The server closed a keep-alive connection: reconnect and count it as an error.
                    statuses["conn_error"] = statuses.get("conn_error", 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    accepted_ids.append(webhook_id)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started, accepted_ids


async def run_rate(port: int, *, rate: float, count: int, max_inflight: int,
                   start_n: int) -> tuple[list[float], dict[str, int], float, list[str]]:
    """Open loop: deliveries arrive every 1/rate s whatever the server does (up to max_inflight
    at once); latency counts from the scheduled arrival, so queueing is not hidden."""
    prepared = [request_bytes(port, n) for n in range(start_n, start_n + count)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    accepted_ids: list[str] = []
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = 0

    async def one(i: int, scheduled: float) -> None:
        nonlocal opened
        if free.empty() and opened < max_inflight:
            opened += 1
            free.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        reader, writer = await free.get()
        webhook_id, data = prepared[i]
        try:
            writer.write(data)
            await writer.drain()
            status = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            statuses["conn_error"] = statuses.get("conn_error", 0) + 1
            writer.close()
            free.put_nowait(await asyncio.open_connection("127.0.0.1", port))
            return
        latencies.append((time.perf_counter() - scheduled) * 1000)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200:
            accepted_ids.append(webhook_id)
        free.put_nowait((reader, writer))

    tasks = []
    started = time.perf_counter()
    for i in range(count):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not free.empty():
        free.get_nowait()[1].close()
    return latencies, statuses, elapsed, accepted_ids


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-level", type=int, default=3000, help="deliveries per concurrency level")
    parser.add_argument("--levels", default="25,50,100,200,300", help="requests in flight, in turn")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="time bound per level")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rates", default="500,1000,1500", help="open-loop arrival rates (deliveries/s), in turn")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the baseline: the same load through Django's full request path")
    parser.add_argument("--goal-rate", type=float, default=1000.0,
                        help="the open-loop rate whose figures head the summary (the issue's goal)")
    parser.add_argument("--no-access-log", action="store_true",
                        help="drop gunicorn's per-request access log from web_argv (measures its cost)")
    parser.add_argument("--broker-down", action="store_true",
                        help="kill the app's Redis after the warm-up: deliveries must still be recorded")
    parser.add_argument("--rate-seconds", type=float, default=5.0, help="duration of each open-loop rate")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    import psycopg

    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    db_url = admin_url.rsplit("/", 1)[0] + f"/{DB_NAME}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')

    doomed_redis = None
    if args.broker_down:
        # A Redis of the bench's own, up while gunicorn starts (its start-up check needs one),
        # killed after the warm-up: the outage happens while the app serves, as in production.
        redis_port = free_port()
        doomed_redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",  # noqa: S607
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", redis_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": db_url,
           "REDIS_URL": redis_url,
           "SHOPIFY_API_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO shops_shop (domain, shopify_gid, name, currency, iana_timezone, plan, scopes, "
                     "state, needs_reauth_reason, paused_reason, created_at, updated_at) VALUES "
                     "(%s, '', 'Bench', 'NZD', 'Pacific/Auckland', '', '', 'installed', '', '', now(), now())",
                     (SHOP,))

    from config.stack import web_argv

    sent_total = 0

    def serve(app: str, *, levels: list[int], rates: list[float], start_n: int,
              tag: dict[str, object]) -> tuple[list[dict[str, object]], list[dict[str, object]], int, list[str], bool]:
        """Start gunicorn on `app` as `make demo` does, warm it up, run the levels then the rates, stop it."""
        port = free_port()
        log_path = ROOT / "var" / "bench-webhooks-web.log"
        log_path.parent.mkdir(exist_ok=True)
        log = open(log_path, "wb")  # noqa: SIM115 - the child's for its life
        argv = [app if a == "config.wsgi:application" else a for a in web_argv(port)]
        if args.no_access_log and "--access-logfile" in argv:
            i = argv.index("--access-logfile")
            del argv[i:i + 2]
        access_log = "--access-logfile" in argv
        web = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
        results: list[dict[str, object]] = []
        rate_results: list[dict[str, object]] = []
        accepted: list[str] = []
        n = start_n
        nonlocal sent_total
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or web.poll() is not None:
                        raise SystemExit(f"gunicorn did not start; see {log_path}") from None
                    time.sleep(0.2)
            # Warm-up: imports, connections and the first queries, not measured (but checked below).
            _, _, _, ids = asyncio.run(run_level(port, concurrency=10, count=args.warmup, max_seconds=30, start_n=n))
            accepted += ids
            n += args.warmup
            sent_total += args.warmup
            if doomed_redis is not None and doomed_redis.poll() is None:
                doomed_redis.kill()
                doomed_redis.wait()
            import psutil

            def cpu_seconds() -> tuple[float, float]:
                procs = [psutil.Process(web.pid), *psutil.Process(web.pid).children(recursive=True)]
                server = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
                me = psutil.Process().cpu_times()
                return server, me.user + me.system

            for concurrency in levels:
                server_before, me_before = cpu_seconds()
                lat, statuses, elapsed, ids = asyncio.run(run_level(
                    port, concurrency=concurrency, count=args.per_level, max_seconds=args.max_seconds, start_n=n))
                server_after, me_after = cpu_seconds()
                sent = sum(statuses.values())
                n += args.per_level
                sent_total += sent
                accepted += ids
                line = {
                    "bench": "webhooks_load", **tag, "concurrency": concurrency, "sent": sent, "statuses": statuses,
                    "accepted_per_s": round(len(ids) / elapsed, 1), "p50_ms": round(percentile(lat, 0.50), 1),
                    "p99_ms": round(percentile(lat, 0.99), 1), "max_ms": round(max(lat or [0.0]), 1),
                    "mean_ms": round(statistics.fmean(lat), 1) if lat else 0.0, "seconds": round(elapsed, 2),
                    # CPU the app server (gunicorn, all workers) and this load generator spent per delivery.
                    "app_cpu_ms_per_delivery": round((server_after - server_before) * 1000 / max(sent, 1), 3),
                    "loadgen_cpu_ms_per_delivery": round((me_after - me_before) * 1000 / max(sent, 1), 3),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
                results.append(line)
                print(json.dumps(line), flush=True)
            for rate in rates:
                count = int(rate * args.rate_seconds)
                server_before, me_before = cpu_seconds()
                lat, statuses, elapsed, ids = asyncio.run(run_rate(port, rate=rate, count=count,
                                                                   max_inflight=max(levels), start_n=n))
                server_after, me_after = cpu_seconds()
                n += count
                sent_total += sum(statuses.values())
                accepted += ids
                line = {
                    "bench": "webhooks_load", **tag, "mode": "open_loop", "rate": rate,
                    "sent": sum(statuses.values()), "statuses": statuses,
                    "accepted_per_s": round(len(ids) / elapsed, 1),
                    "p50_ms": round(percentile(lat, 0.50), 1), "p99_ms": round(percentile(lat, 0.99), 1),
                    "max_ms": round(max(lat or [0.0]), 1), "seconds": round(elapsed, 2),
                    "app_cpu_ms_per_delivery": round((server_after - server_before) * 1000 / max(count, 1), 3),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
                rate_results.append(line)
                print(json.dumps(line), flush=True)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=20)
            log.close()
        return results, rate_results, n, accepted, access_log

    rates = [float(x) for x in args.rates.split(",") if x]
    results, rate_results, n, accepted_all, access_log = serve(
        "config.wsgi:application", levels=levels, rates=rates, start_n=0, tag={})
    baseline: dict[str, object] | None = None
    if not args.no_baseline:
        # The same deliveries through Django's full request path (middleware, URL resolver, the
        # view), which is what gunicorn served before config.wsgi's fast path.
        b_results, b_rates, n, b_accepted, _ = serve(
            "config.wsgi:django_application", levels=[max(levels)] if max(levels) < 200 else [200],
            rates=[args.goal_rate], start_n=n, tag={"baseline": "django_view"})
        accepted_all += b_accepted
        baseline = {"closed_loop": {k: b_results[0][k] for k in ("concurrency", "accepted_per_s", "p50_ms", "p99_ms",
                                                                  "app_cpu_ms_per_delivery")},
                    "open_loop": {k: b_rates[0][k] for k in ("rate", "accepted_per_s", "p50_ms", "p99_ms",
                                                              "app_cpu_ms_per_delivery")}}

    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT webhook_id, count(*) FROM shops_webhookevent GROUP BY webhook_id").fetchall()
        payload_pii = conn.execute(
            "SELECT count(*) FROM shops_webhookevent WHERE payload::text LIKE '%%ann@example.com%%'").fetchone()
    recorded = {wid: c for wid, c in rows}
    lost = sum(1 for wid in accepted_all if recorded.get(wid) != 1)
    duplicates = sum(1 for c in recorded.values() if c != 1)
    top = max(results, key=lambda r: r["accepted_per_s"])
    at_200 = next((r for r in results if r["concurrency"] >= 200), results[-1])
    # The goal is a rate with a latency bound: deliveries arriving at --goal-rate whatever the
    # server does (open loop), latency from each one's scheduled arrival. A closed loop with 200
    # in flight cannot show it: by Little's law its mean latency is 200 / throughput.
    goal = next((r for r in rate_results if r["rate"] == args.goal_rate), None)
    summary = {
        "bench": "webhooks_load", "summary": True, "cpus": os.cpu_count(),
        "access_log": access_log, "broker_down": args.broker_down, "deliveries_sent": sent_total,
        "accepted": len(accepted_all), "recorded": len(recorded), "lost": lost, "duplicates": duplicates,
        "pii_rows": payload_pii[0] if payload_pii else None,
        "goal_rate": args.goal_rate if goal else None,
        "accepted_per_s": (goal or at_200)["accepted_per_s"], "p50_ms": (goal or at_200)["p50_ms"],
        "p99_ms": (goal or at_200)["p99_ms"],
        "closed_loop": {"concurrency": at_200["concurrency"], "accepted_per_s": at_200["accepted_per_s"],
                        "p50_ms": at_200["p50_ms"], "p99_ms": at_200["p99_ms"]},
        "best_accepted_per_s": top["accepted_per_s"], "best_at_concurrency": top["concurrency"],
        "open_loop": [{k: r[k] for k in ("rate", "accepted_per_s", "p50_ms", "p99_ms")} for r in rate_results],
        "baseline_django_view": baseline,
    }
    if baseline is not None:
        ours, theirs = results, baseline["closed_loop"]
        at = next(r for r in ours if r["concurrency"] == theirs["concurrency"])  # type: ignore[index]
        summary["speedup_closed_loop"] = round(at["accepted_per_s"] / theirs["accepted_per_s"], 2)  # type: ignore[index,operator]
    print(json.dumps(summary), flush=True)

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    if doomed_redis is None:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    return 0 if lost == 0 and duplicates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
