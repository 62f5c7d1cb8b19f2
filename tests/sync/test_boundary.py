"""Values Shopify cannot send are refused where they enter a sync: bulk lines and GraphQL pages.

The record is left out and counted on its run with the reason; the rest of its chunk or page is
written. (Webhooks: tests/pages/test_webhook_values.py.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pytest

from sync import normalize as nz
from sync import services
from sync.models import Order, Refund, SyncRun
from tests.sync.test_normalize import CUSTOMER, ORDER, REFUND, _general, _jsonl, _shopify_jsonl

GOOD = {**ORDER, "id": "gid://shopify/Order/5100000000200", "refunds": [REFUND]}


def _bad(**changes: Any) -> dict[str, Any]:
    return {**ORDER, "id": "gid://shopify/Order/5100000000300", **changes}


def _money(amount: Any) -> dict[str, Any]:
    return {"shopMoney": {"amount": amount}}


@pytest.mark.parametrize(("bad", "reason"), [
    (_bad(totalPriceSet=_money("NaN")), "total: 'NaN' is not a value Shopify can send"),
    (_bad(subtotalPriceSet=_money("-1.00")), "subtotal: '-1.00' is not a value Shopify can send"),
    (_bad(currentTotalPriceSet=_money("1e400")), "current_total: '1e400' is not a value Shopify can send"),
    (_bad(totalPriceSet=_money("Infinity")), "total: 'Infinity' is not a value Shopify can send"),
    (_bad(totalPriceSet=_money("12345678901234567")), "total: '12345678901234567' is not a value"),
    (_bad(id="gid://shopify/Order/12abc"), "shopify_id: '0' is not a value Shopify can send"),
    (_bad(id="gid://shopify/Order/99999999999999999999"), "shopify_id: '99999999999999999999' is not"),
    (_bad(createdAt="2026-13-01T00:00:00Z"), "created_at: '2026-13-01T00:00:00Z' is not"),
    # Days that do not exist would reach COPY, which would refuse the whole chunk.
    (_bad(createdAt="2026-02-30T00:00:00Z"), "created_at: '2026-02-30T00:00:00Z' is not"),
    (_bad(processedAt="2026-04-31T00:00:00Z"), "processed_at: '2026-04-31T00:00:00Z' is not"),
    (_bad(updatedAt="2023-02-29T00:00:00Z"), "updated_at: '2023-02-29T00:00:00Z' is not"),
    (_bad(updatedAt="1970-01-01T00:00:00Z"), "updated_at: '1970-01-01T00:00:00Z' is not"),
    (_bad(cancelledAt="soon"), "cancelled_at: 'soon' is not"),
    (_bad(refunds=[{**REFUND, "totalRefundedSet": _money("1600.01")}]),
     "refund gid://shopify/Refund/930000000015: amount 1600.01 exceeds what its order was paid (1600)"),
    (_bad(refunds=[{**REFUND, "totalRefundedSet": _money("-5")}]), "amount: '-5' is not a value"),
    (_bad(customer={**CUSTOMER, "numberOfOrders": "-3"}), "number_of_orders: '-3' is not a value"),
    (_bad(totalPriceSet=_money(12)), "Expected `str | null`, got `int` - at `$.totalPriceSet.shopMoney.amount`"),
])
def test_a_bulk_chunk_keeps_its_good_lines_and_names_the_bad_one(bad: dict[str, Any], reason: str) -> None:
    for encode in (_jsonl, _shopify_jsonl):
        chunk = nz.bulk_orders_parse(encode(ORDER, bad, GOOD), shop_id=7)
        assert chunk.orders == [_general(7, ORDER), _general(7, GOOD)]
        assert chunk.order_ids == [5100000000123, 5100000000200]
        assert (chunk.refund_ids, chunk.refund_order_ids) == ([930000000015], [5100000000200])
        assert chunk.customers == []
        assert chunk.rejected.count == 1
        assert reason in chunk.rejected.examples[0]["reason"]


def test_a_bulk_customer_line_with_a_bad_count_or_id_is_left_out() -> None:
    good = {**CUSTOMER, "id": "gid://shopify/Customer/8"}
    bad_count = {**CUSTOMER, "id": "gid://shopify/Customer/9", "numberOfOrders": "NaN"}
    bad_id = {**CUSTOMER, "id": "gid://shopify/Customer/0"}
    chunk = nz.bulk_customers_parse(_jsonl(CUSTOMER, bad_count, good, bad_id), shop_id=7)
    assert chunk.customer_ids == [7200000000009, 8]
    assert chunk.customers == [f"7\t{nz.copy_line(nz.customer_from_graphql(c))}" for c in (CUSTOMER, good)]
    assert chunk.rejected.count == 2
    assert [e["record"] for e in chunk.rejected.examples] == ["customer gid://shopify/Customer/9",
                                                             "customer gid://shopify/Customer/0"]


def test_a_graphql_page_with_a_bad_node_writes_the_others_and_records_it(db: None) -> None:
    from tests.pages.conftest import shop_install

    shop = shop_install()
    run = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.INCREMENTAL, status=SyncRun.Status.RUNNING)
    nan = {**ORDER, "id": "gid://shopify/Order/1", "totalPriceSet": _money("NaN")}
    over = {**ORDER, "id": "gid://shopify/Order/2", "refunds": [{**REFUND, "totalRefundedSet": _money("9999")}]}
    orders, refunds, customers, _ = services._order_rows_from_nodes([nan, GOOD, over], run=run)
    assert [o[0] for o in orders] == [5100000000200]
    assert [r[0] for r in refunds] == [930000000015]
    rows = services._customer_rows([CUSTOMER, {**CUSTOMER, "id": "gid://shopify/Customer/5",
                                               "amountSpent": {"amount": "NaN"}}], run=run)
    assert [c[0] for c in rows] == [7200000000009]
    assert run.state["rejected"] == {"count": 3, "examples": [
        {"record": "order gid://shopify/Order/1", "reason": "totalPriceSet: 'NaN' is not a non-negative amount "
                                                            "Shopify can send"},
        {"record": "order gid://shopify/Order/2", "reason": "refund 930000000015: amount 9999 exceeds what its "
                                                            "order was paid (1600)"},
        {"record": "customer gid://shopify/Customer/5", "reason": "amountSpent: 'NaN' is not an amount Shopify "
                                                                  "can send"}]}


def _negative_total_once(chunks: Iterable[bytes], hit: list[int]) -> Iterator[bytes]:
    """The result file with the first order's total made negative (same length: Content-Length holds)."""
    for chunk in chunks:
        if not hit:
            match = re.search(rb'"totalPriceSet":\{"shopMoney":\{"amount":"\d', chunk)
            if match is not None:
                start = chunk.rfind(b"\n", 0, match.start()) + 1
                hit.append(int(orjson.loads(chunk[start:chunk.index(b"\n", start)])["id"].rsplit("/", 1)[1]))
                chunk = chunk[:match.end() - 1] + b"-" + chunk[match.end():]
        yield chunk


