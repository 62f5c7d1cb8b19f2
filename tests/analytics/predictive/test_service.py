"""The summary SQL and the `predictive` block, on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

import numpy as np
import pytest

from analytics.predictive.bgnbd import BgNbdParams, bgnbd_p_alive
from analytics.predictive.service import _money, predictive_block
from analytics.predictive.summary import (
    holdout_purchases_for_shop,
    repeat_days_for_shop,
    summary_for_shop,
    summary_from_transactions,
)
from shops.models import Shop
from sync.models import Order

UTC = dt.UTC
_next_id = iter(range(1, 10**9))


def order(
    shop: Shop, customer: int | None, at: dt.datetime, subtotal: str, total: str | None = None, **extra: object
) -> Order:
    return Order(
        shop=shop,
        shopify_id=next(_next_id),
        customer_shopify_id=customer,
        processed_at=at,
        created_at=at,
        updated_at=at,
        current_subtotal=Decimal(subtotal),
        current_total=Decimal(total or subtotal),
        subtotal=Decimal(subtotal),
        total=Decimal(total or subtotal),
        **extra,
    )


@pytest.fixture
def nz_shop(db: None) -> Shop:
    return Shop.objects.create(domain="kiwi.myshopify.com", currency="NZD", iana_timezone="Pacific/Auckland")


def test_summary_in_sql_counts_days_in_the_shop_zone(nz_shop: Shop) -> None:
    other = Shop.objects.create(domain="other.myshopify.com", currency="NZD")
    Order.objects.bulk_create(
        [
            # Customer 101. NZ is UTC+13 in summer: 10:00Z is 23:00 on Jan 1, 11:30Z is 00:30 on Jan 2.
            order(nz_shop, 101, dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC), "50", "60"),
            order(nz_shop, 101, dt.datetime(2026, 1, 1, 11, 30, tzinfo=UTC), "30", "35"),
            order(nz_shop, 101, dt.datetime(2026, 1, 1, 20, 0, tzinfo=UTC), "20", "22"),  # same NZ day: one purchase
            order(nz_shop, 101, dt.datetime(2026, 2, 10, 0, 0, tzinfo=UTC), "10", "12"),
            order(
                nz_shop,
                101,
                dt.datetime(2026, 2, 20, 0, 0, tzinfo=UTC),
                "99",
                cancelled_at=dt.datetime(2026, 2, 21, tzinfo=UTC),
            ),
            order(nz_shop, 101, dt.datetime(2026, 2, 21, 0, 0, tzinfo=UTC), "99", test=True),
            order(nz_shop, 101, dt.datetime(2026, 2, 22, 0, 0, tzinfo=UTC), "40", tags=["Wholesale", "x"]),
            # 11:30Z on Feb 28 is 00:30 on Mar 1 in NZ: the as-of day, outside the data.
            order(nz_shop, 101, dt.datetime(2026, 2, 28, 11, 30, tzinfo=UTC), "99"),
            # Customer 102: one purchase on the last observed day (Feb 28 in NZ).
            order(nz_shop, 102, dt.datetime(2026, 2, 27, 12, 0, tzinfo=UTC), "15"),
            order(nz_shop, None, dt.datetime(2026, 1, 5, tzinfo=UTC), "500"),  # guest
            order(other, 101, dt.datetime(2026, 1, 20, tzinfo=UTC), "500"),  # another shop
        ]
    )
    s = summary_for_shop(shop=nz_shop, as_of=dt.date(2026, 3, 1), excluded_tags=("Wholesale",))
    assert s.customer_id.tolist() == [101, 102]
    assert s.x.tolist() == [2, 0]
    assert s.t_x.tolist() == [40, 0]  # Jan 1 -> Feb 10
    assert s.T.tolist() == [58, 0]  # Jan 1 -> Feb 28, the last day observed
    assert s.m.tolist() == [30.0, 0.0]  # (50 + 10) / 2: the first day's 50 is left out
    assert s.first_day.tolist() == [dt.date(2026, 1, 1), dt.date(2026, 2, 28)]

    by_total = summary_for_shop(
        shop=nz_shop, as_of=dt.date(2026, 3, 1), order_value_basis="total", unit="weeks", excluded_tags=("Wholesale",)
    )
    assert by_total.m.tolist() == [(35 + 22 + 12) / 2, 0.0]
    assert by_total.t_x[0] == pytest.approx(40 / 7)
    # Without the exclusion the Feb 22 order (NZ day Feb 22) is a third repeat purchase.
    every = summary_for_shop(shop=nz_shop, as_of=dt.date(2026, 3, 1))
    assert (every.x[0], every.t_x[0], every.m[0]) == (3, 52, (50 + 10 + 40) / 3)
    assert by_total.T[0] == pytest.approx(58 / 7)



def test_excluded_tags_compare_case_insensitively(nz_shop: Shop) -> None:
    # The descriptive figures drop an order tagged "Wholesale" when the setting says "wholesale";
    # the summary, the holdout counts and the backtest series must drop the same orders.
    Order.objects.bulk_create(
        [
            order(nz_shop, 201, dt.datetime(2026, 1, 5, tzinfo=UTC), "20"),
            order(nz_shop, 201, dt.datetime(2026, 1, 10, tzinfo=UTC), "500", tags=["Wholesale"]),
            order(nz_shop, 201, dt.datetime(2026, 1, 20, tzinfo=UTC), "30", tags=["gift"]),
            order(nz_shop, 202, dt.datetime(2026, 1, 6, tzinfo=UTC), "40", tags=["WHOLESALE", "b2b"]),
        ]
    )
    as_of = dt.date(2026, 3, 1)
    every = summary_for_shop(shop=nz_shop, as_of=as_of)
    assert every.customer_id.tolist() == [201, 202]
    assert every.x.tolist() == [2, 0]
    for excluded in (("wholesale",), ("Wholesale",), (" WholeSale ",)):
        s = summary_for_shop(shop=nz_shop, as_of=as_of, excluded_tags=excluded)
        assert s.customer_id.tolist() == [201], excluded
        assert (s.x[0], s.m[0]) == (1, 30.0), excluded
        ids, counts = holdout_purchases_for_shop(
            shop=nz_shop, start=dt.date(2026, 1, 1), end=as_of, excluded_tags=excluded
        )
        assert (ids.tolist(), counts.tolist()) == ([201], [2.0]), excluded
        days, repeats = repeat_days_for_shop(
            shop=nz_shop, cohort_end=as_of, start=dt.date(2026, 1, 1), end=as_of, excluded_tags=excluded
        )
        assert (days.tolist(), repeats.tolist()) == ([dt.date(2026, 1, 20)], [1.0]), excluded
    # The block reports the tags as they are compared.
    block = predictive_block(shop=nz_shop, as_of=as_of, excluded_order_tags=("Wholesale", "wholesale"))
    assert block["parameters"]["excluded_order_tags"] == ["wholesale"]

TRUE = BgNbdParams(r=0.8, alpha=60.0, a=0.5, b=3.0)
AS_OF = dt.date(2026, 1, 1)


@functools.cache
def simulated_purchases(n: int, seed: int) -> tuple[tuple[int, dt.datetime, str], ...]:
    """Customers drawn from BG/NBD (times in days) with Gamma-Gamma order values: (customer, time, value)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cid in range(1, n + 1):
        first = AS_OF - dt.timedelta(days=int(rng.integers(1, 900)))
        horizon = (AS_OF - first).days - 1
        lam = rng.gamma(TRUE.r, 1 / TRUE.alpha)
        p = rng.beta(TRUE.a, TRUE.b)
        nu = rng.gamma(4.0, 1 / 40.0)
        times, t = [0.0], 0.0
        while True:
            t += rng.exponential(1 / lam)
            if t > horizon:
                break
            times.append(t)
            if rng.random() < p:
                break
        for t in times:
            at = dt.datetime.combine(first + dt.timedelta(days=int(t)), dt.time(12), tzinfo=UTC)
            rows.append((9000 + cid, at, f"{rng.gamma(5.0, 1 / nu):.2f}"))
    return tuple(rows)


