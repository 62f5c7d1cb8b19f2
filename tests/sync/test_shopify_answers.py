"""Every refusal a live store can give a sync, pinned: the run records it in words a merchant
understands, the Data page shows it, and no row is lost or written twice."""

from __future__ import annotations

from typing import Any

import pytest

from sync import outcomes, services
from sync.client import ShopifyClient, ShopifyQueryError, ShopifyTransientError
from sync.models import Customer, Order, Refund, SyncRun
from sync.selectors import sync_problem
from tests.pages.conftest import Pages
from tests.shopify_guard import refused_http
from tests.sync.exact import mismatches

# The orders bulk query as the app sent it before it knew Shopify's bulk rules: refund line items
# (a connection) inside `refunds` (a list). Live stores answer INVALID.
CONNECTION_IN_LIST = """{ orders { edges { node { id refunds { id
  refundLineItems { edges { node { subtotalSet { shopMoney { amount } } } } } } } } } }"""


def _backfill(devshop: Any, **kwargs: Any) -> tuple[str, SyncRun]:
    run = services.backfill_create(shop=devshop.shop)
    outcome = services.backfill_run(run_id=run.pk, **kwargs)
    return outcome, SyncRun.objects.get(pk=run.pk)


def _data_page(client: Any, devshop: Any) -> str:
    response = Pages(client, devshop.shop).get("/app/data")
    assert response.status_code == 200
    return response.content.decode()


def test_an_invalid_bulk_query_fails_the_run_in_words_and_writes_no_order(devshop, transactional_db, monkeypatch,
                                                                         client):
    real = services.bulk_query
    monkeypatch.setattr(services, "bulk_query",
                        lambda kind, search=None, **kw: CONNECTION_IN_LIST if kind == "orders" else real(kind, search))
    # Sent on purpose, so under a User-Agent of its own: the session's Shopify guard checks the app's.
    http = refused_http()
    outcome, run = _backfill(devshop, client_factory=lambda shop: ShopifyClient.for_shop(shop, http=http))
    assert outcome == "failed"
    assert run.status == SyncRun.Status.FAILED
    assert run.error == outcomes.CODES["INVALID"]
    # Shopify's own message is kept for support, beside the merchant's sentence.
    assert "connection field within a list field" in run.state["error_detail"]
    assert not Order.objects.filter(shop=devshop.shop).exists()
    assert Customer.objects.filter(shop=devshop.shop).count() == len(devshop.truth()["customers"])
    problem = sync_problem(shop=devshop.shop)
    assert problem is not None
    assert (problem["failed"], problem["error"]) == (True, outcomes.CODES["INVALID"])
    page = _data_page(client, devshop)
    assert 'data-testid="sync-problem"' in page
    assert "Importing the order history stopped: Shopify refused the export Tenure asked for as invalid" in page


def test_a_failed_export_with_partial_data_is_read_again_whole(devshop, transactional_db):
    """FAILED with INTERNAL_SERVER_ERROR and a partialDataUrl: the partial file is not read; a fresh
    operation carries everything, and nothing is written twice."""
    devshop.faults(bulk_fail=True)
    ended: list[dict[str, Any]] = []

    def heal(run: SyncRun) -> None:
        for ph in run.state.get("phases", {}).values():
            if ph.get("ended") and not ended:
                ended.extend(ph["ended"])
                devshop.faults(bulk_fail=False)

    outcome, run = _backfill(devshop, on_progress=heal)
    assert outcome == "succeeded", run.error
    assert ended[0]["status"] == "FAILED"
    assert ended[0]["errorCode"] == "INTERNAL_SERVER_ERROR"
    assert ended[0]["partial"] is True
    problems = mismatches(devshop.shop, devshop.truth())
    assert not problems, "\n".join(problems[:20])
    assert run.error == ""  # the run succeeded: nothing left to show
    assert sync_problem(shop=devshop.shop) is None


def test_an_export_that_keeps_failing_is_retried_later_and_says_so(devshop, transactional_db, client):
    devshop.faults(bulk_fail=True)
    with pytest.raises(ShopifyTransientError):
        _backfill(devshop)
    run = SyncRun.objects.get(shop=devshop.shop)
    assert run.status == SyncRun.Status.RUNNING  # Celery retries the task; the run resumes
    assert run.error == outcomes.bulk_outcome("FAILED", "INTERNAL_SERVER_ERROR", partial=True)
    assert "Shopify had an internal error" in run.error
    assert len(run.state["phases"]["customers"]["ended"]) == 3
    page = _data_page(client, devshop)
    assert "Importing the order history is retrying: Shopify had an internal error" in page
    # The retry, once Shopify is well again, completes the same run exactly.
    devshop.faults(bulk_fail=False)
    assert services.backfill_run(run_id=run.pk) == "succeeded"
    assert not mismatches(devshop.shop, devshop.truth())
    assert sync_problem(shop=devshop.shop) is None


