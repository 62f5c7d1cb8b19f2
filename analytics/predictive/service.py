"""The `predictive` block of the report document: fits, totals, per-customer figures, backtest."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from analytics.metrics.numbers import decimal_money
from analytics.predictive.backtest import backtest_compute
from analytics.predictive.bgnbd import BgNbdFit, bgnbd_fit
from analytics.predictive.clv import DAYS_PER_MONTH, Predictions, predictions_compute
from analytics.predictive.errors import FitFailedError, PredictiveError
from analytics.predictive.gamma_gamma import GammaGammaFit, gamma_gamma_fit
from analytics.predictive.summary import (
    UNIT_DAYS,
    Summary,
    TimeUnit,
    excluded_tags_normal,
    holdout_purchases_for_shop,
    repeat_days_for_shop,
    summary_for_shop,
)
from shops.models import Shop

logger = logging.getLogger(__name__)

MIN_HOLDOUT_DAYS = 28
# The weekly tracking series starts at most this long before the calibration end.
MAX_SERIES_DAYS = 3 * 365
NOT_IN_RFM = "not_in_rfm"


def _money(value: float, currency: str) -> str:
    """A model's float estimate as a decimal string in the currency's minor units, rounded half up
    like the descriptive figures (analytics.metrics.numbers.money)."""
    return str(decimal_money(Decimal(repr(float(value))), currency))


# Each predictive figure's formula, keyed like the descriptive ones in
# analytics.metrics.document.FORMULAS (the document's path to the figure, or the per-customer
# column's name under `predictive`); `predictive_explain` adds the inputs a block used.
FORMULAS = {
    "predictive.bgnbd": "BG/NBD (Fader, Hardie and Lee 2005), maximum likelihood over every customer's (x, t_x, T): "
    "while alive a customer buys at a Poisson rate lambda ~ Gamma(r, alpha); after each repeat purchase they drop "
    "out with probability p ~ Beta(a, b). x = purchase days after the first (same-day orders are one purchase), "
    "t_x = first to last purchase day, T = first purchase day to the day before as_of, in time_unit; alpha is in "
    "time_unit",
    "predictive.gamma_gamma": "Gamma-Gamma (Fader and Hardie 2013), maximum likelihood over the repeat customers' "
    "(x, m): order values ~ Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers; m = mean value of the repeat "
    "purchase days (the first left out) on the order value basis",
    "predictive.p_alive": "P(alive | x, t_x, T) = 1 / (1 + [x > 0] * a / (b + x - 1) "
    "* ((alpha + T) / (alpha + t_x))^(r + x))",
    "predictive.expected_purchases": "E[Y(t) | x, t_x, T] for t = horizon_days in time_unit: "
    "(a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t))^(r + x) * 2F1(r + x, b + x; a + b + x - 1; "
    "t / (alpha + T + t))] / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))",
    "predictive.expected_aov": "E[order value | x, m] = p * (gamma + x * m) / (p * x + q - 1) "
    "(x = 0: the population mean p * gamma / (q - 1))",
    "predictive.predicted_clv": "expected_aov * sum over k = 1..n of [E(k * s) - E((k - 1) * s)] "
    "* (1 + d)^(-k * s / 365): E(t) = expected purchases in the next t days; H = horizon_days cut into "
    "n = max(1, round(H / (365 / 12))) steps of s = H / n days; d = discount_rate a year, each step's purchases "
    "discounted from its end",
    "predictive.totals.expected_alive": "sum of p_alive over the customers the models score (every customer with a "
    "counted order before as_of)",
    "predictive.totals.mean_p_alive": "expected_alive / customers",
    "predictive.totals.expected_purchases": "sum of expected_purchases over the scored customers",
    "predictive.totals.predicted_clv": "sum of predicted_clv over the scored customers (groups: over each RFM group; "
    "not_in_rfm = scored customers outside the period's RFM table)",
    "predictive.totals.predicted_clv_per_customer": "predicted_clv / customers",
    "predictive.backtest": "BG/NBD fitted on the orders before calibration_end = as_of - holdout_days "
    "(holdout_days = min(H, half the shop's history), at least 28); each calibration customer's repeat purchase "
    "days in the holdout predicted with E[Y(holdout_days) | x, t_x, T] and compared with the actual ones, by "
    "calibration frequency and week by week (cumulative, with E[X(t)] from each first purchase)",
}


def predictive_explain(block: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The document's `explain` entries for the predictive figures: formula and inputs (null
    inputs when the models were not fitted)."""
    block = block or {}
    params = block.get("parameters") or {}
    diag = block.get("diagnostics") or {}
    bg_diag, gg_diag = diag.get("bgnbd") or {}, diag.get("gamma_gamma") or {}
    totals = block.get("totals") or {}
    backtest = block.get("backtest") or {}
    bg, gg = block.get("bgnbd"), block.get("gamma_gamma")
    horizon = params.get("horizon_days")
    steps = max(1, round(horizon / DAYS_PER_MONTH)) if horizon else None
    unit = params.get("time_unit")
    inputs: dict[str, dict[str, Any]] = {
        "predictive.bgnbd": {
            "parameters": bg,
            "customers": bg_diag.get("customers"),
            "repeat_customers": bg_diag.get("repeat_customers"),
            "time_unit": unit,
            "log_likelihood": bg_diag.get("log_likelihood"),
            "as_of": params.get("as_of"),
        },
        "predictive.gamma_gamma": {
            "parameters": gg,
            "repeat_customers": gg_diag.get("customers"),
            "order_value_basis": params.get("order_value_basis"),
            "log_likelihood": gg_diag.get("log_likelihood"),
        },
        "predictive.p_alive": {"bgnbd": bg, "time_unit": unit, "per_customer": "x, t_x, T"},
        "predictive.expected_purchases": {
            "bgnbd": bg,
            "horizon_days": horizon,
            "time_unit": unit,
            "per_customer": "x, t_x, T",
        },
        "predictive.expected_aov": {"gamma_gamma": gg, "per_customer": "x, m"},
        "predictive.predicted_clv": {
            "horizon_days": horizon,
            "discount_rate": params.get("discount_rate"),
            "steps": steps,
            "step_days": round(horizon / steps, 4) if horizon and steps else None,
            "currency": params.get("currency"),
        },
        "predictive.totals.expected_alive": {"customers": totals.get("customers")},
        "predictive.totals.mean_p_alive": {
            "expected_alive": totals.get("expected_alive"),
            "customers": totals.get("customers"),
        },
        "predictive.totals.expected_purchases": {
            "customers": totals.get("customers"),
            "horizon_days": horizon,
        },
        "predictive.totals.predicted_clv": {
            "customers": totals.get("customers"),
            "horizon_days": horizon,
            "discount_rate": params.get("discount_rate"),
        },
        "predictive.totals.predicted_clv_per_customer": {
            "predicted_clv": totals.get("predicted_clv"),
            "customers": totals.get("customers"),
        },
        "predictive.backtest": {
            "calibration_end": backtest.get("calibration_end"),
            "holdout_days": backtest.get("holdout_days"),
            "customers": backtest.get("customers"),
        },
    }
    return {key: {"formula": FORMULAS[key], "inputs": inputs[key]} for key in FORMULAS}


