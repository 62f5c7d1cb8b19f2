"""summary_from_transactions against a plain-Python reading of the definitions."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.predictive.summary import summary_from_transactions

START = dt.date(2025, 1, 1)
LAST = dt.date(2025, 3, 1)

transactions = st.lists(
    st.tuples(st.integers(1, 8), st.integers(0, 70), st.integers(0, 10_000)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(transactions)
def test_summary_matches_the_definitions(rows: list[tuple[int, int, int]]) -> None:
    ids = np.array([c for c, _, _ in rows])
    days = np.array([START + dt.timedelta(days=d) for _, d, _ in rows], dtype="datetime64[D]")
    cents = np.array([v for _, _, v in rows])
    s = summary_from_transactions(customer_ids=ids, days=days, values=cents / 100, last_observed=LAST)

    last = (LAST - START).days
    per_customer: dict[int, dict[int, int]] = {}
    for c, d, v in rows:
        if d <= last:  # days after the last observed day are not seen
            per_customer.setdefault(c, {}).setdefault(d, 0)
            per_customer[c][d] += v
    assert s.customer_id.tolist() == sorted(per_customer)
    for i, c in enumerate(s.customer_id.tolist()):
        by_day = per_customer[c]
        first, latest = min(by_day), max(by_day)
        assert s.x[i] == len(by_day) - 1
        assert s.t_x[i] == latest - first
        assert s.T[i] == last - first
        repeat = [v for d, v in by_day.items() if d != first]
        expected_m = sum(repeat) / len(repeat) / 100 if repeat else 0.0
        assert abs(s.m[i] - expected_m) < 1e-9
        assert s.first_day[i] == np.datetime64(START + dt.timedelta(days=first))
