"""The Shopify client against devstore: pacing, retries, typed errors, the cost cap."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from shops.models import Shop, ShopCredential
from sync import services
from sync.client import (
    MAX_QUERY_COST,
    RETRY_AFTER_MAX,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyQueryError,
    ShopifyShopPausedError,
    ShopifyTransientError,
    retry_after_seconds,
)
from tests.shopify_guard import refused_http

pytestmark = pytest.mark.django_db

ORDERS_QUERY = "query { orders(first: 5) { nodes { id name } } }"


def fast(shop: Shop, **kwargs):
    return ShopifyClient.for_shop(shop, backoff_base=0.01, backoff_cap=0.05, **kwargs)


def refused(shop: Shop, **kwargs):
    """A client for requests a test sends to see Shopify refuse them (tests/shopify_guard.py)."""
    return fast(shop, http=refused_http(), **kwargs)


def test_reads_with_the_pinned_version(devshop):
    with fast(devshop.shop) as client:
        assert client.graphql_url.endswith("/admin/api/2026-10/graphql.json")
        result = client.graphql(ORDERS_QUERY)
    assert len(result.data["orders"]["nodes"]) == 5
    assert result.errors == []
    assert result.requested_cost == 2 + 5 * 1


def test_throttled_queries_wait_for_the_bucket_and_all_succeed(devshop):
    # A 100-point bucket refilling at 50/s; each query asks 2 + 40 = 42 points.
    devshop.faults(throttle_bucket_size=100, throttle_restore_rate=50)
    query = "query { orders(first: 40) { nodes { id } } }"
    started = time.monotonic()
    with fast(devshop.shop) as client:
        for _ in range(8):
            assert len(client.graphql(query).data["orders"]["nodes"]) == 40
        stats = dict(client.stats)
    elapsed = time.monotonic() - started
    # 8 x 42 = 336 points with 100 in the bucket: at least (336 - 100) / 50 = 4.7 s of refill... minus
    # what the actual cost gives back (ids only: the same), so the client must have waited.
    assert stats["throttle_wait_s"] > 3.0
    assert elapsed > 3.0


def test_throttled_answer_is_retried_after_the_refill(devshop):
    devshop.faults(throttle_bucket_size=50, throttle_restore_rate=100)
    query = "query { orders(first: 40) { nodes { id } } }"
    with fast(devshop.shop) as a, fast(devshop.shop) as b:
        # Two clients share the bucket: the second sees THROTTLED (HTTP 200) and waits it out.
        for _ in range(3):
            a.graphql(query)
            b.graphql(query)
        assert a.stats["throttled"] + b.stats["throttled"] >= 1


def test_5xx_is_retried_then_succeeds(devshop):
    devshop.faults(error_next=3)
    with fast(devshop.shop) as client:
        client.graphql(ORDERS_QUERY)
        assert client.stats["retries"] == 3


def test_429_honours_retry_after_absent_and_retries(devshop):
    devshop.faults(error_next=2, error_status=429)
    with fast(devshop.shop) as client:
        client.graphql(ORDERS_QUERY)
        assert client.stats["retries"] == 2


def test_503_waits_what_retry_after_says(devshop):
    # devstore answers 503 with `Retry-After: 1`, as Shopify does when it sheds load.
    devshop.faults(error_next=2, error_status=503)
    waited: list[float] = []
    with fast(devshop.shop, sleep=waited.append) as client:
        client.graphql(ORDERS_QUERY)
    assert waited == [1.0, 1.0]


def test_retry_after_as_seconds_or_http_date_and_capped():
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds("Tue, 01 Dec 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Tue, 01 Dec 2026 11:59:00 GMT", now=now) == 0.0  # already past
    assert retry_after_seconds("3600") == RETRY_AFTER_MAX
    assert retry_after_seconds("Wed, 02 Dec 2026 12:00:00 GMT", now=now) == RETRY_AFTER_MAX
    for unreadable in (None, "", "soon", "nan", "Tue, 41 Foo 2026"):
        assert retry_after_seconds(unreadable) is None


def test_persistent_5xx_raises_transient(devshop):
    devshop.faults(error_rate=1.0)
    with fast(devshop.shop, max_attempts=3) as client, pytest.raises(ShopifyTransientError):
        client.graphql(ORDERS_QUERY)


def test_timeout_is_retried(devshop):
    devshop.faults(timeout_next=1, timeout_s=3)
    with fast(devshop.shop, read_timeout=0.5) as client:
        client.graphql(ORDERS_QUERY)
        assert client.stats["retries"] == 1


@pytest.mark.parametrize(("status", "words"), [(402, "frozen"), (423, "locked")])
def test_frozen_or_locked_shop_is_paused(devshop, status, words):
    devshop.faults(error_next=1, error_status=status)
    with fast(devshop.shop) as client, pytest.raises(ShopifyShopPausedError):
        client.graphql(ORDERS_QUERY)
    assert words in Shop.objects.get(pk=devshop.shop.pk).paused_reason


def test_401_refreshes_once_then_continues(devshop):
    registry = devshop.platform.registry
    pair = registry.grant_tokens(devshop.domain, registry.installed(devshop.domain).scopes, expiring=True)
    cred = ShopCredential.objects.get(shop=devshop.shop)
    cred.access_token = "shpat_not_valid_anymore"
    cred.refresh_token = pair["refresh_token"]
    cred.save()
    with fast(devshop.shop) as client:
        client.graphql(ORDERS_QUERY)
        assert client.stats["refreshes"] == 1
    assert Shop.objects.get(pk=devshop.shop.pk).needs_reauth_reason == ""


def test_revoked_token_marks_the_shop_for_reauth(devshop):
    devshop.faults(revoked_token=True)
    with fast(devshop.shop) as client, pytest.raises(ShopifyAuthError):
        client.graphql(ORDERS_QUERY)
    assert Shop.objects.get(pk=devshop.shop.pk).needs_reauth_reason


def test_bad_query_is_a_query_error(devshop):
    with refused(devshop.shop) as client, pytest.raises(ShopifyQueryError) as info:
        client.graphql("query { orders(first: 1) { nodes { nonsense } } }")
    assert "undefinedField" in info.value.codes


def test_partial_data_is_kept_with_its_errors(devshop):
    # Names are protected customer data this app was not approved for: data comes back, with errors.
    with fast(devshop.shop) as client:
        result = client.graphql("query { customers(first: 3) { nodes { id firstName } } }")
    assert len(result.data["customers"]["nodes"]) == 3
    assert result.errors
    assert {e["extensions"]["code"] for e in result.errors} == {"ACCESS_DENIED"}


def test_pages_never_ask_more_than_the_cap(devshop):
    seen_costs = []
    # The first page (250 orders, 18,502 points) is refused MAX_COST_EXCEEDED on purpose.
    with refused(devshop.shop) as client:
        nodes = list(client.paginate(services.ORDERS_PAGE, variables={"query": None}, connection="orders",
                                     page_size=250, on_page=lambda r: seen_costs.append(r.requested_cost)))
    assert len(nodes) == len(devshop.truth()["orders"])
    assert seen_costs
    assert max(seen_costs) <= MAX_QUERY_COST
