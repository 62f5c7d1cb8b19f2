"""The seam with analytics: the snapshot document carries the predictive block, groups included."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.management import call_command

from analytics import export, selectors, services
from analytics.models import AnalyticsSnapshot, CustomerPrediction, CustomerScore
from analytics.predictive.service import predictive_block
from analytics.services import snapshot_refresh
from shops.models import Shop
from sync.models import Order
from tests.analytics.predictive.test_service import AS_OF, order, sim_shop  # noqa: F401 - the fixture


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


def _report(shop: Shop, *args: str) -> dict:
    out = io.StringIO()
    call_command("report", shop.domain, "--as-of", AS_OF.isoformat(), *args, stdout=out)
    return json.loads(out.getvalue())


def test_report_customers_carry_every_scored_customers_predictions(sim_shop: Shop) -> None:  # noqa: F811
    plain = _report(sim_shop)
    snapshot = AnalyticsSnapshot.objects.get(shop=sim_shop)
    # The stored document stays small: the per-customer predictions are rows, read on request.
    assert "customers" not in snapshot.document["predictive"]
    assert "customers" not in plain["predictive"]
    assert CustomerPrediction.objects.filter(rows_id=snapshot.predictions_id).count() == 600

    doc = _report(sim_shop, "--customers")
    assert AnalyticsSnapshot.objects.get(shop=sim_shop).computed_at == snapshot.computed_at  # read, not recomputed
    block = doc["predictive"]
    customers = block["customers"]
    assert [c["customer_id"] for c in customers] == sorted(range(9001, 9601))
    assert set(customers[0]) == {"customer_id", "x", "t_x", "T", "p_alive", "expected_purchases", "expected_aov",
                                 "predicted_clv"}
    assert len(customers) == block["totals"]["customers"] == 600
    # Lapsed customers (no order in the period) are predicted too, not only the RFM table's.
    rfm_ids = {c["customer_id"] for c in doc["rfm"]["customers"]}
    assert rfm_ids < {c["customer_id"] for c in customers}
    assert len(rfm_ids) == block["totals"]["customers"] - block["groups"]["not_in_rfm"]["customers"]
    # The same figures the block computes directly, to rounding.
    direct = predictive_block(shop=sim_shop, as_of=AS_OF, include_customers=True, include_backtest=False)
    for stored, fresh in zip(customers, direct["customers"], strict=True):
        assert (stored["customer_id"], stored["x"], stored["t_x"], stored["T"]) == (
            fresh["customer_id"], fresh["x"], fresh["t_x"], fresh["T"])
        assert stored["p_alive"] == pytest.approx(fresh["p_alive"], abs=1e-4)
        assert stored["expected_purchases"] == pytest.approx(fresh["expected_purchases"], abs=1e-4)
        for key in ("expected_aov", "predicted_clv"):
            assert abs(Decimal(stored[key]) - Decimal(fresh[key])) <= Decimal("0.01"), key
    total = sum(Decimal(c["predicted_clv"]) for c in customers)
    assert abs(total - Decimal(block["totals"]["predicted_clv"])) <= Decimal("0.005") * 600
    # The RFM rows carry their customer's predictions (the customer list and the CSV read them there).
    by_id = {c["customer_id"]: c for c in customers}
    for score in CustomerScore.objects.filter(rows_id=snapshot.rows_id)[:50]:
        mine = by_id[score.customer_shopify_id]
        assert score.p_alive == pytest.approx(mine["p_alive"], abs=5e-5)
        assert str(score.predicted_clv.quantize(Decimal("0.01"), ROUND_HALF_UP)) == mine["predicted_clv"]


def test_report_customers_in_yen_and_dinars(sim_shop: Shop) -> None:  # noqa: F811
    for currency, places in (("JPY", 0), ("KWD", 3)):
        Shop.objects.filter(pk=sim_shop.pk).update(currency=currency)
        sim_shop.refresh_from_db()
        snapshot_refresh(shop=sim_shop, as_of=AS_OF)
        block = _report(sim_shop, "--customers")["predictive"]
        money = [block["totals"]["predicted_clv"], *(g["predicted_clv"] for g in block["groups"].values())]
        money += [c[k] for c in block["customers"] for k in ("expected_aov", "predicted_clv")]
        assert all(Decimal(text).as_tuple().exponent == -places for text in money), currency
        lines = list(export.rfm_csv(shop=sim_shop, as_of=AS_OF))
        cells = [row["predicted_clv"] for row in csv.DictReader(io.StringIO("".join(lines)))]
        assert cells
        assert all(Decimal(text).as_tuple().exponent == -places for text in cells), currency


def test_unfitted_model_leaves_no_prediction_rows(db: None) -> None:
    shop = Shop.objects.create(domain="few.myshopify.com", currency="USD", iana_timezone="UTC")
    orders = [order(shop, c, dt.datetime(2025, 6, c, 12, tzinfo=dt.UTC), "10") for c in range(1, 6)]
    Order.objects.bulk_create(orders)
    doc = services.report_document(shop=shop, as_of=AS_OF, include_customers=True)
    assert doc["predictive"]["available"] is False
    assert doc["predictive"]["customers"] == []
    assert not CustomerPrediction.objects.exists()
    assert len(doc["rfm"]["customers"]) == 5


def test_prediction_rows_are_pruned_and_forgotten_with_the_scores(sim_shop: Shop) -> None:  # noqa: F811
    first = snapshot_refresh(shop=sim_shop, as_of=AS_OF)
    first_predictions = first.predictions_id
    assert CustomerPrediction.objects.filter(rows_id=first_predictions).count() == 600
    scores = CustomerScore.objects.filter(rows_id=first.rows_id, customer_shopify_id=9001).count()
    assert services.customer_scores_forget(shop=sim_shop, customer_shopify_id=9001) == scores + 1
    assert not CustomerPrediction.objects.filter(customer_shopify_id=9001).exists()
    assert not CustomerScore.objects.filter(customer_shopify_id=9001).exists()
    # Four newer snapshots push the first one's rows out; its document stays.
    for day in range(1, services.KEEP_CUSTOMER_ROWS + 1):
        snapshot_refresh(shop=sim_shop, as_of=AS_OF - dt.timedelta(days=day))
    assert not CustomerPrediction.objects.filter(rows_id=first_predictions).exists()
    first.refresh_from_db()
    assert first.document["predictive"]["available"]
    assert not selectors.snapshot_rows_present(snapshot=first)
    # Asked for with --customers, the pruned snapshot is recomputed with its rows.
    doc = services.report_document(shop=sim_shop, as_of=AS_OF, include_customers=True)
    assert len(doc["predictive"]["customers"]) == 600  # the orders are still there


def test_previous_period_refresh_leaves_that_dates_report_whole(sim_shop: Shop, redis_client) -> None:  # noqa: F811
    from analytics import tasks

    previous = selectors.shop_today(shop=sim_shop) - dt.timedelta(days=365)

    def stored() -> AnalyticsSnapshot:
        return AnalyticsSnapshot.objects.get(shop=sim_shop, as_of=previous)

    def report_is_whole() -> dict:
        doc = services.report_document(shop=sim_shop, as_of=previous, include_customers=True)
        block = doc["predictive"]
        assert block["available"], block
        assert len(block["customers"]) == block["totals"]["customers"] > 0
        scores = CustomerScore.objects.filter(rows_id=stored().rows_id)
        assert scores.count() == len(doc["rfm"]["customers"]) > 0
        assert scores.filter(predicted_clv=None).count() == scores.filter(p_alive=None).count() == 0
        return block

    # The refresh task's comparison snapshot is that date's report: it gets a block too.
    tasks.refresh_shop(sim_shop.pk)
    first = report_is_whole()
    # Later syncs the same day refresh the comparison's figures and keep its block (and rows).
    tasks.refresh_shop(sim_shop.pk)
    assert stored().document["predictive"]["computed_at"] == first["computed_at"]
    assert report_is_whole()["totals"] == first["totals"]
    # A block older than a day is computed afresh.
    snapshot = stored()
    snapshot.document["predictive"]["computed_at"] = (
        dt.datetime.fromisoformat(first["computed_at"]) - dt.timedelta(days=2)).isoformat()
    snapshot.save(update_fields=["document"])
    tasks.refresh_shop(sim_shop.pk)
    assert stored().document["predictive"]["computed_at"] > first["computed_at"]
    report_is_whole()
    # Without computing, a refresh keeps the stored block rather than blanking it ...
    block = stored().document["predictive"]
    services.snapshot_refresh(shop=sim_shop, as_of=previous, predictive=False)
    assert stored().document["predictive"] == block
    report_is_whole()
    # ... and a snapshot that never had one says so instead of holding null.
    bare = services.snapshot_refresh(shop=sim_shop, as_of=previous - dt.timedelta(days=1), predictive=False)
    assert bare.document["predictive"]["available"] is False
    assert bare.document["predictive"]["code"] == "not_computed"


def test_every_predictive_figure_has_its_formula_and_inputs(sim_shop: Shop) -> None:  # noqa: F811
    from scipy.special import hyp2f1

    from analytics.metrics.document import FORMULAS as DESCRIPTIVE
    from analytics.predictive.service import FORMULAS as PREDICTIVE

    snapshot_refresh(shop=sim_shop, as_of=AS_OF)
    doc = _report(sim_shop, "--customers")
    explain = doc["explain"]
    assert set(explain) == set(DESCRIPTIVE) | set(PREDICTIVE)
    assert all(explain[k]["formula"] == DESCRIPTIVE[k] for k in DESCRIPTIVE)  # the descriptive ones unchanged
    assert all(explain[k]["formula"] == PREDICTIVE[k] and isinstance(explain[k]["inputs"], dict) for k in PREDICTIVE)
    block = doc["predictive"]
    assert explain["predictive.bgnbd"]["inputs"]["parameters"] == block["bgnbd"]
    assert explain["predictive.gamma_gamma"]["inputs"]["parameters"] == block["gamma_gamma"]
    clv_inputs = explain["predictive.predicted_clv"]["inputs"]
    assert clv_inputs == {"horizon_days": 365, "discount_rate": 0.1, "steps": 12, "step_days": 30.4167,
                          "currency": "USD"}
    assert explain["predictive.totals.predicted_clv_per_customer"]["inputs"] == {
        "predicted_clv": block["totals"]["predicted_clv"], "customers": 600}
    assert explain["predictive.backtest"]["inputs"]["calibration_end"] == block["backtest"]["calibration_end"]

    # The formulas as written, evaluated by hand from their inputs, give the reported figures.
    r, alpha, a, b = (block["bgnbd"][k] for k in ("r", "alpha", "a", "b"))
    p, q, gamma = (block["gamma_gamma"][k] for k in ("p", "q", "gamma"))

    def expected(t: float, x: int, t_x: float, T: float) -> float:  # noqa: N803 - the papers' name
        alive_odds = (x > 0) * a / (b + max(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        h = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        return (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * h) / (1 + alive_odds)

    checked = 0
    for c in block["customers"]:
        if c["x"] > 3 or checked >= 40:
            continue
        checked += 1
        x, t_x, T = c["x"], c["t_x"], c["T"]
        odds = (x > 0) * a / (b + max(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        assert c["p_alive"] == pytest.approx(1 / (1 + odds), abs=1e-4)
        assert c["expected_purchases"] == pytest.approx(expected(365, x, t_x, T), abs=1e-4)
        if x == 0:
            assert float(c["expected_aov"]) == pytest.approx(p * gamma / (q - 1), abs=0.006)
        n, s = clv_inputs["steps"], 365 / clv_inputs["steps"]
        discounted = sum((expected(k * s, x, t_x, T) - expected((k - 1) * s, x, t_x, T)) * 1.1 ** (-k * s / 365)
                         for k in range(1, n + 1))
        assert float(c["predicted_clv"]) == pytest.approx(float(c["expected_aov"]) * discounted, abs=0.01, rel=1e-3)
    assert checked == 40


def test_unfitted_predictive_figures_still_explain_themselves(db: None) -> None:
    from analytics.predictive.service import FORMULAS as PREDICTIVE

    shop = Shop.objects.create(domain="few2.myshopify.com", currency="USD", iana_timezone="UTC")
    Order.objects.bulk_create([order(shop, 1, dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC), "10")])
    explain = snapshot_refresh(shop=shop, as_of=AS_OF).document["explain"]
    assert {k: explain[k]["formula"] for k in PREDICTIVE} == PREDICTIVE
    assert explain["predictive.bgnbd"]["inputs"]["parameters"] is None
    assert explain["predictive.predicted_clv"]["inputs"]["horizon_days"] == 365


def test_a_failing_model_query_leaves_the_descriptive_refresh_standing(db: None, monkeypatch) -> None:
    from django.db import connection

    def broken(**kwargs: object) -> None:
        with connection.cursor() as cur:
            cur.execute("SELECT 1 / 0")  # a database error inside the predictive computation

    monkeypatch.setattr(services, "predictive_compute", broken)
    shop = Shop.objects.create(domain="broken.myshopify.com", currency="USD", iana_timezone="UTC")
    Order.objects.bulk_create([order(shop, 1, dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC), "10")])
    snapshot = snapshot_refresh(shop=shop, as_of=AS_OF)
    assert snapshot.document["predictive"]["code"] == "failed"
    assert snapshot.document["clv"]["orders"] == 1
    assert CustomerScore.objects.filter(rows_id=snapshot.rows_id).count() == 1