def _as_date(as_of: dt.date | dt.datetime, shop: Shop) -> dt.date:
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is not None:
            return as_of.astimezone(ZoneInfo(shop.iana_timezone or "UTC")).date()
        return as_of.date()
    return as_of


def _bgnbd_diagnostics(fit: BgNbdFit) -> dict[str, Any]:
    return {
        "log_likelihood": round(fit.log_likelihood, 4),
        "converged": fit.converged,
        "iterations": fit.iterations,
        "customers": fit.n_customers,
        "repeat_customers": fit.n_repeaters,
        "distinct_rows": fit.n_distinct_rows,
    }


def _gg_diagnostics(fit: GammaGammaFit) -> dict[str, Any]:
    return {
        "log_likelihood": round(fit.log_likelihood, 4),
        "converged": fit.converged,
        "iterations": fit.iterations,
        "customers": fit.n_customers,
        "distinct_rows": fit.n_distinct_rows,
    }


def _customer_rows(summary: Summary, pred: Predictions, currency: str) -> list[dict[str, Any]]:
    """One dict per customer; columns go through tolist() first (numpy scalars are slow to
    index one by one, and this runs for every customer of the shop)."""
    n = len(summary)
    none: list[str | None] = [None] * n
    aov = [_money(v, currency) for v in pred.expected_aov.tolist()] if pred.expected_aov is not None else none
    clv = [_money(v, currency) for v in pred.clv.tolist()] if pred.clv is not None else none
    columns = zip(
        summary.customer_id.tolist(),
        summary.x.astype(np.int64).tolist(),
        summary.t_x.tolist(),
        summary.T.tolist(),
        np.round(pred.p_alive, 4).tolist(),
        np.round(pred.expected_purchases, 4).tolist(),
        aov,
        clv,
        strict=True,
    )
    keys = ("customer_id", "x", "t_x", "T", "p_alive", "expected_purchases", "expected_aov", "predicted_clv")
    return [dict(zip(keys, row, strict=True)) for row in columns]


