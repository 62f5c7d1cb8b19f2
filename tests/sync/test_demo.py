"""`manage.py demo --shop NAME --data FILE --exit-when-synced`, as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from shops.models import Shop
from sync.models import Customer, Order, Refund, SyncRun
from tests.conftest import ROOT
from tests.conftest import test_database_url as database_url

pytestmark = pytest.mark.timeout(240)

CSV = """customer_id,order_id,processed_at,amount,currency,refunded_amount,refunded_at
101,9001,2025-03-01T10:00:00Z,40.00,EUR,,
101,9002,2025-04-11T12:30:00Z,25.50,EUR,5.50,2025-04-20T09:00:00Z
102,9003,2025-05-02T08:00:00Z,99.99,EUR,,
,9004,2025-06-15T16:45:00Z,12.00,EUR,,
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_loads_a_csv_shop_installs_and_exits_when_synced(transactional_db: None, tmp_path: Path,
                                                               redis_client) -> None:
    redis_client.flushdb()
    data = tmp_path / "orders.csv"
    data.write_text(CSV)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url(),
           "REDIS_URL": settings.REDIS_URL}
    env.pop("SHOPIFY_API_BASE_URL", None)
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "demo", "--shop", "csvshop", "--data", str(data), "--port", str(_free_port()),
         "--exit-when-synced"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=200, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "backfill [" in proc.stdout
    assert "csvshop.myshopify.com synced" in proc.stdout
    shop = Shop.objects.get(domain="csvshop.myshopify.com")
    assert SyncRun.objects.get(shop=shop, kind="backfill").status == "succeeded"
    # Hand-checked against the CSV: four orders, one guest, one refund of 5.50.
    orders = {o.shopify_id: o for o in Order.objects.filter(shop=shop)}
    assert set(orders) == {9001, 9002, 9003, 9004}
    assert orders[9004].customer_shopify_id is None
    assert orders[9002].total == Decimal("25.50")
    assert orders[9002].total_refunded == Decimal("5.50")
    assert [r.amount for r in Refund.objects.filter(shop=shop)] == [Decimal("5.50")]
    assert set(Customer.objects.filter(shop=shop).values_list("shopify_id", flat=True)) == {101, 102}
