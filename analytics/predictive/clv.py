"""Per-customer predictions: probability alive, expected purchases, expected order value, CLV.

Discounting (explicit, because CLV figures differ by it): the horizon H days is cut
into n = max(1, round(H / (365/12))) equal steps (months for H = 365). The
expected purchases in step k, E(k·s) - E((k-1)·s) from the BG/NBD conditional
expectation, are valued at the Gamma-Gamma expected order value and discounted
to the as-of date at the end of their step with the annual rate d compounded
continuously in time: factor (1 + d)^(-k·s/365). For H = 365 this is lifetimes'
`customer_lifetime_value` with its monthly rate set to (1 + d)^(1/12) - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.predictive.bgnbd import BgNbdParams, bgnbd_expected_purchases, bgnbd_p_alive
from analytics.predictive.gamma_gamma import GammaGammaParams, gamma_gamma_expected_value
from analytics.predictive.rows import FloatArray, rows_unique, single_threaded_blas

DAYS_PER_MONTH = 365 / 12


@dataclass(frozen=True)
class Predictions:
    p_alive: FloatArray
    expected_purchases: FloatArray
    expected_aov: FloatArray | None  # None when the spend model is not available
    clv: FloatArray | None


def discount_steps(*, horizon_days: float, discount_rate: float) -> tuple[FloatArray, FloatArray]:
    """Step end times (days) and their discount factors."""
    n = max(1, round(horizon_days / DAYS_PER_MONTH))
    ends = horizon_days * np.arange(1, n + 1) / n
    factors = (1.0 + discount_rate) ** (-ends / 365.0)
    return ends, factors


def predictions_compute(
    bg: BgNbdParams,
    gg: GammaGammaParams | None,
    *,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    m: FloatArray,
    horizon_days: float,
    discount_rate: float,
    unit_days: int = 1,
) -> Predictions:
    """Predictions per customer, computed once per distinct (x, t_x, T, m)."""
    with single_threaded_blas():
        return _predictions(
            bg, gg, x=x, t_x=t_x, T=T, m=m, horizon_days=horizon_days, discount_rate=discount_rate, unit_days=unit_days
        )


def _predictions(
    bg: BgNbdParams,
    gg: GammaGammaParams | None,
    *,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    m: FloatArray,
    horizon_days: float,
    discount_rate: float,
    unit_days: int,
) -> Predictions:
    rows = rows_unique(x, t_x, T, m)
    ux, ut_x, uT, um = rows.columns
    inv = rows.inverse
    p_alive = bgnbd_p_alive(bg, x=ux, t_x=ut_x, T=uT)
    ends, factors = discount_steps(horizon_days=horizon_days, discount_rate=discount_rate)
    cumulative = np.stack([bgnbd_expected_purchases(bg, t=end / unit_days, x=ux, t_x=ut_x, T=uT) for end in ends])
    expected = cumulative[-1]
    if gg is None:
        return Predictions(p_alive[inv], expected[inv], None, None)
    per_step = np.diff(cumulative, axis=0, prepend=np.zeros((1, len(ux))))
    aov = gamma_gamma_expected_value(gg, x=ux, m=np.where(ux > 0, um, 0.0))
    clv = aov * np.einsum("k,kn->n", factors, per_step)
    return Predictions(p_alive[inv], expected[inv], aov[inv], clv[inv])
