"""BG/NBD repeat-purchase model (Fader, Hardie and Lee 2005), fitted by maximum likelihood.

Per customer the data are x (repeat purchases), t_x (time of the last purchase,
measured from the first) and T (time from the first purchase to the end of
observation). The log-likelihood (paper, eq. 6) is

    LL = ln Γ(r+x) - ln Γ(r) + r ln α
         + ln B(a, b+x) - ln B(a, b)  [written with ln Γ]
         + ln( (α+T)^-(r+x) + [x>0] a/(b+x-1) (α+t_x)^-(r+x) )

The ln Γ terms depend on x alone, so they are computed once per distinct x; the
last term needs only logs per row. Parameters are fitted on the log scale with
L-BFGS-B and the exact gradient below (tests check it against finite
differences). Time is rescaled by its mean before fitting: the likelihood in
rescaled time differs from the original by the constant -Σ x ln c, so the
optimum is the same and the optimiser sees parameters near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from analytics.predictive.errors import FitFailedError, InsufficientDataError
from analytics.predictive.rows import FloatArray, dot, rows_unique, single_threaded_blas

# Below these a fit is noise; the page says so instead of showing numbers.
MIN_CUSTOMERS = 30
MIN_REPEATERS = 10
# log-parameter box: wide enough for any shop, narrow enough that exp() stays finite.
LOG_BOUND = 18.0


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class BgNbdFit:
    params: BgNbdParams
    log_likelihood: float
    converged: bool
    iterations: int
    n_customers: int
    n_repeaters: int
    n_distinct_rows: int


class _Data:
    """Distinct summary rows split into repeaters and one-time buyers, with per-x group sums.

    Whole-day summaries repeat the same T and t_x values across rows, so logs are taken
    over the distinct values and gathered (a gather is cheaper than a log)."""

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> None:
        self.total_w = float(w.sum())
        pos = x > 0
        self.x = x[pos]
        self.w_pos = w[pos]
        self.T_tab, self.T_idx = np.unique(T[pos], return_inverse=True)
        self.tx_tab, self.tx_idx = np.unique(t_x[pos], return_inverse=True)
        self.T_zero = T[~pos]
        self.w_zero = w[~pos]
        self.ux, inv = np.unique(x, return_inverse=True)
        self.Wx = np.bincount(inv, weights=w, minlength=len(self.ux))
        self.ux_pos, self.inv_pos = np.unique(self.x, return_inverse=True)
        # Terms without the per-row mixing share s only need sums per distinct T.
        self.W_T = np.bincount(self.T_idx, weights=self.w_pos, minlength=len(self.T_tab))
        self.WX_T = np.bincount(self.T_idx, weights=self.w_pos * self.x, minlength=len(self.T_tab))


def _loglik_and_grad(theta: FloatArray, d: _Data) -> tuple[float, FloatArray]:
    r, alpha, a, b = theta
    ux = d.ux
    lg = gammaln(r + ux) - gammaln(r) + gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux)
    ll = dot(d.Wx, lg) + r * np.log(alpha) * d.total_w
    dr = dot(d.Wx, digamma(r + ux) - digamma(r)) + np.log(alpha) * d.total_w
    dalpha = r / alpha * d.total_w
    psi_ab = digamma(a + b)
    da = dot(d.Wx, psi_ab - digamma(a + b + ux))
    db = dot(d.Wx, psi_ab + digamma(b + ux) - digamma(b) - digamma(a + b + ux))

    # One-time buyers: the last term is -r ln(α+T).
    if len(d.T_zero):
        l_zero = np.log(alpha + d.T_zero)
        ll -= r * dot(d.w_zero, l_zero)
        dr -= dot(d.w_zero, l_zero)
        dalpha -= r * dot(d.w_zero, 1.0 / (alpha + d.T_zero))

    if len(d.x):
        # ln(e^A3 + e^A4) = A3 + softplus(A4 - A3), with A3 = -(r+x) ln(α+T) and
        # A4 - A3 = ln a - ln(b+x-1) + (r+x) (ln(α+T) - ln(α+t_x)) >= ln(a/(b+x-1)),
        # bounded below, so s = expit(A4 - A3) never underflows and softplus = diff - ln s.
        lT_tab = np.log(alpha + d.T_tab)
        iT_tab = 1.0 / (alpha + d.T_tab)
        rx = r + d.x
        dl = lT_tab[d.T_idx] - np.log(alpha + d.tx_tab)[d.tx_idx]
        inv_b = 1.0 / (b + d.ux_pos - 1.0)
        diff = np.log(a * inv_b)[d.inv_pos] + rx * dl
        s = expit(diff)  # share of the "dropped out after t_x" branch
        w = d.w_pos
        ws = w * s
        lT_w = dot(d.W_T, lT_tab)
        iT_w = dot(d.W_T, iT_tab)
        ll += dot(w, diff - np.log(s)) - r * lT_w - dot(d.WX_T, lT_tab)
        dr -= lT_w - dot(ws, dl)
        d_inv = (1.0 / (alpha + d.tx_tab))[d.tx_idx] - iT_tab[d.T_idx]
        dalpha -= r * iT_w + dot(d.WX_T, iT_tab) + float(np.einsum("i,i,i->", ws, rx, d_inv))
        da += float(ws.sum()) / a
        db -= dot(np.bincount(d.inv_pos, weights=ws, minlength=len(inv_b)), inv_b)
    return ll, np.array([dr, dalpha, da, db])


def bgnbd_loglik(
    params: BgNbdParams, *, x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray | None = None
) -> tuple[float, FloatArray]:
    """Total log-likelihood and its gradient in (r, alpha, a, b), in the data's own time unit."""
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    d = _Data(np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float), w)
    return _loglik_and_grad(np.array([params.r, params.alpha, params.a, params.b]), d)


