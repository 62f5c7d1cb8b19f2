"""The seam with analytics: the snapshot document carries the predictive block, groups included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics import services
from analytics.models import AnalyticsSnapshot, CustomerScore
from analytics.services import snapshot_refresh
from shops.models import Shop
from tests.analytics.predictive.test_service import AS_OF, sim_shop  # noqa: F401 - the fixture


def test_snapshot_document_has_the_predictive_block(sim_shop: Shop) -> None:  # noqa: F811
    snapshot = snapshot_refresh(shop=sim_shop, as_of=AS_OF)
    block = snapshot.document["predictive"]
    assert block["available"], block
    assert block["bgnbd"]["r"] > 0
    # RFM groups of the period's customers, and everyone else apart.
    scores = CustomerScore.objects.filter(snapshot=snapshot)
    groups = {g: v["customers"] for g, v in block["groups"].items() if g != "not_in_rfm"}
    expected: dict[str, int] = {}
    for group in scores.values_list("rfm_group", flat=True):
        expected[group] = expected.get(group, 0) + 1
    assert groups == expected
    assert sum(g["customers"] for g in block["groups"].values()) == block["totals"]["customers"]
    # Each scored customer's predicted CLV is stored for the CSV export.
    assert scores.filter(predicted_clv__isnull=True).count() == 0
    assert scores.first().predicted_clv >= Decimal(0)


def test_predictive_settings_reach_the_block(sim_shop: Shop) -> None:  # noqa: F811
    default = snapshot_refresh(shop=sim_shop, as_of=AS_OF).document["predictive"]
    assert (default["parameters"]["horizon_days"], default["parameters"]["discount_rate"],
            default["parameters"]["time_unit"]) == (365, 0.1, "days")
    _, errors = services.settings_update(shop=sim_shop, data={
        "predictive_time_unit": "weeks", "predictive_horizon_days": "730", "predictive_discount_rate_pct": "0"})
    assert errors == {}
    other = snapshot_refresh(shop=sim_shop, as_of=AS_OF)
    block = other.document["predictive"]
    assert other.settings_hash != AnalyticsSnapshot.objects.exclude(pk=other.pk).get(shop=sim_shop).settings_hash
    assert (block["parameters"]["horizon_days"], block["parameters"]["discount_rate"],
            block["parameters"]["time_unit"]) == (730, 0.0, "weeks")
    # alpha is in the chosen unit; two undiscounted years expect more purchases than one discounted year.
    assert block["bgnbd"]["alpha"] == pytest.approx(default["bgnbd"]["alpha"] / 7, rel=1e-4)
    assert block["totals"]["expected_purchases"] > 1.5 * default["totals"]["expected_purchases"]
    assert Decimal(block["totals"]["predicted_clv"]) > Decimal(default["totals"]["predicted_clv"])
