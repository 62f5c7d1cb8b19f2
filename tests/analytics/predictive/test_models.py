"""Likelihoods, gradients, weights and parameter recovery for the two models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.predictive.bgnbd import BgNbdParams, bgnbd_fit, bgnbd_loglik
from analytics.predictive.errors import InsufficientDataError
from analytics.predictive.gamma_gamma import (
    GammaGammaParams,
    gamma_gamma_expected_value,
    gamma_gamma_fit,
    gamma_gamma_loglik,
)
from analytics.predictive.rows import rows_unique
from analytics.predictive.simulate import bgnbd_simulate, gamma_gamma_simulate
from tests.analytics.predictive.cdnow import cdnow_summary

CDNOW = cdnow_summary()


def bgnbd_ll_by_hand(p: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """Fader, Hardie and Lee (2005) eq. 6 for one customer, with math.lgamma only."""
    r, alpha, a, b = p.r, p.alpha, p.a, p.b

    def lbeta(u: float, v: float) -> float:
        return math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)

    common = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
    first = math.exp(lbeta(a, b + x) - lbeta(a, b) - (r + x) * math.log(alpha + T))
    second = math.exp(lbeta(a + 1, b + x - 1) - lbeta(a, b) - (r + x) * math.log(alpha + t_x)) if x > 0 else 0.0
    return common + math.log(first + second)


def gg_ll_by_hand(p: GammaGammaParams, x: int, m: float) -> float:
    """Fader and Hardie (2013) eq. 1: the density of the mean of x Gamma(p, ν) values, ν ~ Gamma(q, γ)."""
    px = p.p * x
    return (
        math.lgamma(px + p.q)
        - math.lgamma(px)
        - math.lgamma(p.q)
        + p.q * math.log(p.gamma)
        + (px - 1) * math.log(m)
        + px * math.log(x)
        - (px + p.q) * math.log(p.gamma + m * x)
    )


def test_bgnbd_loglik_matches_the_formula_customer_by_customer() -> None:
    p = BgNbdParams(r=0.5, alpha=3.0, a=0.9, b=2.0)
    rows = [(0, 0.0, 30.0), (1, 10.0, 30.0), (5, 29.0, 30.0), (2, 4.5, 12.25)]
    total = sum(bgnbd_ll_by_hand(p, *row) for row in rows)
    x, t_x, T = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    ll, _ = bgnbd_loglik(p, x=x, t_x=t_x, T=T)
    assert ll == pytest.approx(total, rel=1e-12)


def test_gamma_gamma_loglik_matches_the_formula() -> None:
    p = GammaGammaParams(p=6.0, q=3.5, gamma=15.0)
    rows = [(1, 20.0), (3, 35.5), (10, 11.25)]
    total = sum(gg_ll_by_hand(p, *row) for row in rows)
    x, m = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    ll, _ = gamma_gamma_loglik(p, x=x, m=m)
    assert ll == pytest.approx(total, rel=1e-12)


def central_difference(f, theta: np.ndarray, rel: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    grad = np.zeros_like(theta)
    for i in range(len(theta)):
        h = rel * theta[i]
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


@settings(max_examples=25, deadline=None)
@given(
    r=st.floats(0.05, 5.0),
    alpha=st.floats(0.5, 50.0),
    a=st.floats(0.1, 5.0),
    b=st.floats(0.1, 10.0),
)
def test_bgnbd_gradient_matches_finite_differences(r: float, alpha: float, a: float, b: float) -> None:
    weights = np.arange(len(CDNOW)) % 3 + 1.0  # weights enter the gradient too

    def ll(theta: np.ndarray) -> float:
        return bgnbd_loglik(BgNbdParams(*theta), x=CDNOW.x, t_x=CDNOW.t_x, T=CDNOW.T, weights=weights)[0]

    theta = np.array([r, alpha, a, b])
    _, grad = bgnbd_loglik(BgNbdParams(*theta), x=CDNOW.x, t_x=CDNOW.t_x, T=CDNOW.T, weights=weights)
    numeric = central_difference(ll, theta)
    np.testing.assert_allclose(grad, numeric, rtol=2e-5, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.5, 20.0), q=st.floats(0.5, 20.0), gamma=st.floats(0.5, 100.0))
def test_gamma_gamma_gradient_matches_finite_differences(p: float, q: float, gamma: float) -> None:
    keep = CDNOW.x > 0
    x, m = CDNOW.x[keep], CDNOW.m[keep]

    def ll(theta: np.ndarray) -> float:
        return gamma_gamma_loglik(GammaGammaParams(*theta), x=x, m=m)[0]

    theta = np.array([p, q, gamma])
    _, grad = gamma_gamma_loglik(GammaGammaParams(*theta), x=x, m=m)
    np.testing.assert_allclose(grad, central_difference(ll, theta), rtol=2e-5, atol=1e-3)


def test_rows_unique_weights_and_inverse() -> None:
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    T = np.array([5.0, 3.0, 5.0, 4.0, 3.0])
    rows = rows_unique(x, T, weights=np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    ux, uT = rows.columns
    assert [(a, b) for a, b in zip(ux, uT, strict=True)] == [(0.0, 3.0), (1.0, 4.0), (1.0, 5.0)]
    assert rows.weights.tolist() == [7.0, 4.0, 4.0]
    assert rows.inverse.tolist() == [2, 0, 2, 1, 0]


def test_fitting_distinct_rows_with_weights_equals_fitting_every_customer() -> None:
    # Whole days: many customers share a row, and the compressed fit must not notice.
    rng = np.random.default_rng(7)
    T = rng.integers(0, 200, 4000).astype(float)
    x, t_x = bgnbd_simulate(BgNbdParams(0.5, 20.0, 0.8, 2.5), T=T, rng=rng)
    t_x = np.floor(t_x)
    rows = rows_unique(x, t_x, T)
    assert len(rows.weights) < 0.6 * len(x)
    compressed = bgnbd_fit(x=rows.columns[0], t_x=rows.columns[1], T=rows.columns[2], weights=rows.weights)
    expanded = bgnbd_fit(x=x, t_x=t_x, T=T)
    for name, value in expanded.params.as_dict().items():
        assert compressed.params.as_dict()[name] == pytest.approx(value, rel=1e-6)
    assert compressed.log_likelihood == pytest.approx(expanded.log_likelihood, rel=1e-9)


def numeric_hessian(grad, phi: np.ndarray, h: float = 1e-5) -> np.ndarray:  # type: ignore[no-untyped-def]
    k = len(phi)
    hess = np.zeros((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        hess[i] = (grad(phi + e) - grad(phi - e)) / (2 * h)
    return (hess + hess.T) / 2


CASES = [
    (BgNbdParams(0.243, 4.414, 0.793, 2.426), GammaGammaParams(6.25, 3.74, 15.44), 11),
    (BgNbdParams(1.5, 20.0, 0.4, 4.0), GammaGammaParams(2.0, 5.0, 40.0), 12),
    (BgNbdParams(0.5, 2.0, 1.5, 8.0), GammaGammaParams(10.0, 2.5, 5.0), 13),
]


@pytest.mark.parametrize(("bg_true", "gg_true", "seed"), CASES)
def test_parameters_recovered_from_simulated_customers(
    bg_true: BgNbdParams, gg_true: GammaGammaParams, seed: int
) -> None:
    """Each fitted log-parameter lies within 4 standard errors (from the observed information) of the truth."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(20, 80, 20000)
    x, t_x = bgnbd_simulate(bg_true, T=T, rng=rng)
    m = gamma_gamma_simulate(gg_true, x=x, rng=rng)

    bg = bgnbd_fit(x=x, t_x=t_x, T=T)
    phi = np.log(list(bg.params.as_dict().values()))

    def bg_grad(v: np.ndarray) -> np.ndarray:
        theta = np.exp(v)
        return bgnbd_loglik(BgNbdParams(*theta), x=x, t_x=t_x, T=T)[1] * theta

    se = np.sqrt(np.diag(np.linalg.inv(-numeric_hessian(bg_grad, phi))))
    z = (phi - np.log(list(bg_true.as_dict().values()))) / se
    assert np.all(np.abs(z) < 4), z

    gg = gamma_gamma_fit(x=x, m=m)
    keep = x > 0
    psi = np.log(list(gg.params.as_dict().values()))

    def gg_grad(v: np.ndarray) -> np.ndarray:
        theta = np.exp(v)
        return gamma_gamma_loglik(GammaGammaParams(*theta), x=x[keep], m=m[keep])[1] * theta

    se = np.sqrt(np.diag(np.linalg.inv(-numeric_hessian(gg_grad, psi))))
    z = (psi - np.log(list(gg_true.as_dict().values()))) / se
    assert np.all(np.abs(z) < 4), z
    # And the spend model's population mean pγ/(q-1) within 5%.
    population = gamma_gamma_expected_value(gg.params, x=np.zeros(1), m=np.zeros(1))[0]
    assert population == pytest.approx(gg_true.p * gg_true.gamma / (gg_true.q - 1), rel=0.05)


def test_too_little_repeat_data_is_a_typed_error_with_a_message() -> None:
    T = np.full(500, 30.0)
    x = np.zeros(500)
    x[:4] = 1
    t_x = np.where(x > 0, 10.0, 0.0)
    with pytest.raises(InsufficientDataError, match="4 repeat buyers"):
        bgnbd_fit(x=x, t_x=t_x, T=T)
    with pytest.raises(InsufficientDataError, match="has 4"):
        gamma_gamma_fit(x=x, m=np.where(x > 0, 20.0, 0.0))
    with pytest.raises(InsufficientDataError, match="12 customers"):
        bgnbd_fit(x=np.ones(12), t_x=np.ones(12), T=np.full(12, 2.0))


def test_inconsistent_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="t_x <= T"):
        bgnbd_fit(x=np.array([1.0]), t_x=np.array([5.0]), T=np.array([4.0]))
