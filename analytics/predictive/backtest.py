"""Calibration/holdout check, read the way the BG/NBD paper shows it (its Figures 2-4).

Fit on the calibration period, then compare, over the holdout period:
- by calibration frequency x = 0, 1, ..., 6, 7+: the mean number of repeat purchases
  per customer, actual against the model's conditional expectation;
- week by week: cumulative repeat purchases of the calibration cohort, actual
  against Σ over customers of E[X(t - first purchase)] (the unconditional
  expectation, as in the paper's tracking plot), with the calibration end marked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from analytics.predictive.bgnbd import (
    BgNbdFit,
    bgnbd_expected_purchases,
    bgnbd_expected_repeat_unconditional,
    bgnbd_fit,
)
from analytics.predictive.rows import FloatArray
from analytics.predictive.summary import UNIT_DAYS, Summary

BUCKETS = 8  # 0..6 and "7+", as in the paper


def _pct_error(predicted: float, actual: float) -> float | None:
    return None if actual == 0 else round(100.0 * (predicted - actual) / actual, 2)


def backtest_compute(
    *,
    calibration: Summary,
    holdout_counts: FloatArray,
    holdout_days: int,
    repeat_days: np.ndarray,
    repeat_counts: FloatArray,
    series_start: dt.date,
    fit: BgNbdFit | None = None,
) -> dict[str, Any]:
    """The backtest section. `holdout_counts` is aligned with `calibration`'s customers;
    `repeat_days`/`repeat_counts` are the cohort's repeat purchase days per calendar day
    from `series_start` to the end of the holdout."""
    k = UNIT_DAYS[calibration.unit]
    if fit is None:
        fit = bgnbd_fit(x=calibration.x, t_x=calibration.t_x, T=calibration.T)
    params = fit.params
    predicted = bgnbd_expected_purchases(
        params, t=holdout_days / k, x=calibration.x, t_x=calibration.t_x, T=calibration.T
    )
    bucket = np.minimum(calibration.x, BUCKETS - 1).astype(np.intp)
    n = np.bincount(bucket, minlength=BUCKETS)
    actual_sum = np.bincount(bucket, weights=holdout_counts, minlength=BUCKETS)
    predicted_sum = np.bincount(bucket, weights=predicted, minlength=BUCKETS)
    by_frequency = []
    for i in range(BUCKETS):
        label = f"{i}+" if i == BUCKETS - 1 else str(i)
        by_frequency.append(
            {
                "frequency": label,
                "customers": int(n[i]),
                "actual_mean": round(float(actual_sum[i] / n[i]), 4) if n[i] else None,
                "predicted_mean": round(float(predicted_sum[i] / n[i]), 4) if n[i] else None,
            }
        )

    # Weekly tracking: the cohort's cumulative repeat purchases from series_start.
    calibration_end = calibration.last_observed + dt.timedelta(days=1)
    end = calibration_end + dt.timedelta(days=holdout_days)
    start64 = np.datetime64(series_start, "D")
    first = calibration.first_day.astype(np.int64)
    first_days, first_n = np.unique(first, return_counts=True)
    total_days = (end - series_start).days
    week_ends = np.arange(7, total_days + 7, 7)
    week_ends[-1] = min(week_ends[-1], total_days)
    week_ends = np.unique(week_ends)
    s0 = start64.astype(np.int64)
    # Age (days) of each first-purchase day at each week end and at the series start.
    span = int(s0 + total_days - first_days.min()) + 1
    grid = bgnbd_expected_repeat_unconditional(params, t=np.arange(span, dtype=np.float64) / k)
    age_end = np.clip(s0 + week_ends[:, None] - first_days[None, :], 0, span - 1)
    age_start = np.clip(s0 - first_days, 0, span - 1)
    pred_cum = (grid[age_end] - grid[age_start][None, :]) @ first_n
    rd = np.asarray(repeat_days, dtype="datetime64[D]").astype(np.int64) - s0
    daily = np.zeros(total_days)
    inside = (rd >= 0) & (rd < total_days)
    np.add.at(daily, rd[inside], np.asarray(repeat_counts)[inside])
    actual_cum = np.cumsum(daily)[week_ends - 1]
    weekly = [
        {
            "week_end": str(series_start + dt.timedelta(days=int(we))),
            "actual_cumulative": int(a),
            "predicted_cumulative": round(float(p), 2),
        }
        for we, a, p in zip(week_ends, actual_cum, pred_cum, strict=True)
    ]
    actual_total = float(holdout_counts.sum())
    predicted_total = float(predicted.sum())
    return {
        "available": True,
        "message": None,
        "calibration_end": str(calibration_end),
        "holdout_end": str(end),
        "holdout_days": holdout_days,
        "parameters": params.as_dict(),
        "customers": int(len(calibration)),
        "holdout_repeat_purchases": {
            "actual": int(actual_total),
            "predicted": round(predicted_total, 2),
            "error_pct": _pct_error(predicted_total, actual_total),
        },
        "by_frequency": by_frequency,
        "weekly": weekly,
    }
