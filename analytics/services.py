"""Writes: settings and marketing inputs (validated), snapshot refresh; and the one report reader.

Pages, the report command and CSV exports all read ``report_document`` (or the snapshot's
customer rows), so every surface shows the same numbers.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import connection, transaction
from django.utils import timezone

from analytics import selectors
from analytics.metrics.document import document_build, marketing_apply
from analytics.metrics.engine import metrics_collect
from analytics.metrics.params import ReportParams, bounds_for
from analytics.models import (
    AnalyticsSettings,
    AnalyticsSnapshot,
    CustomerPrediction,
    CustomerRows,
    CustomerScore,
    MarketingInput,
)
from analytics.predictive.errors import PredictiveError
from analytics.predictive.service import CustomerPredictions, predictive_compute, predictive_explain
from shops.models import Shop

logger = logging.getLogger(__name__)

PERIOD_DAYS_RANGE = (7, 3660)
ACTIVITY_DAYS_RANGE = (7, 3660)
LIFESPAN_RANGE = (Decimal("0.01"), Decimal(50))
MAX_TAGS = 50
# Per-customer rows are kept for this many of a shop's most recent snapshots.
KEEP_CUSTOMER_ROWS = 4
ORPHAN_ROWS_AFTER = timedelta(hours=1)
# Predictive settings: the horizon H of the predicted CLV in days (a month to five years) and the
# annual discount rate in percent.
PREDICTIVE_HORIZON_RANGE = (30, 1825)
PREDICTIVE_DISCOUNT_RANGE = (Decimal(0), Decimal(100))

Errors = dict[str, list[str]]


def _int_in(data: dict[str, Any], key: str, lo: int, hi: int, errors: Errors) -> int | None:
    raw = data.get(key)
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        errors.setdefault(key, []).append("Enter a whole number.")
        return None
    if not lo <= value <= hi:
        errors.setdefault(key, []).append(f"Enter a number from {lo} to {hi}.")
        return None
    return value


def _choice(data: dict[str, Any], key: str, choices: list[str], errors: Errors) -> str | None:
    value = str(data.get(key, "")).strip()
    if value not in choices:
        errors.setdefault(key, []).append(f"Choose one of: {', '.join(choices)}.")
        return None
    return value


def _decimal(data: dict[str, Any], key: str, errors: Errors, *, lo: Decimal, hi: Decimal | None,
             places: int, lo_inclusive: bool = True, max_digits: int | None = None) -> Decimal | None:
    """A Decimal from form text; blank means 'not set' (None).

    ``max_digits``: the column's precision, for a value with no upper bound of its own: a
    number the column cannot hold is a field error here instead of a failed save.
    """
    raw = data.get(key)
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = Decimal(str(raw).strip().replace(",", ""))
    except InvalidOperation:
        errors.setdefault(key, []).append("Enter a number.")
        return None
    if not value.is_finite():
        errors.setdefault(key, []).append("Enter a number.")
        return None
    if value < lo or (not lo_inclusive and value == lo) or (hi is not None and value > hi):
        bound = f"more than {lo}" if not lo_inclusive else f"at least {lo}"
        errors.setdefault(key, []).append(f"Enter a number {bound}" + (f" and at most {hi}." if hi else "."))
        return None
    # adjusted() is the exponent of the leading digit; unlike normalize() below it cannot overflow.
    if max_digits is not None and value.adjusted() >= max_digits - places:
        errors.setdefault(key, []).append(f"Enter a number less than {10 ** (max_digits - places):,}.")
        return None
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        errors.setdefault(key, []).append(f"Use at most {places} decimal places.")
        return None
    return value


def _tags(raw: Any, errors: Errors) -> list[str] | None:
    items = raw.split(",") if isinstance(raw, str) else list(raw or [])
    tags: list[str] = []
    for item in items:
        tag = str(item).strip()
        if not tag:
            continue
        if len(tag) > 255:
            errors.setdefault("excluded_order_tags", []).append("A tag has at most 255 characters.")
            return None
        try:
            ProhibitNullCharactersValidator()(tag)  # PostgreSQL text cannot hold one: the save would fail
        except ValidationError as exc:
            errors.setdefault("excluded_order_tags", []).extend(exc.messages)
            return None
        if tag.lower() not in {t.lower() for t in tags}:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        errors.setdefault("excluded_order_tags", []).append(f"Exclude at most {MAX_TAGS} tags.")
        return None
    return tags


def settings_update(*, shop: Shop, data: dict[str, Any]) -> tuple[AnalyticsSettings | None, Errors]:
    """Validate and save the shop's analytics settings; keys absent from `data` keep their value.

    Returns (settings, {}) on success, (None, {field: [messages]}) otherwise; nothing is saved
    unless every field is valid.
    """
    current = selectors.analytics_settings_get(shop=shop)
    errors: Errors = {}
    values: dict[str, Any] = {}
    if "period_days" in data:
        values["period_days"] = _int_in(data, "period_days", *PERIOD_DAYS_RANGE, errors)
    if "activity_window_days" in data:
        values["activity_window_days"] = _int_in(data, "activity_window_days", *ACTIVITY_DAYS_RANGE, errors)
    if "order_value_basis" in data:
        values["order_value_basis"] = _choice(data, "order_value_basis",
                                              list(AnalyticsSettings.OrderValueBasis.values), errors)
    if "refund_dating" in data:
        values["refund_dating"] = _choice(data, "refund_dating", list(AnalyticsSettings.RefundDating.values), errors)
    if "rfm_scale" in data:
        scale = _choice(data, "rfm_scale", ["3", "5"], errors)
        values["rfm_scale"] = None if scale is None else int(scale)
    if "rfm_method" in data:
        values["rfm_method"] = _choice(data, "rfm_method", list(AnalyticsSettings.RfmMethod.values), errors)
    if "lifespan_override_years" in data:
        values["lifespan_override_years"] = _decimal(data, "lifespan_override_years", errors,
                                                     lo=LIFESPAN_RANGE[0], hi=LIFESPAN_RANGE[1], places=2)
    if "excluded_order_tags" in data:
        values["excluded_order_tags"] = _tags(data["excluded_order_tags"], errors)
    if "predictive_time_unit" in data:
        values["predictive_time_unit"] = _choice(data, "predictive_time_unit",
                                                 list(AnalyticsSettings.TimeUnit.values), errors)
    if "predictive_horizon_days" in data:
        values["predictive_horizon_days"] = _int_in(data, "predictive_horizon_days", *PREDICTIVE_HORIZON_RANGE,
                                                    errors)
    if "predictive_discount_rate_pct" in data:
        rate = _decimal(data, "predictive_discount_rate_pct", errors, lo=PREDICTIVE_DISCOUNT_RANGE[0],
                        hi=PREDICTIVE_DISCOUNT_RANGE[1], places=2)
        if rate is None and "predictive_discount_rate_pct" not in errors:
            # Blank is not "no discounting" (that is 0): the rate always has a value.
            errors["predictive_discount_rate_pct"] = ["Enter a number (0 for no discounting)."]
        values["predictive_discount_rate_pct"] = rate
    if errors:
        return None, errors
    for key, value in values.items():
        setattr(current, key, value)
    current.save()
    _refund_lines_if_needed(shop=shop, refund_dating=current.refund_dating, basis=current.order_value_basis)
    return current, {}


def _refund_lines_if_needed(*, shop: Shop, refund_dating: str, basis: str) -> None:
    """Refunds dated by refund and valued at their line subtotal need each refund's line items, which
    a bulk export cannot carry: ask sync to read the unknown ones (nothing when none is unknown)."""
    if (refund_dating == AnalyticsSettings.RefundDating.REFUND_DATE
            and basis == AnalyticsSettings.OrderValueBasis.SUBTOTAL):
        from sync.services import refund_lines_later

        refund_lines_later(shop=shop)


def _date(data: dict[str, Any], key: str, errors: Errors) -> date | None:
    raw = data.get(key)
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw).strip())
    except (TypeError, ValueError):
        errors.setdefault(key, []).append("Enter a date as YYYY-MM-DD.")
        return None


def marketing_inputs_update(*, shop: Shop, data: dict[str, Any]) -> tuple[MarketingInput | None, Errors]:
    """Validate and save the merchant's spend and conversion rate for one period [start, end)."""
    errors: Errors = {}
    start = _date(data, "period_start", errors)
    end = _date(data, "period_end", errors)
    if start and end and end <= start:
        errors.setdefault("period_end", []).append("The period must end after it starts.")
    spend_digits = MarketingInput._meta.get_field("acquisition_spend").max_digits
    acq = _decimal(data, "acquisition_spend", errors, lo=Decimal(0), hi=None, places=4, max_digits=spend_digits)
    ret = _decimal(data, "retention_spend", errors, lo=Decimal(0), hi=None, places=4, max_digits=spend_digits)
    conv = _decimal(data, "conversion_rate", errors, lo=Decimal(0), hi=Decimal(100), places=4, lo_inclusive=False)
    if errors or start is None or end is None:
        return None, errors
    row, _ = MarketingInput.objects.update_or_create(
        shop=shop, period_start=start, period_end=end,
        defaults={"acquisition_spend": acq, "retention_spend": ret, "conversion_rate": conv},
    )
    return row, {}


