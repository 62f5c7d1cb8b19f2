"""A non-finite model output is stored as missing, not a snapshot PostgreSQL refuses (jsonb has no NaN)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from analytics import services
from tests.analytics.factories import orders_add, shop_make


def test_nan_in_the_predictive_block_is_stored_as_missing(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = shop_make()
    orders_add(shop, [{"customer": 1, "at": "2026-01-05 10:00", "value": 20},
                      {"customer": 1, "at": "2026-03-05 10:00", "value": 30}])

    def compute(**kwargs: Any) -> tuple[dict[str, Any], None]:
        return {"available": True, "totals": {"predicted_clv": float("inf"), "customers": 1},
                "backtest": {"available": True, "holdout_repeat_purchases": {"actual": 3, "predicted": float("nan")},
                             "weekly": [{"week_end": "2026-01-12", "predicted_cumulative": float("nan")}]}}, None

    monkeypatch.setattr(services, "predictive_compute", compute)
    snapshot = services.snapshot_refresh(shop=shop, as_of=date(2026, 4, 1), period_days=90)
    snapshot.refresh_from_db()
    predictive = snapshot.document["predictive"]
    assert predictive["totals"] == {"predicted_clv": None, "customers": 1}
    assert predictive["backtest"]["holdout_repeat_purchases"] == {"actual": 3, "predicted": None}
    assert predictive["backtest"]["weekly"][0]["predicted_cumulative"] is None
    assert snapshot.document["clv"]["orders"] == 2
