"""`manage.py demo`, as a user runs it: a subprocess, read line by line, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from django.conf import settings

from analytics.models import AnalyticsSnapshot
from devstore.store import SHOPIFY_EXPORT_COLUMNS
from shops.models import Shop, WebhookEvent
from sync.models import Customer, Order, Refund, SyncRun
from tests.conftest import ROOT
from tests.conftest import test_database_url as database_url

pytestmark = pytest.mark.timeout(300)

CSV = """customer_id,order_id,processed_at,amount,currency,refunded_amount,refunded_at
101,9001,2025-03-01T10:00:00Z,40.00,EUR,,
101,9002,2025-04-11T12:30:00Z,25.50,EUR,5.50,2025-04-20T09:00:00Z
102,9003,2025-05-02T08:00:00Z,99.99,EUR,,
,9004,2025-06-15T16:45:00Z,12.00,EUR,,
"""


def _export_row(**values: str) -> str:
    """One row of Shopify's Orders export (every column of the real header, most left empty)."""
    return ",".join(f'"{values.get(col, "")}"' for col in SHOPIFY_EXPORT_COLUMNS)


# Shopify's Orders export: one row per line item, order-level fields on an order's first row only;
# no customer id (devstore keys customers by email), no refund date.
EXPORT_CSV = "\n".join([
    ",".join(SHOPIFY_EXPORT_COLUMNS),
    _export_row(**{"Name": "#1001", "Email": "Anna@Example.com", "Financial Status": "paid",
                   "Paid at": "2025-03-01 10:05:00 +0100", "Currency": "EUR", "Subtotal": "40.00",
                   "Shipping": "5.00", "Total": "45.00", "Created at": "2025-03-01 10:00:00 +0100",
                   "Lineitem quantity": "1", "Lineitem name": "Tea", "Billing Name": "Anna Jansen",
                   "Billing Country": "NL", "Id": "7001"}),
    _export_row(**{"Name": "#1001", "Email": "anna@example.com", "Lineitem quantity": "2", "Lineitem name": "Cup"}),
    _export_row(**{"Name": "#1002", "Email": "bob@example.com", "Financial Status": "partially_refunded",
                   "Paid at": "2025-04-10 12:00:00 +0000", "Currency": "EUR", "Subtotal": "60.00", "Total": "60.00",
                   "Created at": "2025-04-10 12:00:00 +0000", "Refunded Amount": "20.00", "Billing Name": "Bob Berg",
                   "Billing Country": "DE", "Id": "7002"}),
    _export_row(**{"Name": "#1003", "Email": "anna@example.com", "Financial Status": "paid",
                   "Paid at": "2025-05-05 09:00:00 +0200", "Currency": "EUR", "Subtotal": "30.00", "Total": "30.00",
                   "Created at": "2025-05-05 09:00:00 +0200", "Id": "7003"}),
    _export_row(**{"Name": "#1004", "Email": "", "Financial Status": "paid", "Currency": "EUR", "Subtotal": "12.50",
                   "Total": "12.50", "Created at": "2025-06-01 08:00:00 +0000", "Id": "7004"}),
]) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _test_env() -> dict[str, str]:
    """The demo against the test database and Redis, as the user's environment would set them."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url(),
           "REDIS_URL": settings.REDIS_URL}
    env.pop("SHOPIFY_API_BASE_URL", None)
    return env


class Demo:
    """A running `manage.py demo`: its output as lines, and the processes it started."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", "demo", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines[-40:]))

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, then the rest of the output; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code

    def close(self) -> None:
        """After a failure: Ctrl-C as a user would; if that hangs, kill the demo and all it started."""
        if self.proc.poll() is not None:
            return
        children = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for process in [*children, psutil.Process(self.proc.pid)]:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            self.proc.wait()


@pytest.fixture
def demo_runner() -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        demo.close()


# A credential as it would show in a log: a session token in a URL, a Shopify access token, an HMAC.
LOGGED_SECRET = re.compile(r"id_token=eyJ|\bshp(?:at|ua|ca|pa|ss|rt)_[A-Za-z0-9]|hmac=(?!\[redacted\])[^&\s'\"]")