def _finite(block: dict[str, Any], *, shop_id: int) -> dict[str, Any]:
    """The block with every NaN or infinite float replaced by None (shown as missing).

    PostgreSQL's jsonb refuses NaN, so one non-finite model output (seen in the backtest's
    predicted totals) would otherwise fail the whole snapshot and the page that asked for it.
    """
    replaced: list[int] = []

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            replaced.append(1)
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    out: dict[str, Any] = clean(block)
    if replaced:
        logger.warning("predictive block: %d non-finite value(s) stored as missing", len(replaced),
                       extra={"shop": shop_id})
    return out


def _predictive(*, shop: Shop, params: ReportParams, scores_id: int, predictions_id: int) -> dict[str, Any]:
    """The document's `predictive` block; its per-customer rows go to CustomerPrediction under
    `predictions_id` (and onto the score rows), not into the document."""
    rows: CustomerPredictions | None = None
    try:
        rfm_groups = dict(CustomerScore.objects.filter(rows_id=scores_id)
                          .values_list("customer_shopify_id", "rfm_group"))
        with transaction.atomic():  # a savepoint: a failed query here must not abort the refresh
            block, rows = predictive_compute(
                shop=shop, as_of=params.as_of, horizon_days=params.predictive_horizon_days,
                discount_rate=float(params.predictive_discount_rate_pct) / 100,
                time_unit="weeks" if params.predictive_time_unit == "weeks" else "days",
                order_value_basis=params.order_value_basis, excluded_order_tags=params.excluded_order_tags,
                currency=shop.currency or "", rfm_groups=rfm_groups)
        block = _finite(block, shop_id=shop.pk)
    except PredictiveError as exc:
        block = {"available": False, "error": str(exc), "code": getattr(exc, "code", "predictive_error")}
    except Exception:  # noqa: BLE001 - a model failure must not take the descriptive figures down with it
        logger.exception("predictive block failed", extra={"shop": shop.pk})
        block = {"available": False, "error": "The predictive figures could not be computed.", "code": "failed"}
    _predictions_write(predictions_id=predictions_id, scores_id=scores_id, rows=rows)
    block["computed_at"] = timezone.now().isoformat()
    return block