def _finite(pred: Predictions) -> bool:
    arrays = [pred.p_alive, pred.expected_purchases, pred.expected_aov, pred.clv]
    return all(bool(np.all(np.isfinite(a))) for a in arrays if a is not None)


def _totals(pred: Predictions, idx: np.ndarray, currency: str) -> dict[str, Any]:
    n = len(idx)
    out: dict[str, Any] = {
        "customers": n,
        "expected_alive": round(float(pred.p_alive[idx].sum()), 2),
        "mean_p_alive": round(float(pred.p_alive[idx].mean()), 4) if n else None,
        "expected_purchases": round(float(pred.expected_purchases[idx].sum()), 2),
        "predicted_clv": None,
        "predicted_clv_per_customer": None,
    }
    if pred.clv is not None:
        total = float(pred.clv[idx].sum())
        out["predicted_clv"] = _money(total, currency)
        out["predicted_clv_per_customer"] = _money(total / n, currency) if n else None
    return out


def _shop_settings(shop: Shop) -> tuple[str, tuple[str, ...]]:
    """The shop's order-value basis and excluded order tags (analytics settings), defaults when unset."""
    # A missing one-to-one row raises an AttributeError subclass, so getattr covers it.
    settings = getattr(shop, "analytics_settings", None)
    basis = str(getattr(settings, "order_value_basis", "") or "subtotal")
    tags = tuple(getattr(settings, "excluded_order_tags", None) or ())
    return basis, tags


