"""The published CDNOW results, reproduced from the raw transactions."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.predictive.backtest import backtest_compute
from analytics.predictive.bgnbd import (
    BgNbdParams,
    bgnbd_expected_purchases,
    bgnbd_expected_repeat_unconditional,
    bgnbd_fit,
    bgnbd_p_alive,
)
from analytics.predictive.clv import predictions_compute
from analytics.predictive.gamma_gamma import GammaGammaParams, gamma_gamma_expected_value, gamma_gamma_fit
from tests.analytics.predictive.cdnow import (
    CALIBRATION_LAST_DAY,
    HOLDOUT_LAST_DAY,
    cdnow_published_summary,
    cdnow_summary,
    cdnow_transactions,
)

# Fader, Hardie and Lee (2005), Table/text: r, alpha, a, b and LL = -9582.4.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
# Fader and Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}

# lifetimes 0.11.3 (BetaGeoFitter / GammaGammaFitter) on the published summary, for
# rows 1, 2, 3, 10, 157 and 1516 of the CSV: independent reference values.
LIFETIMES_BGNBD = BgNbdParams(r=0.24259292827982182, alpha=4.413532265271819, a=0.7928859664406882, b=2.42575238262586)
LIFETIMES_GG = GammaGammaParams(p=6.248802496075312, q=3.744588460923114, gamma=15.44774806492914)
ROWS = [0, 1, 2, 9, 156, 1515]
LT_EXPECTED_39W = [1.225910424174, 0.203250624256, 0.194780857939, 0.194780857939, 20.053665319497, 20.750570498764]
LT_P_ALIVE = [0.726609136799, 0.212227388072, 1.0, 1.0, 0.969133594004, 0.968919715969]
LT_AOV = [24.658616189236, 18.911479869929, 35.171002152507, 35.171002152507, 26.392947663531, 39.890277230162]
# customer_lifetime_value(time=12 months, discount_rate=0.01 monthly, freq="W").
LT_CLV = [36.278495763625, 4.63746632857, 8.34409312181, 8.34409312181, 625.35003370896, 972.125563423355]
LT_UNCONDITIONAL = {1.0: 0.053184736896, 10.0: 0.431760989523, 39.0: 1.195016228446, 78.0: 1.857971703528}


def within(value: float, expected: float, rel: float) -> bool:
    return abs(value - expected) <= rel * abs(expected)


def test_summary_from_raw_transactions_matches_the_published_summary() -> None:
    ours = cdnow_summary()
    pub = cdnow_published_summary()
    assert len(ours) == 2357
    assert np.array_equal(ours.customer_id, pub["ID"].astype(np.int64))
    assert np.array_equal(ours.x, pub["x"])
    # The CSV rounds weeks and dollars to 2 decimals.
    assert np.abs(ours.t_x - pub["t_x"]).max() <= 0.005 + 1e-9
    assert np.abs(ours.T - pub["T"]).max() <= 0.005 + 1e-9
    assert np.abs(ours.m - pub["zbar"]).max() <= 0.005 + 1e-9
    # Customer 1 (master id 4): Jan 1, Jan 18, Aug 2 in calibration; repeat values 29.73 and 14.96.
    assert (ours.x[0], ours.t_x[0] * 7, ours.T[0] * 7) == (2, 213, 272)
    assert ours.m[0] == pytest.approx((29.73 + 14.96) / 2)


def test_bgnbd_fit_matches_published_parameters() -> None:
    s = cdnow_summary()
    fit = bgnbd_fit(x=s.x, t_x=s.t_x, T=s.T)
    got = fit.params.as_dict()
    for name, expected in PUBLISHED_BGNBD.items():
        assert within(got[name], expected, 0.01), (name, got[name], expected)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert fit.converged
    assert (fit.n_customers, fit.n_repeaters) == (2357, 946)


def test_gamma_gamma_fit_matches_published_parameters() -> None:
    s = cdnow_summary()
    fit = gamma_gamma_fit(x=s.x, m=s.m)
    got = fit.params.as_dict()
    for name, expected in PUBLISHED_GG.items():
        assert within(got[name], expected, 0.01), (name, got[name], expected)
    assert fit.n_customers == 946  # repeaters only: the first purchase's value is left out


def test_fits_on_published_summary_match_lifetimes() -> None:
    pub = cdnow_published_summary()
    bg = bgnbd_fit(x=pub["x"], t_x=pub["t_x"], T=pub["T"]).params
    gg = gamma_gamma_fit(x=pub["x"], m=pub["zbar"]).params
    for ours, ref in ((bg.as_dict(), LIFETIMES_BGNBD.as_dict()), (gg.as_dict(), LIFETIMES_GG.as_dict())):
        for name in ref:
            assert within(ours[name], ref[name], 1e-5), (name, ours[name], ref[name])


def test_predictions_match_lifetimes() -> None:
    pub = cdnow_published_summary()[ROWS]
    x, t_x, T, m = pub["x"], pub["t_x"], pub["T"], pub["zbar"]
    bg, gg = LIFETIMES_BGNBD, LIFETIMES_GG
    np.testing.assert_allclose(bgnbd_expected_purchases(bg, t=39, x=x, t_x=t_x, T=T), LT_EXPECTED_39W, rtol=1e-9)
    np.testing.assert_allclose(bgnbd_p_alive(bg, x=x, t_x=t_x, T=T), LT_P_ALIVE, rtol=1e-9)
    np.testing.assert_allclose(gamma_gamma_expected_value(gg, x=x, m=m), LT_AOV, rtol=1e-9)
    times = np.array(list(LT_UNCONDITIONAL))
    np.testing.assert_allclose(
        bgnbd_expected_repeat_unconditional(bg, t=times), list(LT_UNCONDITIONAL.values()), rtol=1e-9
    )
    # lifetimes: 12 steps of 4.345 weeks, each discounted by 1.01^-k. Ours: an annual rate
    # compounded over step_days/365; this rate makes one step's factor exactly 1/1.01.
    step_days = 4.345 * 7
    annual = 1.01 ** (365 / step_days) - 1
    pred = predictions_compute(
        bg, gg, x=x, t_x=t_x, T=T, m=m, horizon_days=12 * step_days, discount_rate=annual, unit_days=7
    )
    assert pred.clv is not None
    np.testing.assert_allclose(pred.clv, LT_CLV, rtol=1e-9)


def test_backtest_on_cdnow() -> None:
    ids, days, _ = cdnow_transactions()
    calibration = cdnow_summary()
    # Holdout purchases counted straight from the raw rows: distinct (customer, day) after the calibration.
    late = days > np.datetime64(CALIBRATION_LAST_DAY)
    pairs = np.unique(np.stack([ids[late], days[late].astype(np.int64)]), axis=1)
    holdout = np.bincount(pairs[0], minlength=2358)[calibration.customer_id].astype(float)
    assert holdout.sum() == 1882
    # Repeat purchase days per calendar day for the whole cohort.
    all_pairs = np.unique(np.stack([ids, days.astype(np.int64)]), axis=1)
    first = {int(c): int(d) for c, d in zip(*all_pairs[:, ::-1], strict=True)}  # last write wins: the first day
    repeat = np.array([d for c, d in all_pairs.T if d > first[int(c)]], dtype="datetime64[D]")
    rdays, rcounts = np.unique(repeat, return_counts=True)
    bt = backtest_compute(
        calibration=calibration,
        holdout_counts=holdout,
        holdout_days=(HOLDOUT_LAST_DAY - CALIBRATION_LAST_DAY).days,
        repeat_days=rdays,
        repeat_counts=rcounts.astype(float),
        series_start=CALIBRATION_LAST_DAY.replace(month=1, day=1),
    )
    assert bt["holdout_days"] == 273
    buckets = {b["frequency"]: b for b in bt["by_frequency"]}
    assert [b["frequency"] for b in bt["by_frequency"]] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert buckets["0"]["customers"] == 1411
    assert buckets["0"]["actual_mean"] == pytest.approx(334 / 1411, abs=1e-4)
    # The paper's Figure 4 pattern: close for x = 0 and 7+, under for x = 1, 2.
    assert buckets["0"]["predicted_mean"] == pytest.approx(buckets["0"]["actual_mean"], rel=0.06)
    assert buckets["7+"]["predicted_mean"] == pytest.approx(buckets["7+"]["actual_mean"], rel=0.06)
    assert buckets["1"]["predicted_mean"] < buckets["1"]["actual_mean"]
    weekly = bt["weekly"]
    assert len(weekly) == 78
    assert weekly[38]["week_end"] == "1997-10-01"  # 39 weeks: the calibration end
    assert weekly[-1]["actual_cumulative"] == len(repeat) == 4339
    # Tracking within 5% at the end of the holdout, as in the paper's Figure 2.
    assert weekly[-1]["predicted_cumulative"] == pytest.approx(4339, rel=0.05)
    assert bt["holdout_repeat_purchases"]["actual"] == 1882