def test_demo_with_no_arguments_installs_the_generated_shop_and_prints_the_admin_url(
        transactional_db: None, redis_client, demo_runner: list[Demo], tmp_path: Path) -> None:
    redis_client.flushdb()
    port = _free_port()
    # Its own var/ directory: the logs read at the end are this run's only.
    var = tmp_path / "var"
    demo = Demo(["--port", str(port)], {**_test_env(), "TENURE_VAR_DIR": str(var)})
    demo_runner.append(demo)
    # The defaults: the shop `demo`, generated with a few years of history, trading live.
    demo.wait_for(r"starting devstore with demo\.myshopify\.com \(generated: 8,000 customers, 36 months, "
                  r"live trading\)", timeout=60)
    orders = int(demo.wait_for(r"devstore at \S+: ([\d,]+) orders", timeout=60).group(1).replace(",", ""))
    assert orders > 20_000
    demo.wait_for(r"^Tenure is up", timeout=90)
    children = psutil.Process(demo.proc.pid).children(recursive=True)
    names = {" ".join(c.cmdline()) for c in children}
    # Two workers: webhooks (with analytics) never queue behind the backfill's worker.
    assert any("-Q default,webhooks,analytics" in n for n in names), names
    assert any("-Q sync,backfill" in n for n in names), names
    assert any("celery -A config beat" in n for n in names), names
    demo.wait_for(r"^backfill \[", timeout=60)
    demo.wait_for(r"demo\.myshopify\.com synced: [\d,]+ rows written", timeout=240)
    admin_url = demo.wait_for(r"Open the shop's admin, with Tenure in it: (http://127\.0\.0\.1:\d+/store/demo/"
                              rf"apps/{re.escape(settings.SHOPIFY_API_KEY)})$", timeout=120).group(1)
    demo.wait_for(r"Press Ctrl-C to stop every process started here\.", timeout=10)

    # The admin page frames the app; the frame's page shows the stored report's figures.
    shop = Shop.objects.get(domain="demo.myshopify.com")
    assert SyncRun.objects.get(shop=shop, kind="backfill").status == "succeeded"
    admin = httpx.get(admin_url, timeout=30)
    assert admin.status_code == 200
    frame_src = re.search(r'<iframe[^>]+src="([^"]+)"', admin.text).group(1).replace("&amp;", "&")
    assert frame_src.startswith(f"http://127.0.0.1:{port}/")
    page = httpx.get(frame_src, timeout=60, follow_redirects=True)
    assert page.status_code == 200
    shown = dict(re.findall(r'data-figure="([^"]+)" data-value="([^"]*)"', page.text))
    snapshot = AnalyticsSnapshot.objects.filter(shop=shop).order_by("-as_of", "-computed_at").first()  # today's
    assert snapshot is not None
    assert int(shown["clv.orders"]) == snapshot.document["clv"]["orders"] > 1000
    # A page that does not exist, opened with the frame's session token: django.request logs the 404.
    missing = httpx.get(urlsplit(frame_src)._replace(path="/app/no-such-page").geturl(), timeout=30)
    assert missing.status_code == 404

    # Live mode: devstore keeps trading and its webhooks reach the app's webhook worker.
    deadline = time.monotonic() + 60
    while not WebhookEvent.objects.filter(shop=shop, topic="orders/create", status="processed").exists():
        assert time.monotonic() < deadline, "no orders/create webhook was processed within a minute"
        time.sleep(0.5)

    code = demo.interrupt()
    assert code == 0, "\n".join(demo.lines[-20:])
    assert "==> stopping" in demo.lines
    # Every process the demo started is gone, and the web port is free again.
    assert [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []
    assert not _port_open(port)
    # No credential in any log the run wrote (web, workers, beat), the 404 above included.
    logs = {path.name: path.read_text(errors="replace") for path in var.glob("*.log")}
    assert {"web.log", "worker-webhooks.log", "worker-sync.log", "beat.log"} <= set(logs)
    assert "/app/no-such-page" in logs["web.log"]
    assert {name: LOGGED_SECRET.findall(text)[:3] for name, text in logs.items() if LOGGED_SECRET.search(text)} == {}


def test_demo_data_alone_loads_the_csv_into_the_demo_shop(transactional_db: None, tmp_path: Path,
                                                           redis_client) -> None:
    redis_client.flushdb()
    data = tmp_path / "orders.csv"
    data.write_text(CSV)
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "demo", "--data", str(data), "--port", str(_free_port()), "--exit-when-synced"],
        cwd=ROOT, env=_test_env(), capture_output=True, text=True, timeout=200, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"starting devstore with demo.myshopify.com (from {data})" in proc.stdout
    assert "backfill [" in proc.stdout
    assert "demo.myshopify.com synced" in proc.stdout
    shop = Shop.objects.get(domain="demo.myshopify.com")
    assert SyncRun.objects.get(shop=shop, kind="backfill").status == "succeeded"
    # Hand-checked against the CSV: four orders, one guest, one refund of 5.50.
    orders = {o.shopify_id: o for o in Order.objects.filter(shop=shop)}
    assert set(orders) == {9001, 9002, 9003, 9004}
    assert orders[9004].customer_shopify_id is None
    assert orders[9002].total == Decimal("25.50")
    assert orders[9002].total_refunded == Decimal("5.50")
    assert [r.amount for r in Refund.objects.filter(shop=shop)] == [Decimal("5.50")]
    assert set(Customer.objects.filter(shop=shop).values_list("shopify_id", flat=True)) == {101, 102}


