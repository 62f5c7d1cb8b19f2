"""Reads: the shop's analytics settings, its marketing inputs for a period, stored snapshots."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Q, QuerySet
from django.utils import timezone

from analytics.metrics.numbers import decimal_money, money
from analytics.metrics.params import ReportParams
from analytics.models import AnalyticsSettings, AnalyticsSnapshot, CustomerPrediction, CustomerScore, MarketingInput
from shops.models import Shop


def analytics_settings_get(*, shop: Shop) -> AnalyticsSettings:
    """The shop's settings, or unsaved defaults when the merchant never changed them."""
    found = AnalyticsSettings.objects.filter(shop=shop).first()
    return found or AnalyticsSettings(shop=shop)


def shop_zone(*, shop: Shop) -> str:
    """The shop's IANA zone; UTC when Shopify sent none or one this system does not know."""
    name = shop.iana_timezone or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def snapshot_rows_present(*, snapshot: AnalyticsSnapshot, predictions: bool = True) -> bool:
    """Whether the snapshot's customer rows (RFM scores, and with `predictions` the per-customer
    predictions) can be read (pruned, or lost with the unlogged tables after a database crash,
    when they cannot)."""
    if not snapshot.has_customers:
        return False
    expected = snapshot.document.get("clv", {}).get("customers", 0)
    if expected and not customer_scores(snapshot=snapshot).exists():
        return False
    if not predictions:
        return True
    predictive = snapshot.document.get("predictive") or {}
    predicted = (predictive.get("totals") or {}).get("customers", 0) if predictive.get("available") else 0
    return not predicted or customer_predictions(snapshot=snapshot).exists()


def customer_scores(*, snapshot: AnalyticsSnapshot) -> QuerySet[CustomerScore]:
    """The snapshot's customer score rows (none when they were pruned)."""
    return CustomerScore.objects.filter(rows_id=snapshot.rows_id) if snapshot.rows_id else CustomerScore.objects.none()


def customer_predictions(*, snapshot: AnalyticsSnapshot) -> QuerySet[CustomerPrediction]:
    """The snapshot's per-customer predictions (none when pruned or never computed)."""
    if not snapshot.predictions_id:
        return CustomerPrediction.objects.none()
    return CustomerPrediction.objects.filter(rows_id=snapshot.predictions_id)


def shop_today(*, shop: Shop, now: datetime | None = None) -> date:
    """Today's date in the shop's zone: the default as-of date (its midnight is the period's end)."""
    return (now or timezone.now()).astimezone(ZoneInfo(shop_zone(shop=shop))).date()


def report_params_for(*, shop: Shop, as_of: date | None = None, period_days: int | None = None,
                      rfm_scale: int | None = None, rfm_method: str | None = None) -> ReportParams:
    return report_params_from(analytics_settings_get(shop=shop), shop=shop, as_of=as_of, period_days=period_days,
                              rfm_scale=rfm_scale, rfm_method=rfm_method)


def report_params_from(s: AnalyticsSettings, *, shop: Shop, as_of: date | None = None,
                       period_days: int | None = None, rfm_scale: int | None = None,
                       rfm_method: str | None = None) -> ReportParams:
    """The parameters of one report from settings already read (the explicit arguments win)."""
    return ReportParams(
        as_of=as_of or shop_today(shop=shop),
        period_days=int(period_days or s.period_days),
        activity_window_days=int(s.activity_window_days),
        order_value_basis=s.order_value_basis,
        refund_dating=s.refund_dating,
        rfm_scale=int(rfm_scale or s.rfm_scale),
        rfm_method=rfm_method or s.rfm_method,
        lifespan_override_years=s.lifespan_override_years,
        excluded_order_tags=tuple(s.excluded_order_tags or ()),
        time_zone=shop_zone(shop=shop),
        currency=shop.currency or "",
        predictive_time_unit=s.predictive_time_unit,
        predictive_horizon_days=int(s.predictive_horizon_days),
        predictive_discount_rate_pct=Decimal(s.predictive_discount_rate_pct),
    )


def snapshot_find(*, shop: Shop, params: ReportParams) -> AnalyticsSnapshot | None:
    return AnalyticsSnapshot.objects.filter(shop=shop, as_of=params.as_of,
                                            settings_hash=params.settings_hash()).first()


def marketing_inputs_for_period(*, shop: Shop, start: date, end: date) -> dict[str, Any] | None:
    """The inputs entered for exactly this period, else the latest entry overlapping it."""
    qs = MarketingInput.objects.filter(shop=shop)
    found = qs.filter(period_start=start, period_end=end).first() or (
        qs.filter(Q(period_start__lt=end) & Q(period_end__gt=start)).order_by("-period_end", "-updated_at").first()
    )
    if found is None:
        return None
    return {
        "acquisition_spend": found.acquisition_spend,
        "retention_spend": found.retention_spend,
        "conversion_rate": found.conversion_rate,
        "period": {"start": found.period_start.isoformat(), "end": found.period_end.isoformat()},
    }


def customer_rows(*, snapshot: AnalyticsSnapshot) -> list[dict[str, Any]]:
    """The document's `rfm.customers` list, best total first."""
    currency = snapshot.document.get("currency", "")
    rows = customer_scores(snapshot=snapshot).order_by("-total", "customer_shopify_id")
    return [
        {
            "customer_id": row.customer_shopify_id, "recency_days": row.recency_days, "frequency": row.frequency,
            "monetary": money(row.monetary, currency), "r": row.r, "f": row.f, "m": row.m,
            "total": row.total, "group": row.rfm_group, "segment": row.segment or None,
            "lifecycle_stage": row.lifecycle_stage, "shopify_rfm_group": row.shopify_rfm_group or None,
            "orders_lifetime": row.orders_lifetime, "shopify_number_of_orders": row.shopify_number_of_orders,
            "shopify_amount_spent": None if row.shopify_amount_spent is None else str(row.shopify_amount_spent),
            "reconcile_cause": row.reconcile_cause or None,
            "predicted_clv": None if row.predicted_clv is None else str(row.predicted_clv),
        }
        for row in rows.iterator(chunk_size=5000)
    ]


def prediction_rows(*, snapshot: AnalyticsSnapshot) -> list[dict[str, Any]]:
    """The document's `predictive.customers` list: every customer the models scored, by customer id."""
    currency = snapshot.document.get("currency", "")
    rows = (customer_predictions(snapshot=snapshot).order_by("customer_shopify_id")
            .values_list("customer_shopify_id", "x", "t_x", "T", "p_alive", "expected_purchases", "expected_aov",
                         "predicted_clv"))
    return [
        {"customer_id": cid, "x": x, "t_x": t_x, "T": t, "p_alive": round(p_alive, 4),
         "expected_purchases": round(expected, 4), "expected_aov": decimal_money(aov, currency),
         "predicted_clv": decimal_money(clv, currency)}
        for cid, x, t_x, t, p_alive, expected, aov, clv in rows.iterator(chunk_size=5000)
    ]
