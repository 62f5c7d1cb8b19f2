"""Draw customer summaries from the models' own generative stories (tests and the benchmark).

BG/NBD: λ ~ Gamma(r, rate α), p ~ Beta(a, b); repeat purchases arrive as a Poisson
process with rate λ, and after each repeat purchase the customer drops out with
probability p. Gamma-Gamma: ν ~ Gamma(q, rate γ); each transaction's value is
Gamma(p, rate ν), so the mean of x of them is Gamma(p x, rate x ν).
"""

from __future__ import annotations

import numpy as np

from analytics.predictive.bgnbd import BgNbdParams
from analytics.predictive.gamma_gamma import GammaGammaParams
from analytics.predictive.rows import FloatArray


def bgnbd_simulate(params: BgNbdParams, *, T: FloatArray, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """x and t_x for customers observed for T each (vectorised over customers)."""
    T = np.asarray(T, dtype=np.float64)
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    p = rng.beta(params.a, params.b, size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.flatnonzero(lam > 0)
    while len(active):
        now[active] += rng.exponential(1.0, size=len(active)) / lam[active]
        in_window = now[active] <= T[active]
        active = active[in_window]
        x[active] += 1
        t_x[active] = now[active]
        survives = rng.random(len(active)) >= p[active]
        active = active[survives]
    return x, t_x


def gamma_gamma_simulate(params: GammaGammaParams, *, x: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Mean repeat transaction value for customers with x repeat transactions (0 where x = 0)."""
    x = np.asarray(x, dtype=np.float64)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=len(x))
    shape = np.where(x > 0, params.p * x, 1.0)
    total = rng.gamma(shape, 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1.0), 0.0)