def test_demo_shop_from_a_shopify_orders_export(transactional_db: None, tmp_path: Path, redis_client) -> None:
    redis_client.flushdb()
    data = tmp_path / "orders_export.csv"
    data.write_text(EXPORT_CSV)
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "demo", "--shop", "exported", "--data", str(data), "--port", str(_free_port()),
         "--exit-when-synced"],
        cwd=ROOT, env=_test_env(), capture_output=True, text=True, timeout=200, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"starting devstore with exported.myshopify.com (from {data})" in proc.stdout
    assert ": 4 orders, 2 customers" in proc.stdout
    assert "backfill [" in proc.stdout
    # 2 customers + 4 orders + 1 refund.
    assert "exported.myshopify.com synced: 7 rows written" in proc.stdout
    assert not Shop.objects.filter(domain="demo.myshopify.com").exists()
    shop = Shop.objects.get(domain="exported.myshopify.com")
    assert shop.currency == "EUR"
    assert SyncRun.objects.get(shop=shop, kind="backfill").status == "succeeded"
    # Hand-checked against the CSV: #1001's second line item is not another order; #1004 is a guest.
    orders = {o.shopify_id: o for o in Order.objects.filter(shop=shop)}
    assert {i: (o.name, o.total, o.subtotal, o.total_refunded) for i, o in orders.items()} == {
        7001: ("#1001", Decimal("45.00"), Decimal("40.00"), Decimal("0")),
        7002: ("#1002", Decimal("60.00"), Decimal("60.00"), Decimal("20.00")),
        7003: ("#1003", Decimal("30.00"), Decimal("30.00"), Decimal("0")),
        7004: ("#1004", Decimal("12.50"), Decimal("12.50"), Decimal("0")),
    }
    assert {o.currency for o in orders.values()} == {"EUR"}
    assert {i: o.financial_status for i, o in orders.items()} == {
        7001: "PAID", 7002: "PARTIALLY_REFUNDED", 7003: "PAID", 7004: "PAID"}
    # Paid at (in UTC) is the processing time; Created at the creation time.
    assert orders[7001].created_at == datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    assert orders[7001].processed_at == datetime(2025, 3, 1, 9, 5, tzinfo=UTC)
    assert orders[7003].processed_at == datetime(2025, 5, 5, 7, 0, tzinfo=UTC)
    assert orders[7004].customer_shopify_id is None
    # Customers are keyed by email (case-insensitive): Anna's two orders share one customer.
    anna = orders[7001].customer_shopify_id
    bob = orders[7002].customer_shopify_id
    assert anna is not None
    assert bob is not None
    assert anna != bob
    assert orders[7003].customer_shopify_id == anna
    customers = {c.shopify_id: c for c in Customer.objects.filter(shop=shop)}
    assert {i: (c.number_of_orders, c.amount_spent) for i, c in customers.items()} == {
        anna: (2, Decimal("75.00")),  # 45.00 + 30.00
        bob: (1, Decimal("40.00")),  # 60.00 - 20.00 refunded
    }
    # The export has no refund date: the refund is dated at the order's latest time (its Paid at).
    (refund,) = Refund.objects.filter(shop=shop)
    assert (refund.order_shopify_id, refund.amount) == (7002, Decimal("20.00"))
    assert refund.created_at == datetime(2025, 4, 10, 12, 0, tzinfo=UTC)


def _postmaster_pid(var: Path) -> int | None:
    pidfile = var / "postgres" / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


def test_ctrl_c_stops_the_embedded_servers_the_demo_started_but_not_ones_it_found(
        tmp_path: Path, demo_runner: list[Demo]) -> None:
    var = tmp_path / "var"
    redis_port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SHOPIFY_API_BASE_URL")}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.local", "TENURE_VAR_DIR": str(var),
                "TENURE_EMBEDDED_REDIS_PORT": str(redis_port)})
    try:
        # Nothing running: the demo starts PostgreSQL and Redis, and Ctrl-C stops them again.
        demo = Demo(["--no-shop", "--port", str(_free_port())], env)
        demo_runner.append(demo)
        demo.wait_for(r"Press Ctrl-C", timeout=180)
        assert _postmaster_pid(var) is not None
        assert _port_open(redis_port)
        assert demo.interrupt() == 0, "\n".join(demo.lines[-20:])
        assert "==> stopping the embedded PostgreSQL and Redis started by this command" in demo.lines
        assert _postmaster_pid(var) is None
        assert not _port_open(redis_port)

        # Started by another command before: the demo uses them and leaves them running.
        subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, check=True,  # noqa: S603
                       capture_output=True, timeout=120)
        pg_pid = _postmaster_pid(var)
        assert pg_pid is not None
        demo = Demo(["--no-shop", "--port", str(_free_port())], env)
        demo_runner.append(demo)
        demo.wait_for(r"Press Ctrl-C", timeout=180)
        assert demo.interrupt() == 0, "\n".join(demo.lines[-20:])
        assert not any("stopping the embedded" in line for line in demo.lines)
        assert _postmaster_pid(var) == pg_pid
        assert _port_open(redis_port)
    finally:
        subprocess.run([sys.executable, "-c", "from config.services import stop_embedded; stop_embedded()"],  # noqa: S603
                       cwd=ROOT, env=env, check=False, timeout=60)