def simulated_orders(shop: Shop, n: int, seed: int) -> list[Order]:
    return [order(shop, cid, at, value, "0") for cid, at, value in simulated_purchases(n, seed)]


@pytest.fixture
def sim_shop(db: None) -> Shop:
    shop = Shop.objects.create(domain="sim.myshopify.com", currency="USD", iana_timezone="UTC")
    Order.objects.bulk_create(simulated_orders(shop, 600, seed=3))
    return shop


def test_predictive_block_for_a_shop(sim_shop: Shop) -> None:
    groups = {9000 + c: ("top" if c <= 100 else "bottom") for c in range(1, 301)}
    block = predictive_block(shop=sim_shop, as_of=AS_OF, include_customers=True, rfm_groups=groups)
    assert block["available"]
    assert block["spend_available"]
    assert block["message"] is None
    assert set(block["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert set(block["gamma_gamma"]) == {"p", "q", "gamma"}
    diag = block["diagnostics"]["bgnbd"]
    assert diag["customers"] == 600
    assert diag["converged"]
    assert block["diagnostics"]["gamma_gamma"]["customers"] == diag["repeat_customers"]

    customers = block["customers"]
    assert len(customers) == 600
    assert {c["customer_id"] for c in customers} == set(range(9001, 9601))
    total_clv = sum(Decimal(c["predicted_clv"]) for c in customers)
    assert abs(total_clv - Decimal(block["totals"]["predicted_clv"])) <= Decimal("0.01") * 600
    assert block["totals"]["expected_purchases"] == pytest.approx(
        sum(c["expected_purchases"] for c in customers), abs=0.05
    )
    # Groups partition the customers; the ones RFM does not know are kept apart.
    assert {k: g["customers"] for k, g in block["groups"].items()} == {"top": 100, "bottom": 200, "not_in_rfm": 300}

    bg = BgNbdParams(**block["bgnbd"])
    gg = block["gamma_gamma"]
    for c in customers[:50]:
        expected = bgnbd_p_alive(bg, x=np.array([c["x"]]), t_x=np.array([c["t_x"]]), T=np.array([c["T"]]))[0]
        assert c["p_alive"] == pytest.approx(expected, abs=5e-5)
        if c["x"] == 0:
            assert c["p_alive"] == 1.0
            population = gg["p"] * gg["gamma"] / (gg["q"] - 1)
            assert Decimal(c["expected_aov"]) == pytest.approx(Decimal(f"{population:.2f}"), abs=Decimal("0.01"))
    # A 0% discount rate turns CLV into expected purchases x expected order value.
    flat = predictive_block(
        shop=sim_shop, as_of=AS_OF, discount_rate=0.0, include_customers=True, include_backtest=False
    )
    c = flat["customers"][0]
    assert float(c["predicted_clv"]) == pytest.approx(c["expected_purchases"] * float(c["expected_aov"]), abs=0.02)

    bt = block["backtest"]
    assert bt["available"]
    assert bt["holdout_days"] == 365  # half the ~2.5 years of history, capped at the horizon
    assert bt["calibration_end"] == "2025-01-01"
    assert [b["frequency"] for b in bt["by_frequency"]][-1] == "7+"
    assert sum(b["customers"] for b in bt["by_frequency"]) == bt["customers"]
    # Actual holdout repeat purchases, counted independently with the ORM.
    cohort = set(
        Order.objects.filter(shop=sim_shop, processed_at__lt=dt.datetime(2025, 1, 1, tzinfo=UTC)).values_list(
            "customer_shopify_id", flat=True
        )
    )
    holdout_days = {
        (o.customer_shopify_id, o.processed_at.date())
        for o in Order.objects.filter(shop=sim_shop, processed_at__gte=dt.datetime(2025, 1, 1, tzinfo=UTC))
        if o.customer_shopify_id in cohort
    }
    assert bt["customers"] == len(cohort)
    assert bt["holdout_repeat_purchases"]["actual"] == len(holdout_days)
    assert bt["weekly"][-1]["week_end"] == "2026-01-01"
    # Parameters from the data's own generator: a loose check that the fit is sane on a small shop.
    assert 0.3 < block["bgnbd"]["r"] < 2.0


def test_money_rounds_to_the_currencys_minor_units(sim_shop: Shop) -> None:
    groups = {9000 + c: ("top" if c <= 100 else "bottom") for c in range(1, 301)}
    blocks = {}
    for currency, places in (("JPY", 0), ("KWD", 3), ("USD", 2)):
        sim_shop.currency = currency
        block = predictive_block(
            shop=sim_shop, as_of=AS_OF, include_customers=True, include_backtest=False, rfm_groups=groups
        )
        assert block["parameters"]["currency"] == currency
        figures = [block["totals"]["predicted_clv"], block["totals"]["predicted_clv_per_customer"]]
        figures += [g["predicted_clv"] for g in block["groups"].values()]
        figures += [c[k] for c in block["customers"] for k in ("expected_aov", "predicted_clv")]
        assert all(Decimal(text).as_tuple().exponent == -places for text in figures), currency
        blocks[currency] = block
    # One estimate, rounded once per currency (from the float, so a dinar figure ending in .500
    # may come from just under it): yen within half a unit of the dinars, dinars of the cents.
    for currency, other, half in (("JPY", "KWD", Decimal("0.5")), ("USD", "KWD", Decimal("0.005"))):
        pairs = zip(blocks[currency]["customers"], blocks[other]["customers"], strict=True)
        assert all(abs(Decimal(a["predicted_clv"]) - Decimal(b["predicted_clv"])) <= half for a, b in pairs)
        total, other_total = (Decimal(blocks[c]["totals"]["predicted_clv"]) for c in (currency, other))
        assert abs(total - other_total) <= half


def test_money_rounds_half_up_like_the_descriptive_figures() -> None:
    assert (_money(0.125, "USD"), _money(2.5, "JPY"), _money(1.0005, "KWD"), _money(7.0, "USD")) == (
        "0.13",
        "3",
        "1.001",
        "7.00",
    )

def test_spend_model_missing_keeps_purchase_predictions(sim_shop: Shop) -> None:
    # Every order's total is 0 in this shop's data: nothing to fit spend on under the `total` basis.
    block = predictive_block(
        shop=sim_shop, as_of=AS_OF, order_value_basis="total", include_customers=True, include_backtest=False
    )
    assert block["available"]
    assert not block["spend_available"]
    assert "paid repeat order" in block["message"]
    assert block["spend_code"] == "insufficient_data"
    assert block["totals"]["predicted_clv"] is None
    assert block["customers"][0]["predicted_clv"] is None
    assert block["customers"][0]["expected_purchases"] > 0


def test_a_shop_with_too_little_data_gets_a_message_not_numbers(nz_shop: Shop) -> None:
    Order.objects.bulk_create([order(nz_shop, c, dt.datetime(2026, 1, 1 + c, tzinfo=UTC), "10") for c in range(1, 6)])
    block = predictive_block(shop=nz_shop, as_of=dt.date(2026, 3, 1), include_customers=True)
    assert block["available"] is False
    assert block["code"] == "insufficient_data"
    assert block["error"] == block["message"]
    assert "at least 30 customers" in block["message"]
    assert block["totals"] is None
    assert block["bgnbd"] is None
    assert block["customers"] == []


def test_block_reads_the_shops_analytics_settings(sim_shop: Shop) -> None:
    from analytics.models import AnalyticsSettings

    AnalyticsSettings.objects.create(shop=sim_shop, order_value_basis="total")
    sim_shop.refresh_from_db()
    block = predictive_block(shop=sim_shop, as_of=AS_OF, include_backtest=False)
    assert block["parameters"]["order_value_basis"] == "total"
    assert not block["spend_available"]  # totals are all 0 in this data


def test_sql_summary_equals_the_transaction_summary(sim_shop: Shop) -> None:
    rows = simulated_purchases(600, 3)
    ids = np.array([r[0] for r in rows])
    days = np.array([r[1].date() for r in rows], dtype="datetime64[D]")
    values = np.array([float(r[2]) for r in rows])
    expected = summary_from_transactions(
        customer_ids=ids, days=days, values=values, last_observed=AS_OF - dt.timedelta(days=1)
    )
    got = summary_for_shop(shop=sim_shop, as_of=AS_OF)
    assert np.array_equal(got.customer_id, expected.customer_id)
    for name in ("x", "t_x", "T"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    np.testing.assert_allclose(got.m, expected.m, rtol=1e-12)
    assert np.array_equal(got.first_day, expected.first_day)


def test_weeks_or_days_give_the_same_predictions(sim_shop: Shop) -> None:
    days = predictive_block(shop=sim_shop, as_of=AS_OF, include_customers=True, include_backtest=False)
    weeks = predictive_block(
        shop=sim_shop, as_of=AS_OF, include_customers=True, include_backtest=False, time_unit="weeks"
    )
    assert weeks["bgnbd"]["alpha"] == pytest.approx(days["bgnbd"]["alpha"] / 7, rel=1e-5)
    assert weeks["bgnbd"]["r"] == pytest.approx(days["bgnbd"]["r"], rel=1e-5)
    assert weeks["totals"]["expected_purchases"] == pytest.approx(days["totals"]["expected_purchases"], rel=1e-5)
    assert weeks["customers"][5]["T"] == pytest.approx(days["customers"][5]["T"] / 7)


def test_a_shop_without_orders(nz_shop: Shop) -> None:
    block = predictive_block(shop=nz_shop, as_of=dt.date(2026, 3, 1))
    assert block["available"] is False
    assert "this shop has 0 customers" in block["message"]