NOT_COMPUTED = "not_computed"


def _predictive_reusable(block: Any, *, predictions_id: int | None, max_age: timedelta | None) -> bool:
    """Whether a stored block can stand for this refresh: computed (not a crash, not a placeholder),
    young enough (any age when max_age is None), with its prediction rows still there."""
    if not isinstance(block, dict) or not block.get("computed_at") or block.get("code") in {"failed", NOT_COMPUTED}:
        return False
    if max_age is not None and timezone.now() - datetime.fromisoformat(block["computed_at"]) > max_age:
        return False
    predicted = (block.get("totals") or {}).get("customers", 0) if block.get("available") else 0
    return not predicted or (predictions_id is not None
                             and CustomerPrediction.objects.filter(rows_id=predictions_id).exists())


def _predictive_for(*, shop: Shop, params: ReportParams, scores_id: int, stored: Any,
                    stored_predictions_id: int | None, compute: bool,
                    reuse_within: timedelta | None) -> tuple[dict[str, Any], int | None]:
    """The refresh's `predictive` block and the row set of its per-customer predictions.

    The stored block is kept when it is younger than `reuse_within`, and, with `compute` false,
    whatever its age; a kept block keeps its prediction rows, copied onto the new score rows.
    Never None: without a block to keep and without computing, a placeholder says so.
    """
    if compute:
        keep = reuse_within is not None and _predictive_reusable(stored, predictions_id=stored_predictions_id,
                                                                 max_age=reuse_within)
    else:
        keep = _predictive_reusable(stored, predictions_id=stored_predictions_id, max_age=None)
    if keep:
        if stored_predictions_id is not None:
            _scores_predictions_copy(predictions_id=stored_predictions_id, scores_id=scores_id)
        return dict(stored), stored_predictions_id
    if compute:
        predictions = CustomerRows.objects.create(shop=shop)
        return _predictive(shop=shop, params=params, scores_id=scores_id, predictions_id=predictions.pk), \
            predictions.pk
    message = "The predictive figures were not computed for this snapshot."
    return {"available": False, "message": message, "error": message, "code": NOT_COMPUTED}, None


