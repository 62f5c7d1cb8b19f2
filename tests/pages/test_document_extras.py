"""The document keys the pages' charts read (trend, R x F grid, gap histogram), on a hand-counted shop."""

from __future__ import annotations

from datetime import date

import pytest

from analytics import services
from tests.analytics.factories import orders_add
from tests.pages.conftest import shop_install


@pytest.fixture
def doc(db: None) -> dict:
    shop = shop_install("extras.myshopify.com")
    orders_add(shop, [
        {"customer": 1, "at": "2026-01-10 09:00", "value": 10},
        {"customer": 1, "at": "2026-01-20 09:00", "value": 10},
        {"customer": 1, "at": "2026-03-01 09:00", "value": 10},
        {"customer": 2, "at": "2026-02-05 09:00", "value": 20},
    ])
    return services.report_document(shop=shop, as_of=date(2026, 4, 1), period_days=365)


def test_trend_counts_each_month(doc: dict) -> None:
    trend = {row["month"]: row for row in doc["trend"]}
    assert len(doc["trend"]) == 24
    assert doc["trend"][-1]["month"] == "2026-03"
    assert (trend["2026-01"]["customers"], trend["2026-01"]["orders"], trend["2026-01"]["revenue"]) == (1, 2, "20.00")
    assert (trend["2026-02"]["customers"], trend["2026-02"]["orders"], trend["2026-02"]["revenue"]) == (1, 1, "20.00")
    assert (trend["2026-03"]["orders"], trend["2026-03"]["aov"]) == (1, "10.00")
    assert trend["2025-12"]["orders"] == 0
    assert not doc["trend"][-1]["partial"]  # as of the 1st: March is complete


def test_rf_grid(doc: dict) -> None:
    # Customer 1: recency 31 days, 3 orders; customer 2: recency 55 days, 1 order. Quantile k = 3 over
    # two customers: the better of each pair scores 1 + floor(3 x 1/2) = 2, the other 1.
    grid = {(c["r"], c["f"]): (c["customers"], c["revenue"]) for c in doc["rfm"]["grid"]}
    assert len(grid) == 9
    assert grid[(2, 2)] == (1, "30.00")
    assert grid[(1, 1)] == (1, "20.00")
    assert sum(n for n, _ in grid.values()) == 2


def test_gap_histogram(doc: dict) -> None:
    # Customer 1's gaps: 10 days (Jan 10 -> 20) and 40 days (Jan 20 -> Mar 1).
    bins = {(b["min_days"], b["max_days"]): b["gaps"] for b in doc["retention"]["gap_histogram"]}
    assert bins[(8, 14)] == 1
    assert bins[(31, 60)] == 1
    assert sum(bins.values()) == 2
    assert bins[(366, None)] == 0
