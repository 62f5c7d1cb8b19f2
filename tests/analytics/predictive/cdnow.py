"""Loaders for the CDNOW sample shipped in tests/data/cdnow (see its README)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from analytics.predictive.summary import Summary, summary_from_transactions

DATA = Path(__file__).resolve().parents[2] / "data" / "cdnow"
CALIBRATION_LAST_DAY = dt.date(1997, 9, 30)  # 39 weeks from 1997-01-01
HOLDOUT_LAST_DAY = dt.date(1998, 6, 30)  # 39 more weeks


def cdnow_transactions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer id (the sample's 1..2357), purchase day, dollar value per row of CDNOW_sample.txt."""
    raw = np.loadtxt(DATA / "CDNOW_sample.txt", dtype=str)
    ids = raw[:, 1].astype(np.int64)
    days = np.array([f"{s[:4]}-{s[4:6]}-{s[6:]}" for s in raw[:, 2]], dtype="datetime64[D]")
    return ids, days, raw[:, 4].astype(np.float64)


def cdnow_summary(last_day: dt.date = CALIBRATION_LAST_DAY) -> Summary:
    ids, days, values = cdnow_transactions()
    return summary_from_transactions(customer_ids=ids, days=days, values=values, last_observed=last_day, unit="weeks")


def cdnow_published_summary() -> np.ndarray:
    """The summary Fader and Hardie publish (x, t_x, T in weeks, zbar), as shipped with lifetimes."""
    return np.genfromtxt(DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