PREDICTION_COLUMNS = ("customer_shopify_id", "x", "t_x", "t_observed", "p_alive", "expected_purchases",
                      "expected_aov", "predicted_clv")


def _predictions_write(*, predictions_id: int, scores_id: int, rows: CustomerPredictions | None) -> None:
    """The predictions with one COPY under their row set, then copied onto the score rows."""
    if rows is None or not len(rows):
        return
    columns = ", ".join(("rows_id", *PREDICTION_COLUMNS))
    with (transaction.atomic(), connection.cursor() as cursor,
          cursor.cursor.copy(f"COPY analytics_customerprediction ({columns}) FROM STDIN") as cp):
        for record in rows.records():
            cp.write_row((predictions_id, *record))
    _scores_predictions_copy(predictions_id=predictions_id, scores_id=scores_id)


def _scores_predictions_copy(*, predictions_id: int, scores_id: int) -> None:
    """The RFM score rows carry their customer's predictions, so the customer list and the CSV
    read one table."""
    with connection.cursor() as cursor:
        cursor.execute("""
            UPDATE analytics_customerscore s
            SET p_alive = p.p_alive, expected_purchases = p.expected_purchases, expected_aov = p.expected_aov,
                predicted_clv = p.predicted_clv
            FROM analytics_customerprediction p
            WHERE s.rows_id = %(scores)s AND p.rows_id = %(predictions)s
              AND p.customer_shopify_id = s.customer_shopify_id""",
                       {"scores": scores_id, "predictions": predictions_id})


def refresh_shards() -> int:
    """How many database connections one refresh uses at once (one core each)."""
    return max(1, int(getattr(django_settings, "ANALYTICS_REFRESH_SHARDS", 2)))


def snapshot_refresh(*, shop: Shop, as_of: date | None = None, period_days: int | None = None,
                     rfm_scale: int | None = None, rfm_method: str | None = None,
                     predictive: bool = True, predictive_reuse_within: timedelta | None = None) -> AnalyticsSnapshot:
    """Compute every figure for the shop and store the document (replacing the same key's snapshot).

    The customer rows are written under a new row set while the old one is still served, and
    swapped in with the document in one short transaction at the end. The predictive block is
    computed unless the key's stored one is younger than `predictive_reuse_within`;
    `predictive=False` computes none and keeps a stored one.
    """
    params = selectors.report_params_for(shop=shop, as_of=as_of, period_days=period_days, rfm_scale=rfm_scale,
                                         rfm_method=rfm_method)
    bounds = bounds_for(params, selectors.shop_zone(shop=shop))
    started = time.perf_counter()
    stored = selectors.snapshot_find(shop=shop, params=params)
    rows = CustomerRows.objects.create(shop=shop)
    predictions_id: int | None = None
    try:
        raw = metrics_collect(shop_id=shop.pk, params=params, bounds=bounds, rows_id=rows.pk,
                              shards=refresh_shards())
        document = document_build(raw=raw, params=params, bounds=bounds, shop_domain=shop.domain,
                                  currency=shop.currency or "")
        document["predictive"], predictions_id = _predictive_for(
            shop=shop, params=params, scores_id=rows.pk, stored=stored.document.get("predictive") if stored else None,
            stored_predictions_id=stored.predictions_id if stored else None, compute=predictive,
            reuse_within=predictive_reuse_within)
        document["explain"].update(predictive_explain(document["predictive"]))
        with transaction.atomic():
            snapshot, _ = AnalyticsSnapshot.objects.get_or_create(
                shop=shop, as_of=params.as_of, settings_hash=params.settings_hash(),
                defaults={"computed_at": timezone.now(), "params": params.settings_dict()},
            )
            snapshot = AnalyticsSnapshot.objects.select_for_update().get(pk=snapshot.pk)
            replaced = [i for i in (snapshot.rows_id, snapshot.predictions_id)
                        if i is not None and i not in (rows.pk, predictions_id)]
            snapshot.document = document
            snapshot.params = params.settings_dict()
            snapshot.computed_at = timezone.now()
            snapshot.duration_ms = int((time.perf_counter() - started) * 1000)
            snapshot.rows = rows
            snapshot.predictions_id = predictions_id
            snapshot.save()
        if replaced:
            CustomerRows.objects.filter(pk__in=replaced).delete()
    except BaseException:
        kept = (stored.rows_id, stored.predictions_id) if stored else ()
        CustomerRows.objects.filter(pk__in=[i for i in (rows.pk, predictions_id)
                                            if i is not None and i not in kept]).delete()
        raise
    _prune_customer_rows(shop=shop)
    _refund_lines_if_needed(shop=shop, refund_dating=params.refund_dating, basis=params.order_value_basis)
    return snapshot


