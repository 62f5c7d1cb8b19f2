"""The seam with analytics: the snapshot document carries the predictive block, groups included."""

from __future__ import annotations

from decimal import Decimal

from analytics.models import CustomerScore
from analytics.services import snapshot_refresh
from shops.models import Shop
from tests.analytics.predictive.test_service import AS_OF, sim_shop  # noqa: F401 - the fixture


def test_snapshot_document_has_the_predictive_block(sim_shop: Shop) -> None:  # noqa: F811
    snapshot = snapshot_refresh(shop=sim_shop, as_of=AS_OF)
    block = snapshot.document["predictive"]
    assert block["available"], block
    assert block["bgnbd"]["r"] > 0
    # RFM groups of the period's customers, and everyone else apart.
    scores = CustomerScore.objects.filter(rows_id=snapshot.rows_id)
    groups = {g: v["customers"] for g, v in block["groups"].items() if g != "not_in_rfm"}
    expected: dict[str, int] = {}
    for group in scores.values_list("rfm_group", flat=True):
        expected[group] = expected.get(group, 0) + 1
    assert groups == expected
    assert sum(g["customers"] for g in block["groups"].values()) == block["totals"]["customers"]
    # Each scored customer's predicted CLV is stored for the CSV export.
    assert scores.filter(predicted_clv__isnull=True).count() == 0
    assert scores.first().predicted_clv >= Decimal(0)