def bgnbd_fit(*, x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray | None = None) -> BgNbdFit:
    """Maximum-likelihood BG/NBD parameters; raises InsufficientDataError or FitFailedError."""
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if len(x) and (np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T) or np.any((x == 0) & (t_x != 0))):
        raise ValueError("summary rows need x >= 0 and 0 <= t_x <= T, with t_x = 0 when x = 0")
    rows = rows_unique(x, t_x, T, weights=weights)
    ux, ut_x, uT = rows.columns
    w = rows.weights
    n_customers = float(w.sum())
    n_repeaters = float(w[ux > 0].sum())
    if n_customers < MIN_CUSTOMERS or n_repeaters < MIN_REPEATERS:
        raise InsufficientDataError(
            f"Predictions need at least {MIN_CUSTOMERS} customers and {MIN_REPEATERS} who bought again; "
            f"this shop has {n_customers:.0f} customers and {n_repeaters:.0f} repeat buyers so far."
        )
    scale = dot(w, uT) / n_customers
    if scale <= 0:
        raise InsufficientDataError("All customers bought for the first time on the last day observed.")
    d = _Data(ux, ut_x / scale, uT / scale, w)

    def objective(phi: FloatArray) -> tuple[float, FloatArray]:
        theta = np.exp(phi)
        ll, grad = _loglik_and_grad(theta, d)
        return -ll / n_customers, -(grad * theta) / n_customers

    with single_threaded_blas():
        res = minimize(
            objective,
            x0=np.zeros(4),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
            options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000},
        )
    theta = np.exp(res.x)
    if not np.all(np.isfinite(theta)) or not np.isfinite(res.fun):
        raise FitFailedError("The repeat-purchase model could not be fitted to this shop's orders.")
    if np.any(np.abs(res.x) >= LOG_BOUND - 1e-6):
        raise FitFailedError(
            "This shop's repeat buying does not fit the BG/NBD model (a parameter ran to its limit); "
            "predictions are withheld rather than shown wrong."
        )
    params = BgNbdParams(r=float(theta[0]), alpha=float(theta[1] * scale), a=float(theta[2]), b=float(theta[3]))
    ll_scaled = -res.fun * n_customers
    ll = ll_scaled - dot(w, ux) * np.log(scale)
    return BgNbdFit(
        params=params,
        log_likelihood=float(ll),
        converged=bool(res.success),
        iterations=int(res.nit),
        n_customers=round(n_customers),
        n_repeaters=round(n_repeaters),
        n_distinct_rows=len(ux),
    )


def bgnbd_p_alive(params: BgNbdParams, *, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """P(still active at T | x, t_x, T) (paper, eq. 11); 1 for customers with no repeat purchase."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    log_odds = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1.0) - 1.0))
    return np.where(x == 0, 1.0, expit(-log_odds))


def _ln_hyp2f1(a: FloatArray, b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    """ln 2F1 with Euler's transformation where the direct series overflows."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        direct = np.log(hyp2f1(a, b, c, z))
        bad = ~np.isfinite(direct)
        if np.any(bad):
            ab, bb, cb, zb = (np.broadcast_to(v, direct.shape)[bad] for v in (a, b, c, z))
            direct[bad] = np.log(hyp2f1(cb - ab, cb - bb, cb, zb)) + (cb - ab - bb) * np.log1p(-zb)
    return direct


def bgnbd_expected_purchases(
    params: BgNbdParams, *, t: float | FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """E[purchases in (T, T+t] | x, t_x, T] (paper, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    z = t / (alpha + T + t)
    ln_h = _ln_hyp2f1(np.asarray(r + x), np.asarray(b + x), np.asarray(a + b + x - 1.0), np.asarray(z))
    bracket = -np.expm1(ln_h + (r + x) * np.log((alpha + T) / (alpha + T + t)))
    numerator = (a + b + x - 1.0) / (a - 1.0) * bracket
    denominator = 1.0 + (x > 0) * (a / (b + np.maximum(x, 1.0) - 1.0)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return np.asarray(numerator / denominator, dtype=np.float64)


def bgnbd_expected_repeat_unconditional(params: BgNbdParams, *, t: FloatArray) -> FloatArray:
    """E[X(t)]: expected repeat purchases in t after a customer's first purchase (paper, eq. 9)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    shape = t.shape
    z = t / (alpha + t)
    n = len(t.ravel())
    ln_h = _ln_hyp2f1(np.full(n, r), np.full(n, b), np.full(n, a + b - 1.0), z.ravel()).reshape(shape)
    bracket = -np.expm1(ln_h + r * np.log(alpha / (alpha + t)))
    return np.asarray((a + b - 1.0) / (a - 1.0) * bracket, dtype=np.float64)
