"""A refresh split over several connections gives exactly what one connection gives."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from analytics.models import AnalyticsSettings, AnalyticsSnapshot, CustomerRows, CustomerScore
from analytics.services import report_document
from shops.models import Shop

pytestmark = pytest.mark.django_db(transaction=True)

AS_OF = date(2026, 1, 1)


def _shop() -> Shop:
    """A few hundred customers over three years: guests, tests, cancellations, tags, refunds, Shopify's figures."""
    shop = Shop.objects.create(domain="shards.myshopify.com", iana_timezone="America/Los_Angeles", currency="USD")
    with connection.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute("""
            INSERT INTO sync_customer (shop_id, shopify_id, created_at, updated_at, rfm_group, number_of_orders,
                                       amount_spent, amount_spent_currency, tags)
            SELECT %s, 7000000 + g * 37, now(), now(),
                   (ARRAY['CHAMPIONS', 'LOYAL', 'AT_RISK', 'DORMANT', ''])[1 + g %% 5], g %% 4, g * 3.5, 'USD', '{}'
            FROM generate_series(1, 400) g""", [shop.pk])
        cur.execute("""
            INSERT INTO sync_order (shop_id, shopify_id, name, customer_shopify_id, processed_at, created_at,
                updated_at, cancelled_at, test, financial_status, currency, presentment_currency, subtotal,
                current_subtotal, total, current_total, total_refunded, tags)
            SELECT %(shop)s, g, '#' || g, cust, ts, ts, ts, CASE WHEN random() < 0.03 THEN ts END, random() < 0.02,
                   'paid', 'USD', 'USD', sub, CASE WHEN refunded THEN round(sub * 0.5, 2) ELSE sub END, sub + 5,
                   CASE WHEN refunded THEN round(sub * 0.5, 2) + 5 ELSE sub + 5 END,
                   CASE WHEN refunded THEN sub - round(sub * 0.5, 2) ELSE 0 END,
                   CASE WHEN random() < 0.05 THEN ARRAY['Wholesale']::varchar[] ELSE '{}'::varchar[] END
            FROM (
                SELECT g, CASE WHEN random() < 0.04 THEN NULL
                               ELSE 7000000 + (1 + floor(420 * power(random(), 1.7)))::bigint * 37 END AS cust,
                       (%(end)s::timestamptz - random() * interval '1100 days') AS ts,
                       round((5 + random() * 200)::numeric, 2) AS sub, random() < 0.08 AS refunded
                FROM generate_series(1, 3000) g
            ) x""", {"shop": shop.pk, "end": AS_OF.isoformat()})
        cur.execute("""
            INSERT INTO sync_refund (shop_id, shopify_id, order_shopify_id, created_at, processed_at, amount,
                                     subtotal_amount, updated_at)
            SELECT shop_id, 100000 + shopify_id, shopify_id, processed_at + interval '20 days',
                   processed_at + interval '20 days', total_refunded, total_refunded, now()
            FROM sync_order WHERE shop_id = %s AND total_refunded > 0""", [shop.pk])
    return shop


def _report(shop: Shop, shards: int, **kw: Any) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    with override_settings(ANALYTICS_REFRESH_SHARDS=shards):
        AnalyticsSnapshot.objects.filter(shop=shop).delete()
        doc = report_document(shop=shop, as_of=AS_OF, include_customers=True, **kw)
    doc.pop("computed_at")
    snapshot = AnalyticsSnapshot.objects.get(shop=shop, as_of=AS_OF, settings_hash__isnull=False,
                                             params__rfm_scale=doc["rfm"]["scale"],
                                             params__rfm_method=doc["rfm"]["method"])
    rows = list(CustomerScore.objects.filter(rows_id=snapshot.rows_id).order_by("customer_shopify_id")
                .values_list("customer_shopify_id", "recency_days", "frequency", "monetary", "r", "f", "m", "total",
                             "rfm_group", "segment", "lifecycle_stage", "shopify_rfm_group", "orders_lifetime",
                             "spend_lifetime", "shopify_number_of_orders", "shopify_amount_spent",
                             "reconcile_cause"))
    return doc, rows


@pytest.mark.parametrize(("kw", "settings"), [
    ({}, {}),
    ({"rfm_scale": 5, "rfm_method": "range"}, {"refund_dating": "refund_date", "order_value_basis": "total"}),
    ({"rfm_scale": 5}, {"excluded_order_tags": ["wholesale"], "period_days": 180, "activity_window_days": 90}),
])
def test_two_shards_equal_one(kw: dict[str, Any], settings: dict[str, Any]) -> None:
    shop = _shop()
    AnalyticsSettings.objects.create(shop=shop, **settings)
    one, one_rows = _report(shop, 1, **kw)
    two, two_rows = _report(shop, 2, **kw)
    assert one["clv"]["customers"] > 100
    assert one["rfm"]["groups"]["top"]["customers"] > 0
    for doc in (one, two):  # a stopwatch reading and a clock reading
        doc["predictive"]["diagnostics"].pop("fit_seconds")
        doc["predictive"].pop("computed_at")
    assert one == two
    assert one_rows == two_rows
    assert len(one_rows) == one["clv"]["customers"]


def test_rows_of_a_replaced_refresh_are_gone() -> None:
    shop = _shop()
    with override_settings(ANALYTICS_REFRESH_SHARDS=2):
        report_document(shop=shop, as_of=AS_OF)
        first = AnalyticsSnapshot.objects.get(shop=shop).rows_id
        from analytics.services import snapshot_refresh

        snapshot = snapshot_refresh(shop=shop, as_of=AS_OF, predictive=False)
    assert snapshot.rows_id != first
    assert not CustomerRows.objects.filter(pk=first).exists()
    assert not CustomerScore.objects.filter(rows_id=first).exists()
    assert CustomerScore.objects.filter(rows_id=snapshot.rows_id).count() == snapshot.document["clv"]["customers"]
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'an_refresh_%%'")
        assert cur.fetchone()[0] == 0


def test_a_shard_slow_to_start_still_imports_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporting transaction waits for every shard to import its snapshot before it ends:
    here shard 0 finishes long before shard 1 begins (as on a small shop on a busy machine)."""
    import time

    from analytics.metrics import engine

    shop = _shop()
    one, one_rows = _report(shop, 1)
    original = engine._in_transaction

    def late(*args: Any, **kw: Any) -> Any:
        if kw.get("snapshot") is not None:
            time.sleep(1.0)
        return original(*args, **kw)

    monkeypatch.setattr(engine, "_in_transaction", late)
    two, two_rows = _report(shop, 2)
    for doc in (one, two):
        doc["predictive"]["diagnostics"].pop("fit_seconds")
        doc["predictive"].pop("computed_at")
    assert one == two
    assert one_rows == two_rows