def _prune_customer_rows(*, shop: Shop) -> None:
    keep = list(AnalyticsSnapshot.objects.filter(shop=shop, rows__isnull=False)
                .order_by("-computed_at").values_list("pk", flat=True)[:KEEP_CUSTOMER_ROWS])
    old = AnalyticsSnapshot.objects.filter(shop=shop, rows__isnull=False).exclude(pk__in=keep)
    stale = [i for pair in old.values_list("rows_id", "predictions_id") for i in pair if i is not None]
    old.update(rows=None, predictions=None)
    # A crashed refresh's row set is referenced by no snapshot; drop it once it is surely not in use.
    in_use = {i for pair in AnalyticsSnapshot.objects.filter(shop=shop).values_list("rows_id", "predictions_id")
              for i in pair if i is not None}
    orphans = (CustomerRows.objects.filter(shop=shop, created_at__lt=timezone.now() - ORPHAN_ROWS_AFTER)
               .exclude(pk__in=in_use).values_list("pk", flat=True))
    stale += list(orphans)
    if stale:
        CustomerRows.objects.filter(pk__in=stale).delete()


def report_document(*, shop: Shop, as_of: date | None = None, period_days: int | None = None,
                    rfm_scale: int | None = None, rfm_method: str | None = None,
                    include_customers: bool = False) -> dict[str, Any]:
    """The METRICS.md document from the stored snapshot (computed first when there is none)."""
    params = selectors.report_params_for(shop=shop, as_of=as_of, period_days=period_days, rfm_scale=rfm_scale,
                                         rfm_method=rfm_method)
    snapshot = selectors.snapshot_find(shop=shop, params=params)
    if snapshot is None or (include_customers and not selectors.snapshot_rows_present(snapshot=snapshot)):
        snapshot = snapshot_refresh(shop=shop, as_of=params.as_of, period_days=params.period_days,
                                    rfm_scale=params.rfm_scale, rfm_method=params.rfm_method)
    doc = copy.deepcopy(snapshot.document)
    bounds = bounds_for(params, selectors.shop_zone(shop=shop))
    marketing_apply(doc, selectors.marketing_inputs_for_period(shop=shop, start=bounds.start_date,
                                                                end=bounds.end_date))
    if include_customers:
        doc["rfm"]["customers"] = selectors.customer_rows(snapshot=snapshot)
        if isinstance(doc.get("predictive"), dict):
            available = doc["predictive"].get("available")
            doc["predictive"]["customers"] = selectors.prediction_rows(snapshot=snapshot) if available else []
    doc["computed_at"] = snapshot.computed_at.isoformat()
    return doc


def customer_scores_forget(*, shop: Shop, customer_shopify_id: int) -> int:
    """Delete a customer's rows from every stored customer table of the shop (customers/redact):
    RFM scores and predictions.

    Snapshot documents hold only aggregates, so they stay until the next refresh recomputes them
    without the customer's orders. Returns the number of rows deleted.
    """
    scores, _ = CustomerScore.objects.filter(rows__shop=shop, customer_shopify_id=customer_shopify_id).delete()
    predictions, _ = CustomerPrediction.objects.filter(rows__shop=shop,
                                                       customer_shopify_id=customer_shopify_id).delete()
    return scores + predictions
