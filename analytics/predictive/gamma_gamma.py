"""Gamma-Gamma spend model (Fader and Hardie, "The Gamma-Gamma Model of Monetary Value", 2013).

Each transaction's value is Gamma(p, ν), and ν varies across customers as
Gamma(q, γ). For a customer with x repeat transactions of mean value m the
likelihood of m (the note's eq. 1) is

    Γ(px+q) / (Γ(px) Γ(q)) · γ^q x^(px) m^(px-1) / (γ + x m)^(px+q)

fitted, like the papers and lifetimes, on customers with x >= 1 and the mean of
their repeat transactions (the first purchase left out). Money is rescaled by
its mean before fitting (a density's change of scale adds a constant only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from analytics.predictive.errors import FitFailedError, InsufficientDataError
from analytics.predictive.rows import FloatArray, dot, rows_unique, single_threaded_blas

MIN_REPEATERS = 10
LOG_BOUND = 18.0


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}


@dataclass(frozen=True)
class GammaGammaFit:
    params: GammaGammaParams
    log_likelihood: float
    converged: bool
    iterations: int
    n_customers: int
    n_distinct_rows: int


class _Data:
    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        self.total_w = float(w.sum())
        self.x = x
        self.m = m
        self.w = w
        self.log_m = np.log(m)
        self.ux, self.inv = np.unique(x, return_inverse=True)
        self.Wx = np.bincount(self.inv, weights=w, minlength=len(self.ux))
        self.sum_w_log_m = dot(w, self.log_m)
        self.sum_wx_log_m = dot(w * x, self.log_m)
        self.wx = w * x
        self.xm = x * m


def _loglik_and_grad(theta: FloatArray, d: _Data) -> tuple[float, FloatArray]:
    p, q, g = theta
    ux = d.ux
    pux = p * ux
    ll = dot(d.Wx, gammaln(pux + q) - gammaln(pux) + pux * np.log(ux))
    ll += d.total_w * (q * np.log(g) - gammaln(q))
    ll += p * d.sum_wx_log_m - d.sum_w_log_m
    pxq = p * d.x + q
    l_den = np.log(g + d.xm)
    ll -= dot(d.w, pxq * l_den)

    psi_pxq = digamma(pux + q)
    dp = dot(d.Wx, ux * (psi_pxq - digamma(pux) + np.log(ux))) + d.sum_wx_log_m - dot(d.wx, l_den)
    dq = dot(d.Wx, psi_pxq) + d.total_w * (np.log(g) - digamma(q)) - dot(d.w, l_den)
    dg = d.total_w * q / g - dot(d.w, pxq / (g + d.xm))
    return ll, np.array([dp, dq, dg])


def gamma_gamma_loglik(
    params: GammaGammaParams, *, x: FloatArray, m: FloatArray, weights: FloatArray | None = None
) -> tuple[float, FloatArray]:
    """Total log-likelihood and gradient in (p, q, gamma) over customers with x >= 1."""
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    d = _Data(np.asarray(x, float), np.asarray(m, float), w)
    return _loglik_and_grad(np.array([params.p, params.q, params.gamma]), d)


def gamma_gamma_fit(*, x: FloatArray, m: FloatArray, weights: FloatArray | None = None) -> GammaGammaFit:
    """Fit on repeat buyers (x >= 1) with a positive mean repeat value; others are skipped."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    w_in = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (x >= 1) & (m > 0)
    rows = rows_unique(x[keep], m[keep], weights=w_in[keep])
    ux, um = rows.columns
    w = rows.weights
    n = float(w.sum())
    if n < MIN_REPEATERS:
        raise InsufficientDataError(
            f"Spend predictions need at least {MIN_REPEATERS} customers with a paid repeat order; "
            f"this shop has {n:.0f}."
        )
    scale = dot(w, um) / n
    d = _Data(ux, um / scale, w)

    def objective(phi: FloatArray) -> tuple[float, FloatArray]:
        theta = np.exp(phi)
        ll, grad = _loglik_and_grad(theta, d)
        return -ll / n, -(grad * theta) / n

    with single_threaded_blas():
        res = minimize(
            objective,
            x0=np.zeros(3),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 3,
            options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000},
        )
    theta = np.exp(res.x)
    if not np.all(np.isfinite(theta)) or not np.isfinite(res.fun) or np.any(np.abs(res.x) >= LOG_BOUND - 1e-6):
        raise FitFailedError("The spend model could not be fitted to this shop's repeat orders.")
    params = GammaGammaParams(p=float(theta[0]), q=float(theta[1]), gamma=float(theta[2] * scale))
    if params.q <= 1.0:
        raise FitFailedError(
            "Repeat order values vary too much for the spend model (q <= 1 gives no finite average); "
            "expected order values are withheld."
        )
    # Undo the rescaling: each density picks up 1/scale.
    ll = -res.fun * n - n * np.log(scale)
    return GammaGammaFit(
        params=params,
        log_likelihood=float(ll),
        converged=bool(res.success),
        iterations=int(res.nit),
        n_customers=round(n),
        n_distinct_rows=len(ux),
    )


def gamma_gamma_expected_value(params: GammaGammaParams, *, x: FloatArray, m: FloatArray) -> FloatArray:
    """E[average order value | x, m] (the note's eq. 5); the population mean pγ/(q-1) when x = 0."""
    p, q, g = params.p, params.q, params.gamma
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    return np.asarray((p * (g + x * m)) / (p * x + q - 1.0), dtype=np.float64)