def test_an_expired_result_file_is_exported_again(devshop, transactional_db):
    # The URL expires at once: the download is refused, the operation reads EXPIRED, a new one runs.
    devshop.faults(bulk_expire=0)
    seen: list[dict[str, Any]] = []

    def heal(run: SyncRun) -> None:
        for ph in run.state.get("phases", {}).values():
            if ph.get("ended") and not seen:
                seen.extend(ph["ended"])
                devshop.faults(bulk_expire=None)

    outcome, run = _backfill(devshop, on_progress=heal)
    if outcome != "succeeded":
        pytest.fail(f"{outcome}: {run.error} {run.state.get('error_detail')}")
    assert not mismatches(devshop.shop, devshop.truth())


def test_a_sixth_export_waits_for_a_free_slot(devshop, transactional_db, monkeypatch, client):
    """Five operations already running (other apps, or ours): Shopify answers OPERATION_IN_PROGRESS;
    the run says so and is retried, and completes once a slot is free."""
    devshop.faults(bulk_delay=600)
    with ShopifyClient.for_shop(devshop.shop) as other:
        held = [other.bulk_run("{ customers { edges { node { id } } } }") for _ in range(5)]
        with pytest.raises(ShopifyQueryError) as refused:
            other.bulk_run("{ customers { edges { node { id } } } }")
    assert "OPERATION_IN_PROGRESS" in refused.value.codes
    monkeypatch.setattr(services.time, "sleep", lambda s: None)
    with pytest.raises(ShopifyTransientError):
        _backfill(devshop)
    run = SyncRun.objects.get(shop=devshop.shop)
    assert run.error == outcomes.CODES["OPERATION_IN_PROGRESS"]
    assert "five" in run.error
    devshop.faults(bulk_delay=None)
    with ShopifyClient.for_shop(devshop.shop) as other:
        for op in held:
            other.graphql("mutation C($id: ID!) { bulkOperationCancel(id: $id) { userErrors { message } } }",
                          {"id": op})
    assert services.backfill_run(run_id=run.pk) == "succeeded"
    assert not mismatches(devshop.shop, devshop.truth())


def test_refund_line_items_are_read_by_id_in_slices_when_asked(devshop, transactional_db, client, monkeypatch):
    """The bulk file holds refunds without line items: their subtotal stays unknown until read. The
    reads run in slices (a worker's time each), resume where the last one stopped, and set every
    subtotal exactly; a replay reads nothing again."""
    outcome, run = _backfill(devshop)
    assert outcome == "succeeded", run.error
    refunds = Refund.objects.filter(shop=devshop.shop)
    n = refunds.count()
    assert n > 5
    assert services.refund_lines_unread(shop=devshop.shop) == n
    assert mismatches(devshop.shop, devshop.truth()) == []  # unknown is not wrong
    assert mismatches(devshop.shop, devshop.truth(), strict=True)  # but it is not read either
    # A zero budget stops after the first request (of two refunds: the guess is set high), then "more".
    monkeypatch.setattr(services, "REFUND_LINES_COST_GUESS", 400.0)
    assert services.refund_lines_run(shop=devshop.shop, budget_s=0) == "more"
    running = SyncRun.objects.get(shop=devshop.shop, kind=SyncRun.Kind.REFUND_LINES)
    assert running.objects_seen == 2
    assert running.object_count == n
    assert 'data-testid="refund-lines"' in _data_page(client, devshop)
    assert services.refund_lines_run(shop=devshop.shop) == "succeeded"
    done = SyncRun.objects.get(pk=running.pk)
    assert (done.status, done.objects_seen, done.state["not_found"]) == (SyncRun.Status.SUCCEEDED, n, 0)
    assert services.refund_lines_unread(shop=devshop.shop) == 0
    assert mismatches(devshop.shop, devshop.truth(), strict=True) == []
    # Nothing left: no request, no new run; and nothing queued again until the next sync.
    assert services.refund_lines_run(shop=devshop.shop) == "nothing to do"
    assert services.refund_lines_later(shop=devshop.shop) is False


