"""Reconciliation finds the rows that differ from Shopify, at a cost that follows them, not their days."""

from __future__ import annotations

import math
from datetime import timedelta

from django.utils import timezone

from sync import services
from sync.models import Customer, Deletion, Order, SyncRun
from tests.sync.exact import mismatches


def _backfill(devshop):
    run = services.backfill_create(shop=devshop.shop)
    assert services.backfill_run(run_id=run.pk) == "succeeded", SyncRun.objects.get(pk=run.pk).error


def _reconcile(devshop, days=None):
    run = services.reconcile_run(shop=devshop.shop, days=days)
    assert run is not None
    assert run.status == "succeeded", run.error
    return run.state["reconciled"]


def test_after_a_backfill_every_day_agrees_and_the_weeks_counts_say_so(devshop, transactional_db):
    # Pacific/Auckland over 18 months: DST starts and ends inside the history, days are the shop's.
    _backfill(devshop)
    reconciled = _reconcile(devshop)
    for kind in ("orders", "customers"):
        assert reconciled[kind]["days"] == []
        assert (reconciled[kind]["removed"], reconciled[kind]["added"]) == (0, 0)
        # One count per week, both kinds' in two requests (a hundred counts each).
        assert reconciled[kind]["requests"] <= 2
        assert reconciled[kind]["points"] >= 18 * 28 / 7


def _created_around(shop, days_ago):
    """An order of ours created about `days_ago` days ago (each pick in a week of its own)."""
    return (Order.objects.filter(shop=shop, created_at__lt=timezone.now() - timedelta(days=days_ago))
            .order_by("-created_at").first())


def test_rows_that_differ_are_found_for_a_few_points_each(devshop, transactional_db):
    _backfill(devshop)
    shop = devshop.shop
    n_orders = Order.objects.filter(shop=shop).count()
    # Three orders we lack (deleted here), two we hold that Shopify never had, one customer each
    # way; each in a week of its own (a deletion and a row we lack in one week cancel out).
    lost = [_created_around(shop, d) for d in (20, 100, 300)]
    Order.objects.filter(pk__in=[o.pk for o in lost]).delete()
    for n, days_ago in ((1, 3), (2, 200)):
        Order.objects.create(shop=shop, shopify_id=n, name=f"#ghost{n}", processed_at=lost[0].processed_at,
                             created_at=timezone.now() - timedelta(days=days_ago), updated_at=timezone.now())
    Customer.objects.filter(shop=shop, created_at__lt=timezone.now() - timedelta(days=60)).order_by(
        "-created_at").first().delete()
    Customer.objects.create(shop=shop, shopify_id=1, created_at=timezone.now() - timedelta(days=10),
                            updated_at=timezone.now())

    reconciled = _reconcile(devshop)
    assert (reconciled["orders"]["removed"], reconciled["orders"]["added"]) == (2, 3)
    assert (reconciled["customers"]["removed"], reconciled["customers"]["added"]) == (1, 1)
    assert not mismatches(shop, devshop.truth())
    assert len(reconciled["orders"]["days"]) == 5
    # The weeks, then about a count per halving per differing row (and the ids to list or
    # confirm), not the rows of the days they fall on. A count costs 10 points on a live store.
    count = 10
    weeks = math.ceil(18 * 31 / 7)
    bound = count * weeks + 5 * (count * 2 * math.log2(n_orders) + 12)
    assert reconciled["orders"]["points"] <= bound, reconciled["orders"]
    # A second look finds everything in place, for the weeks' counts alone.
    again = _reconcile(devshop)
    assert (again["orders"]["removed"], again["orders"]["added"], again["orders"]["days"]) == (0, 0, [])
    assert again["orders"]["points"] <= count * weeks


def test_daily_reconcile_looks_at_recent_days_only(devshop, transactional_db):
    _backfill(devshop)
    old = Order.objects.filter(shop=devshop.shop, created_at__lt=timezone.now() - timedelta(days=120)).first()
    recent = Order.objects.filter(shop=devshop.shop, created_at__gt=timezone.now() - timedelta(days=30)).first()
    Order.objects.filter(pk__in=[old.pk, recent.pk]).delete()
    reconciled = _reconcile(devshop, days=90)
    assert reconciled["orders"]["added"] == 1
    assert Order.objects.filter(shop=devshop.shop, shopify_id=recent.shopify_id).exists()
    assert not Order.objects.filter(shop=devshop.shop, shopify_id=old.shopify_id).exists()


def test_a_row_counted_gone_is_deleted_only_if_shopify_cannot_find_it(devshop, transactional_db):
    # Our copy of an order says it was created two weeks later than Shopify says: the counts
    # differ in both weeks, as if it were gone from one and missing from the other.
    _backfill(devshop)
    order = _created_around(devshop.shop, 100)
    truth_created = order.created_at
    Order.objects.filter(pk=order.pk).update(created_at=truth_created + timedelta(days=14))
    reconciled = _reconcile(devshop)
    assert (reconciled["orders"]["removed"], reconciled["orders"]["added"]) == (0, 1)
    order.refresh_from_db()
    assert order.created_at == truth_created  # read again from Shopify
    assert not Deletion.objects.filter(shop=devshop.shop, shopify_id=order.shopify_id).exists()


def test_counts_size_their_requests_from_the_price_shopify_names(devshop, transactional_db, monkeypatch):
    """With a guess far too low (a point a count), the first request asks every week's count at once
    (over 1,000 points): Shopify answers MAX_COST_EXCEEDED naming the cost, and the requests are
    re-sized from it."""
    from sync.client import ShopifyClient
    from tests.shopify_guard import refused_http

    _backfill(devshop)
    monkeypatch.setattr(services, "COUNT_COST_GUESS", 1.0)
    sent: list[int] = []
    # Sent on purpose, so under a User-Agent of its own: the session's Shopify guard checks the app's.
    http = refused_http()

    def factory(shop):
        client = ShopifyClient.for_shop(shop, http=http)
        real = client.graphql

        def graphql(query, variables=None, **kw):
            sent.append(query.count("Count("))
            return real(query, variables, **kw)

        client.graphql = graphql
        return client

    run = services.reconcile_run(shop=devshop.shop, client_factory=factory, days=None)
    assert run.status == "succeeded", run.error
    counts = [n for n in sent if n]
    assert counts[0] * 10 > 1000  # the refused request: both kinds' weeks
    assert counts[0] == sum(counts[1:])  # then the same counts again, in requests Shopify accepts
    assert max(counts[1:]) == 90  # 900 points of 10-point counts: 90% of the cap
    for kind in ("orders", "customers"):
        assert run.state["reconciled"][kind]["days"] == []
