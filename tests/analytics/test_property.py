"""Random small shops: the SQL engine and the separate pandas reading of METRICS agree on every figure."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import AnalyticsSettings, MarketingInput
from analytics.services import report_document
from shops.models import Shop
from sync.models import Customer, Order, Refund
from tests.analytics.reference_pandas import load_frames, reference_document

ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York", "Asia/Seoul", "Australia/Lord_Howe"]

orders_st = st.lists(st.fixed_dictionaries({
    "customer": st.one_of(st.none(), st.integers(1, 9), st.integers(1, 9)),
    "days_before": st.integers(-15, 1200),
    "minute": st.integers(0, 1439),
    "value": st.decimals(min_value=0, max_value=400, places=2),
    "shipping": st.sampled_from([Decimal(0), Decimal("4.99"), Decimal("0.015")]),
    "refund_share": st.sampled_from([None, None, None, Decimal("0.5"), Decimal(1), Decimal("0.333")]),
    "refund_delay": st.integers(0, 120),
    "test": st.sampled_from([False] * 6 + [True]),
    "cancelled": st.sampled_from([False] * 6 + [True]),
    "tags": st.sampled_from([[], [], [], ["wholesale"], ["Wholesale", "x"], ["vip"]]),
}), max_size=30)

shopify_st = st.lists(st.fixed_dictionaries({
    "id": st.integers(1, 10),
    "rfm_group": st.sampled_from(["", "CHAMPIONS", "AT_RISK", "DORMANT", "PROSPECTS"]),
    "number_of_orders": st.integers(0, 6),
    "amount_spent": st.decimals(min_value=0, max_value=900, places=2),
}), max_size=10, unique_by=lambda row: row["id"])

params_st = st.fixed_dictionaries({
    "tz": st.sampled_from(ZONES),
    "currency": st.sampled_from(["USD", "USD", "JPY", "KWD"]),
    "as_of": st.one_of(st.sampled_from([date(2024, 3, 1), date(2026, 1, 1), date(2025, 3, 1)]),
                       st.dates(min_value=date(2023, 1, 1), max_value=date(2026, 6, 1))),
    "period_days": st.sampled_from([365, 365, 90, 180, 730, 45]),
    "activity_days": st.sampled_from([365, 90, 200]),
    "basis": st.sampled_from(["subtotal", "total"]),
    "dating": st.sampled_from(["order_date", "refund_date"]),
    "k": st.sampled_from([3, 5]),
    "method": st.sampled_from(["quantile", "range"]),
    "lifespan": st.sampled_from([None, None, Decimal("2.5")]),
    "excluded": st.sampled_from([(), ("WHOLESALE",)]),
    "marketing": st.one_of(st.none(), st.fixed_dictionaries({
        "acquisition_spend": st.one_of(st.none(), st.decimals(min_value=0, max_value=5000, places=2)),
        "retention_spend": st.one_of(st.none(), st.decimals(min_value=0, max_value=900, places=2)),
        "conversion_rate": st.one_of(st.none(), st.decimals(min_value=Decimal("0.01"), max_value=100, places=2)),
    })),
})


def _build(shop: Shop, p: dict[str, Any], orders: list[dict[str, Any]], shopify: list[dict[str, Any]]) -> None:
    zone = ZoneInfo(p["tz"])
    rows, refunds = [], []
    for i, o in enumerate(orders, start=1):
        day = p["as_of"] - timedelta(days=o["days_before"])
        at = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=o["minute"])
        value, total = o["value"], o["value"] + o["shipping"]
        refunded_sub = (value * o["refund_share"]).quantize(Decimal("0.01")) if o["refund_share"] else Decimal(0)
        refunded_total = refunded_sub + (o["shipping"] if o["refund_share"] == 1 else 0)
        rows.append(Order(shop=shop, shopify_id=i, customer_shopify_id=o["customer"], processed_at=at, created_at=at,
                          updated_at=at, cancelled_at=at if o["cancelled"] else None, test=o["test"],
                          subtotal=value, current_subtotal=value - refunded_sub, total=total,
                          current_total=total - refunded_total, total_refunded=refunded_total, tags=o["tags"]))
        if o["refund_share"]:
            when = at + timedelta(days=o["refund_delay"])
            refunds.append(Refund(shop=shop, shopify_id=1000 + i, order_shopify_id=i, created_at=when,
                                  amount=refunded_total, subtotal_amount=refunded_sub))
    Order.objects.bulk_create(rows)
    Refund.objects.bulk_create(refunds)
    now = datetime.now(tz=ZoneInfo("UTC"))
    Customer.objects.bulk_create([
        Customer(shop=shop, shopify_id=c["id"], created_at=now, updated_at=now, rfm_group=c["rfm_group"],
                 number_of_orders=c["number_of_orders"], amount_spent=c["amount_spent"]) for c in shopify])
    AnalyticsSettings.objects.create(
        shop=shop, period_days=p["period_days"], activity_window_days=p["activity_days"],
        order_value_basis=p["basis"], refund_dating=p["dating"], rfm_scale=p["k"], rfm_method=p["method"],
        lifespan_override_years=p["lifespan"], excluded_order_tags=list(p["excluded"]))
    if p["marketing"] is not None:
        MarketingInput.objects.create(shop=shop, period_start=p["as_of"] - timedelta(days=p["period_days"]),
                                      period_end=p["as_of"], **p["marketing"])


def _compare(engine: dict[str, Any], ref: dict[str, Any]) -> None:
    assert engine["clv"] == ref["clv"]
    assert {k: engine["retention"][k] for k in ref["retention"]} == ref["retention"]
    assert engine["rfm"]["groups"] == ref["rfm"]["groups"]
    assert engine["rfm"].get("segments") == ref["rfm"].get("segments")
    assert engine["lifecycle"] == ref["lifecycle"]
    assert [{k: v for k, v in c.items() if k != "small_sample"} for c in engine["cohorts"]] == ref["cohorts"]
    assert engine["shopify"] == ref["shopify"]
    assert {k: engine["marketing"][k] for k in ref["marketing"]} == ref["marketing"]
    keys = ["customer_id", "recency_days", "frequency", "monetary", "r", "f", "m", "total", "group",
            "lifecycle_stage"]
    assert [{k: c[k] for k in keys} for c in engine["rfm"]["customers"]] == ref["customers"]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(p=params_st, orders=orders_st, shopify=shopify_st)
def test_engine_matches_pandas_reference(p: dict[str, Any], orders: list[dict[str, Any]],
                                         shopify: list[dict[str, Any]]) -> None:
    shop = Shop.objects.create(domain="prop.myshopify.com", iana_timezone=p["tz"], currency=p["currency"])
    try:
        _build(shop, p, orders, shopify)
        engine = report_document(shop=shop, as_of=p["as_of"], include_customers=True)
        with connection.cursor() as cursor:
            frames = load_frames(cursor, shop.pk)
        ref = reference_document(
            frames, tz=p["tz"], currency=p["currency"], as_of=p["as_of"], period_days=p["period_days"],
            activity_days=p["activity_days"], basis=p["basis"], dating=p["dating"], k=p["k"], method=p["method"],
            lifespan_override=p["lifespan"], excluded_tags=p["excluded"], marketing=p["marketing"])
        _compare(engine, ref)
    finally:
        shop.delete()