def test_refund_lines_are_asked_for_only_where_a_setting_needs_them(devshop, transactional_db, monkeypatch):
    from analytics import services as analytics_services

    asked: list[int] = []
    monkeypatch.setattr("sync.tasks.backfill_refund_lines.delay", lambda shop_id: asked.append(shop_id))
    _backfill(devshop)
    analytics_services.snapshot_refresh(shop=devshop.shop, predictive=False)
    assert asked == []  # refunds on the order's date (the default): the line items are not needed
    saved, errors = analytics_services.settings_update(shop=devshop.shop, data={"refund_dating": "refund_date"})
    assert errors == {}
    assert asked == [devshop.shop.pk]
    # A refund Shopify no longer has stays unknown; once a read asked for it, it is not asked again
    # until the next sync.
    assert services.refund_lines_run(shop=devshop.shop) == "succeeded"
    ghost = Refund.objects.filter(shop=devshop.shop).first()
    Refund.objects.filter(pk=ghost.pk).update(subtotal_amount=None, shopify_id=1)
    assert services.refund_lines_run(shop=devshop.shop) == "succeeded"
    assert SyncRun.objects.filter(kind=SyncRun.Kind.REFUND_LINES).latest("created_at").state["not_found"] == 1
    analytics_services.snapshot_refresh(shop=devshop.shop, predictive=False)
    assert asked == [devshop.shop.pk]


def test_an_export_without_the_scope_fails_access_denied_and_says_what_to_do(transactional_db, settings, client):
    """A token without read_customers: Shopify accepts the export, which then ends FAILED with
    ACCESS_DENIED. No retry can cure that: the run stops and tells the merchant to approve again."""
    from tests.sync.conftest import devshop_make

    ds = devshop_make(scopes="read_orders,read_all_orders")
    settings.SHOPIFY_API_BASE_URL = ds.server.base_url
    try:
        outcome, run = _backfill(ds)
        assert outcome == "failed"
        assert run.status == SyncRun.Status.FAILED
        assert run.error == outcomes.CODES["ACCESS_DENIED"]
        assert run.state["phases"]["customers"]["ended"][0]["errorCode"] == "ACCESS_DENIED"
        assert not Customer.objects.filter(shop=ds.shop).exists()
        page = _data_page(client, ds)
        assert "Open Tenure from the Shopify admin and approve the permissions it asks for" in page
    finally:
        ds.server.stop()


def test_a_timed_out_export_is_retried_and_named(devshop, transactional_db):
    devshop.faults(bulk_fail="TIMEOUT")
    with pytest.raises(ShopifyTransientError):
        _backfill(devshop)
    run = SyncRun.objects.get(shop=devshop.shop)
    assert run.error.startswith(outcomes.CODES["TIMEOUT"])
    assert {e["errorCode"] for e in run.state["phases"]["customers"]["ended"]} == {"TIMEOUT"}
    devshop.faults(bulk_fail=None)
    assert services.backfill_run(run_id=run.pk) == "succeeded"
    assert not mismatches(devshop.shop, devshop.truth())


def test_throttled_past_the_clients_patience_is_retried_and_named(devshop, transactional_db):
    """A bucket that refills at a point a minute: the backfill's first requests drain it and Shopify
    answers THROTTLED; a client that may wait only once gives up, and the run says why."""
    devshop.faults(throttle_bucket_size=12, throttle_restore_rate=0.02)

    def impatient(shop):
        return ShopifyClient.for_shop(shop, max_throttle_waits=1, sleep=lambda s: None)

    with pytest.raises(ShopifyTransientError) as raised:
        _backfill(devshop, client_factory=impatient)
    assert raised.value.code == "THROTTLED"
    run = SyncRun.objects.get(shop=devshop.shop)
    assert run.status == SyncRun.Status.RUNNING  # retried by Celery later
    assert run.error == outcomes.CODES["THROTTLED"]
    assert "THROTTLED" in run.state["error_detail"]
    devshop.faults(throttle_bucket_size=None, throttle_restore_rate=None)


@pytest.mark.parametrize(("error", "words"), [
    (ShopifyQueryError("refused", [{"extensions": {"code": "MAX_COST_EXCEEDED", "cost": 2500}}]),
     outcomes.CODES["MAX_COST_EXCEEDED"]),
    (ShopifyQueryError("refused", [{"extensions": {"code": "THROTTLED"}}]), outcomes.CODES["THROTTLED"]),
    (ShopifyQueryError("refused", [{"extensions": {"code": "INTERNAL_SERVER_ERROR"}}]),
     outcomes.CODES["INTERNAL_SERVER_ERROR"]),
    (ShopifyTransientError("INTERNAL_SERVER_ERROR after retries", code="INTERNAL_SERVER_ERROR"),
     outcomes.CODES["INTERNAL_SERVER_ERROR"]),
    (ShopifyTransientError("ReadTimeout after 6 attempts"),
     "Shopify did not answer in time (ReadTimeout after 6 attempts). " + outcomes.RETRY),
])
def test_each_code_reads_as_words(error, words):
    assert outcomes.explain(error) == words
    assert outcomes.detail(error).startswith(f"{error.__class__.__name__}: {error}")
