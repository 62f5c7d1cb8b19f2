"""Hypothesis: whatever value a field holds, the normalisers either refuse the record with a reason or
return values Shopify could have sent; the bulk parser keeps the chunk's good lines and never raises."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sync import normalize as nz
from tests.sync.test_normalize import CUSTOMER, ORDER, REFUND, _general, _shopify_jsonl

FUZZ = settings(max_examples=500, deadline=None)
junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["NaN", "-NaN", "Infinity", "-1", "1e400", "0x10", "1_000", "١٢", " 5", "5\n",
                     "2026-02-30T00:00:00Z", "20000-01-01T00:00:00Z", "gid://shopify/Order/",
                     "gid://shopify/Order/-1", "9" * 30]),
    st.text(max_size=30), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                             max_size=2),
)
MONEY = re.compile(nz.MONEY + r"\Z", re.ASCII)
TIME = re.compile(nz.TIME + r"\Z", re.ASCII)

REST_ORDER = {"id": 820982911946154508, "created_at": "2026-10-10T10:00:00+13:00", "updated_at":
              "2026-10-10T10:00:00+13:00", "currency": "NZD", "total_price": "40.00", "subtotal_price": "40.00",
              "customer": {"id": 5001}, "refunds": [{"id": 1, "order_id": 820982911946154508, "created_at":
                                                     "2026-10-12T10:00:00+13:00", "transactions": [
                                                         {"kind": "refund", "status": "success", "amount": "4"}]}]}
REST_FIELDS = ["id", "created_at", "updated_at", "processed_at", "cancelled_at", "total_price", "subtotal_price",
               "current_total_price", "total_price_set", "customer"]


def _row_is_sane(row: nz.Row, money: range, times: range) -> None:
    assert 0 < row[0] < 2**63
    for i in money:
        assert MONEY.match(row[i])
        assert Decimal(row[i]).is_finite()
    for i in times:
        assert row[i] is None or TIME.match(row[i])


@FUZZ
@given(field=st.sampled_from(REST_FIELDS), value=junk)
def test_a_rest_order_is_refused_or_sane(field: str, value: Any) -> None:
    payload = {**REST_ORDER, field: value}
    try:
        row = nz.order_from_rest(payload)
        refunds = [nz.refund_from_rest(r, "NZD") for r in payload["refunds"]]
    except nz.Refused as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        # The reason names the field that holds the value.
        assert reason.startswith(field.removesuffix("_set")) or reason.startswith("customer.id")
        return
    _row_is_sane(row, range(11, 16), range(3, 7))
    for refund in refunds:
        _row_is_sane(refund, range(4, 6), range(2, 4))


@FUZZ
@given(field=st.sampled_from(["id", "createdAt", "updatedAt", "numberOfOrders", "amountSpent"]), value=junk)
def test_a_graphql_customer_is_refused_or_sane(field: str, value: Any) -> None:
    node = {**CUSTOMER, field: {"amount": value} if field == "amountSpent" else value}
    try:
        row = nz.customer_from_graphql(node)
    except nz.Refused:
        return
    _row_is_sane(row, range(0), range(1, 3))
    assert 0 <= row[4] < 2**63
    assert re.fullmatch(nz.SIGNED_MONEY, row[5], re.ASCII)


ORDER_FIELDS = ["id", "createdAt", "processedAt", "updatedAt", "cancelledAt", "totalPriceSet", "subtotalPriceSet",
                "totalRefundedSet", "customer", "refunds"]


@FUZZ
@given(field=st.sampled_from(ORDER_FIELDS), value=junk, wrap=st.booleans())
def test_a_bulk_chunk_with_one_fuzzed_line_keeps_the_others(field: str, value: Any, wrap: bool) -> None:
    if wrap and field.endswith("Set"):
        value = {"shopMoney": {"amount": value}}
    elif wrap and field == "refunds":
        value = [{**REFUND, "totalRefundedSet": {"shopMoney": {"amount": value}}}]
    elif wrap and field == "customer":
        value = {**CUSTOMER, "numberOfOrders": value}
    fuzzed = {**ORDER, "id": "gid://shopify/Order/5100000000300", field: value}
    try:
        data = _shopify_jsonl(ORDER, fuzzed, ORDER)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: JSON Shopify cannot write either
        return
    chunk = nz.bulk_orders_parse(data, shop_id=7)
    assert chunk.orders[0] == chunk.orders[-1] == _general(7, ORDER)
    assert len(chunk.orders) + chunk.rejected.count == 3  # each line kept or named, once
    for line in chunk.orders:
        assert nz._ORDER_SHAPE.problem(line) is None
    for line in chunk.refunds:
        assert nz._REFUND_SHAPE.problem(line) is None
    for line in chunk.customers:
        assert nz._CUSTOMER_SHAPE.problem(line) is None