def test_a_backfill_leaves_out_a_bad_bulk_line_writes_the_rest_and_succeeds(devshop: Any, transactional_db: None,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        client: Any) -> None:
    served = devshop.store.bulk_result
    hit: list[int] = []

    def tampered(op_id: Any, **kw: Any) -> tuple[int, dict[str, str], Iterable[bytes]]:
        status, headers, chunks = served(op_id, **kw)
        return status, headers, _negative_total_once(chunks, hit)

    monkeypatch.setattr(devshop.store, "bulk_result", tampered)
    run = services.backfill_create(shop=devshop.shop)
    assert services.backfill_run(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    [bad] = hit
    assert run.state["rejected"]["count"] == 1
    [example] = run.state["rejected"]["examples"]
    assert example["record"] == f"order gid://shopify/Order/{bad}"
    assert example["reason"].startswith("total: '-")
    assert not Order.objects.filter(shop=devshop.shop, shopify_id=bad).exists()
    assert not Refund.objects.filter(shop=devshop.shop, order_shopify_id=bad).exists()
    assert Order.objects.filter(shop=devshop.shop).count() == devshop.store.order_count() - 1
    # The Data page says what was left out, and why.
    from tests.pages.conftest import Pages

    page = Pages(client, devshop.shop).get("/app/data").content.decode()
    assert "The last sync left out 1 record holding a value Shopify cannot send" in page
    assert f"order gid://shopify/Order/{bad} (total: &#x27;-" in page