def _backtest_for_shop(
    *,
    shop: Shop,
    as_of: dt.date,
    summary: Summary,
    horizon_days: int,
    basis: str,
    unit: TimeUnit,
    excluded_tags: tuple[str, ...],
) -> dict[str, Any]:
    if not len(summary):
        return {"available": False, "message": "No counted orders yet."}
    history_days = (as_of - summary.first_day.min().item()).days
    holdout_days = min(horizon_days, history_days // 2)
    if holdout_days < MIN_HOLDOUT_DAYS:
        return {
            "available": False,
            "message": f"The backtest needs at least {2 * MIN_HOLDOUT_DAYS} days of orders "
            f"(half to fit, half to check); this shop has {history_days}.",
        }
    calibration_end = as_of - dt.timedelta(days=holdout_days)
    calibration = summary_for_shop(
        shop=shop, as_of=calibration_end, order_value_basis=basis, unit=unit, excluded_tags=excluded_tags
    )
    try:
        fit = bgnbd_fit(x=calibration.x, t_x=calibration.t_x, T=calibration.T)
    except PredictiveError as exc:
        return {"available": False, "message": f"Backtest: {exc}"}
    hold_ids, hold_counts = holdout_purchases_for_shop(
        shop=shop, start=calibration_end, end=as_of, excluded_tags=excluded_tags
    )
    holdout = np.zeros(len(calibration))
    if len(hold_ids):
        pos = np.clip(np.searchsorted(hold_ids, calibration.customer_id), 0, len(hold_ids) - 1)
        match = hold_ids[pos] == calibration.customer_id
        holdout[match] = hold_counts[pos[match]]
    series_start = max(calibration.first_day.min().item(), calibration_end - dt.timedelta(days=MAX_SERIES_DAYS))
    days, counts = repeat_days_for_shop(
        shop=shop, cohort_end=calibration_end, start=series_start, end=as_of, excluded_tags=excluded_tags
    )
    return backtest_compute(
        calibration=calibration,
        holdout_counts=holdout,
        holdout_days=holdout_days,
        repeat_days=days,
        repeat_counts=counts,
        series_start=series_start,
        fit=fit,
    )


@dataclass(frozen=True)
class CustomerPredictions:
    """Every scored customer's figures from one fit, as columns in customer id order."""

    summary: Summary
    predictions: Predictions

    def __len__(self) -> int:
        return len(self.summary)

    def records(self) -> Iterator[tuple[int, int, float, float, float, float, str | None, str | None]]:
        """(customer_id, x, t_x, T, p_alive, expected_purchases, expected_aov, predicted_clv) per
        customer, money as 4-decimal text (the storage scale; rounded to the currency on read)."""
        s, p = self.summary, self.predictions
        n = len(s)
        none: list[str | None] = [None] * n
        aov = [f"{v:.4f}" for v in p.expected_aov.tolist()] if p.expected_aov is not None else none
        clv = [f"{v:.4f}" for v in p.clv.tolist()] if p.clv is not None else none
        return zip(
            s.customer_id.tolist(),
            s.x.astype(np.int64).tolist(),
            s.t_x.tolist(),
            s.T.tolist(),
            p.p_alive.tolist(),
            p.expected_purchases.tolist(),
            aov,
            clv,
            strict=True,
        )


def predictive_block(
    *,
    shop: Shop,
    as_of: dt.date | dt.datetime,
    horizon_days: int = 365,
    discount_rate: float = 0.10,
    include_customers: bool = False,
    rfm_groups: dict[int, str] | None = None,
    order_value_basis: str | None = None,
    excluded_order_tags: tuple[str, ...] | None = None,
    time_unit: TimeUnit = "days",
    include_backtest: bool = True,
    currency: str | None = None,
) -> dict[str, Any]:
    """The report's `predictive` key. Never raises for a shop's data: when the models cannot be
    fitted the block says why (`available: false`, `message`) and carries no numbers.

    With `include_customers`, `customers` lists every scored customer (empty when unavailable).
    Other arguments as `predictive_compute`."""
    block, rows = predictive_compute(
        shop=shop,
        as_of=as_of,
        horizon_days=horizon_days,
        discount_rate=discount_rate,
        rfm_groups=rfm_groups,
        order_value_basis=order_value_basis,
        excluded_order_tags=excluded_order_tags,
        time_unit=time_unit,
        include_backtest=include_backtest,
        currency=currency,
    )
    if include_customers:
        block["customers"] = (
            []
            if rows is None
            else _customer_rows(rows.summary, rows.predictions, currency=block["parameters"]["currency"])
        )
    return block


def predictive_compute(
    *,
    shop: Shop,
    as_of: dt.date | dt.datetime,
    horizon_days: int = 365,
    discount_rate: float = 0.10,
    rfm_groups: dict[int, str] | None = None,
    order_value_basis: str | None = None,
    excluded_order_tags: tuple[str, ...] | None = None,
    time_unit: TimeUnit = "days",
    include_backtest: bool = True,
    currency: str | None = None,
) -> tuple[dict[str, Any], CustomerPredictions | None]:
    """The `predictive` block without per-customer rows, and those rows as columns (None when
    nothing was predicted). Never raises for a shop's data.

    `order_value_basis` and `excluded_order_tags` default to the shop's analytics settings,
    `currency` (whose minor units money is rounded to) to the shop's."""
    as_of_date = _as_date(as_of, shop)
    currency = (shop.currency or "") if currency is None else currency
    setting_basis, setting_tags = _shop_settings(shop)
    order_value_basis = order_value_basis or setting_basis
    excluded_tags = setting_tags if excluded_order_tags is None else tuple(excluded_order_tags)
    unit_days = UNIT_DAYS[time_unit]
    block: dict[str, Any] = {
        "available": False,
        "message": None,
        "spend_available": False,
        "parameters": {
            "as_of": str(as_of_date),
            "horizon_days": horizon_days,
            "discount_rate": discount_rate,
            "time_unit": time_unit,
            "currency": currency,
            "order_value_basis": order_value_basis,
            "excluded_order_tags": excluded_tags_normal(excluded_tags),
            "discounting": (
                f"expected purchases per {DAYS_PER_MONTH:.2f}-day step x expected order value, "
                "discounted by (1 + rate)^(-days/365) at each step's end"
            ),
        },
        "bgnbd": None,
        "gamma_gamma": None,
        "diagnostics": {"bgnbd": None, "gamma_gamma": None, "fit_seconds": None},
        "totals": None,
        "groups": None,
        "backtest": None,
    }
    summary = summary_for_shop(
        shop=shop, as_of=as_of_date, order_value_basis=order_value_basis, unit=time_unit, excluded_tags=excluded_tags
    )
    started = time.perf_counter()
    try:
        bg = bgnbd_fit(x=summary.x, t_x=summary.t_x, T=summary.T)
    except PredictiveError as exc:
        # `error`/`code` match the shape analytics.services uses for its own fallbacks.
        block.update(message=str(exc), error=str(exc), code=exc.code)
        logger.info("predictive fit withheld", extra={"shop": shop.pk, "code": exc.code})
        return block, None
    gg: GammaGammaFit | None = None
    try:
        gg = gamma_gamma_fit(x=summary.x, m=summary.m)
    except PredictiveError as exc:
        # Purchases can still be predicted; the page shows why money figures are missing.
        block.update(message=str(exc), spend_code=exc.code)
    fit_seconds = round(time.perf_counter() - started, 4)
    pred = predictions_compute(
        bg.params,
        gg.params if gg else None,
        x=summary.x,
        t_x=summary.t_x,
        T=summary.T,
        m=summary.m,
        horizon_days=horizon_days,
        discount_rate=discount_rate,
        unit_days=unit_days,
    )
    if not _finite(pred):
        failed = FitFailedError(
            "The fitted models give unusable predictions for this shop (a parameter sits where the "
            "formulas break down); predictions are withheld."
        )
        block.update(message=str(failed), error=str(failed), code=failed.code)
        return block, None
    block["diagnostics"]["fit_seconds"] = fit_seconds
    logger.info(
        "predictive fit",
        extra={"shop": shop.pk, "customers": bg.n_customers, "fit_seconds": fit_seconds, "spend": gg is not None},
    )
    block["available"] = True
    block["spend_available"] = gg is not None
    block["bgnbd"] = bg.params.as_dict()
    block["diagnostics"]["bgnbd"] = _bgnbd_diagnostics(bg)
    if gg is not None:
        block["gamma_gamma"] = gg.params.as_dict()
        block["diagnostics"]["gamma_gamma"] = _gg_diagnostics(gg)
    block["totals"] = _totals(pred, np.arange(len(summary)), currency)
    if rfm_groups is not None:
        labels = np.array([rfm_groups.get(int(c), NOT_IN_RFM) for c in summary.customer_id], dtype=object)
        block["groups"] = {
            str(name): _totals(pred, np.flatnonzero(labels == name), currency) for name in sorted(set(labels.tolist()))
        }
    if include_backtest:
        block["backtest"] = _backtest_for_shop(
            shop=shop,
            as_of=as_of_date,
            summary=summary,
            horizon_days=horizon_days,
            basis=order_value_basis,
            unit=time_unit,
            excluded_tags=excluded_tags,
        )
    return block, CustomerPredictions(summary, pred)
