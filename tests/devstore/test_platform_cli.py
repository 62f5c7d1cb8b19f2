"""devstore as a process: ``manage.py devstore serve`` and ``DevStore.spawn`` (the control API)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from devstore.testing import DevStore, RemoteDevStore, ShopSpec
from tests.devstore.platform_support import API_KEY, APP_URL, HTTP, SECRET, ShopClient

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

DEAD_DB = {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/nowhere"}  # nothing listens on port 1
SPEC = ShopSpec(name="remote", seed=9, customers=25, months=3, currency="CAD", iana_timezone="America/Toronto")


@pytest.fixture(scope="module")
def remote() -> Iterator[RemoteDevStore]:
    with DevStore.spawn([SPEC, ShopSpec(name="other", customers=5, months=1)], api_key=API_KEY,
                        api_secret=SECRET, app_url=APP_URL, env=DEAD_DB) as store:
        yield store


def test_spawned_devstore_serves_the_same_shop_as_in_process(remote: RemoteDevStore) -> None:
    with DevStore([SPEC], api_key=API_KEY, api_secret=SECRET, app_url=APP_URL) as local:
        expected = local.ground_truth("remote")
    got = remote.ground_truth("remote")
    assert got.shop == expected.shop
    assert got.orders == expected.orders  # Decimal and aware datetimes survive the control API
    assert got.customers == expected.customers
    assert isinstance(got.orders[0]["total"], Decimal)
    assert got.orders[0]["processed_at"].tzinfo is not None


def test_spawned_devstore_control_api(remote: RemoteDevStore) -> None:
    assert remote.install("remote")["scopes"] == "read_all_orders,read_customers,read_orders"
    token = remote.session_token("remote")
    exchanged = ShopClient(remote.base_url, "remote.myshopify.com").post("/admin/oauth/access_token", json={
        "client_id": API_KEY, "client_secret": SECRET, "subject_token": token,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token", "expiring": 1})
    assert exchanged.status_code == 200
    access = exchanged.json()["access_token"]
    assert remote.set_faults("remote", error_next=1) == {"error_next": 1}
    client = ShopClient(remote.base_url, "remote.myshopify.com")
    assert client.graphql(access, "{ shop { name } }").status_code >= 500
    assert client.graphql(access, "{ shop { name } }").status_code == 200
    before = len(remote.ground_truth("remote").orders)
    events = remote.live_step("remote", events=4)
    assert len(events) >= 4
    assert all(isinstance(topic, str) and isinstance(payload, dict) for topic, payload in events)
    assert len(remote.ground_truth("remote").orders) >= before
    assert remote.app_home_url("remote").startswith(APP_URL + "/?")
    assert remote.admin_url("remote") == f"{remote.base_url}/store/remote/apps/{API_KEY}"
    assert remote.install_link("remote").startswith(APP_URL + "/?")
    remote.trigger_compliance("shop/redact", "remote")
    assert {d["topic"] for d in remote.deliveries("remote")} >= {"shop/redact"}
    remote.advance_clock(3601)
    assert client.graphql(access, "{ shop { name } }").status_code == 401
    assert remote.uninstall("remote") is True


def test_kill_makes_devstore_vanish() -> None:
    store = DevStore.spawn([ShopSpec(name="brief", customers=3, months=1)], api_key=API_KEY, api_secret=SECRET,
                           app_url=APP_URL, env=DEAD_DB)
    assert HTTP.get(store.base_url + "/_devstore/health").json()["ok"] is True
    store.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(store.base_url + "/_devstore/health", timeout=2)
    store.close()


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "devstore", "serve", "--port", "0", *args],
        cwd=ROOT, env={**os.environ, **DEAD_DB, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )


def read_until_ready(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, list[str]]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("devstore listening on "):
            return line.split()[-1], lines
    raise AssertionError("devstore did not start:\n" + "\n".join(lines))


def test_serve_command_prints_admin_urls_and_stops_cleanly_without_a_database() -> None:
    proc = serve("--shop", "north", "--shop", "south:JPY:Asia/Tokyo", "--customers", "15", "--months", "2",
                 "--currency", "GBP", "--timezone", "Europe/London", "--fault", "south:error_next=2",
                 "--api-key", API_KEY, "--api-secret", SECRET, "--app-url", APP_URL)
    try:
        base, lines = read_until_ready(proc)
        assert f"  admin: {base}/store/north/apps/{API_KEY}" in lines
        assert f"  admin: {base}/store/south/apps/{API_KEY}" in lines
        assert any(line.startswith("north.myshopify.com: ") and "GBP, Europe/London" in line for line in lines)
        # A shop of its own currency and zone beside the one taking the defaults.
        assert any(line.startswith("south.myshopify.com: ") and "JPY, Asia/Tokyo" in line for line in lines), lines
        shops = HTTP.get(base + "/_devstore/shops").json()
        assert [s["domain"] for s in shops] == ["north.myshopify.com", "south.myshopify.com"]
        faults = HTTP.post(base + "/_devstore/faults", json={"shop": "south"}).json()["faults"]
        assert faults == {"error_next": 2}
        assert HTTP.post(base + "/_devstore/faults", json={"shop": "north"}).json()["faults"] == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    assert "devstore stopped" in out


def test_serve_command_loads_a_transactions_file(tmp_path: Path) -> None:
    data = tmp_path / "orders.csv"
    data.write_text("customer_id,order_id,processed_at,amount\n"
                    "1001,5001,2026-01-05T10:00:00Z,25.50\n"
                    "1001,5002,2026-02-07T11:00:00Z,10.00\n"
                    ",5003,2026-03-01T09:30:00Z,7.25\n")
    proc = serve("--shop", "filed", "--data", str(data), "--currency", "AUD")
    try:
        base, lines = read_until_ready(proc)
        # No --timezone: a merchant's file shop is in UTC.
        assert any(line.startswith("filed.myshopify.com: ") and line.endswith("AUD, UTC") for line in lines), lines
        truth = RemoteDevStore.__new__(RemoteDevStore)
        truth.base_url = base
        truth.shops = ["filed.myshopify.com"]
        ground = truth.ground_truth("filed")
        orders = ground.orders
        assert ground.shop["iana_timezone"] == "UTC"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert [(o["shopify_id"], o["customer_shopify_id"], o["total"]) for o in orders] == [
        (5001, 1001, Decimal("25.50")), (5002, 1001, Decimal("10.00")), (5003, None, Decimal("7.25"))]
    assert {o["currency"] for o in orders} == {"AUD"}


def test_serve_command_refuses_a_bad_shop_currency_or_zone() -> None:
    for shop, said in (("x:euro", "3-letter ISO code"), ("x:EUR:Mars/Base", "unknown time zone")):
        proc = serve("--shop", shop)
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode != 0
        assert said in out
        assert "Traceback" not in out


def test_serve_command_reports_a_bad_row_by_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("customer_id,order_id,processed_at,amount\n1,1,2026-01-05T10:00:00Z,1.00\n2,2,yesterday,3.00\n")
    proc = serve("--shop", "broken", "--data", str(data))
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a hang is a failure, not a leftover process
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "line 3" in out
    assert "Traceback" not in out
