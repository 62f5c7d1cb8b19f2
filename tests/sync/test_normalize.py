"""The bulk fast path writes exactly what the general normalisers write."""

from sync import normalize as nz

ORDER = {
    "id": "gid://shopify/Order/5100000000123", "name": "#10\t01", "createdAt": "2025-01-02T03:04:05Z",
    "processedAt": "2025-01-02T03:04:06Z", "updatedAt": "2025-02-02T03:04:05Z", "cancelledAt": None, "test": True,
    "displayFinancialStatus": "PARTIALLY_REFUNDED", "currencyCode": "JPY", "presentmentCurrencyCode": "EUR",
    "subtotalPriceSet": {"shopMoney": {"amount": "1500", "currencyCode": "JPY"}},
    "currentSubtotalPriceSet": {"shopMoney": {"amount": "1000"}},
    "totalPriceSet": {"shopMoney": {"amount": "1600"}}, "currentTotalPriceSet": {"shopMoney": {"amount": "1100"}},
    "totalRefundedSet": {"shopMoney": {"amount": "500"}}, "tags": ['say "hi"', "back\\slash", "vip"],
    "customer": {"id": "gid://shopify/Customer/7200000000009"},
}
GUEST = {**ORDER, "customer": None, "tags": [], "cancelledAt": "2025-03-01T00:00:00Z", "processedAt": None,
         "subtotalPriceSet": None}
CUSTOMER = {"id": "gid://shopify/Customer/7200000000009", "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": "2025-01-01T00:00:00Z", "numberOfOrders": "12",
            "amountSpent": {"amount": "123.45", "currencyCode": "NZD"}, "tags": ["a,b"],
            "statistics": {"rfmGroup": "CHAMPIONS"}}


def test_order_fast_line_equals_general_path():
    for node in (ORDER, GUEST):
        assert nz.order_copy_line(node) == nz.copy_line(nz.order_from_graphql(node))


def test_customer_fast_line_equals_general_path():
    assert nz.customer_copy_line(CUSTOMER) == nz.copy_line(nz.customer_from_graphql(CUSTOMER))
    bare = {**CUSTOMER, "statistics": {"rfmGroup": None}, "tags": []}
    assert nz.customer_copy_line(bare) == nz.copy_line(nz.customer_from_graphql(bare))


def test_gid_and_numeric_id_are_one_id():
    assert nz.gid_id("gid://shopify/Order/42") == nz.gid_id(42) == nz.gid_id("42") == 42


def test_rest_order_and_graphql_order_normalise_alike():
    rest = {"id": 5100000000123, "name": "#1001", "created_at": "2025-01-02T16:04:05+13:00",
            "processed_at": "2025-01-02T16:04:06+13:00", "updated_at": "2025-02-02T16:04:05+13:00",
            "cancelled_at": None, "test": False, "financial_status": "partially_refunded", "currency": "NZD",
            "presentment_currency": "NZD", "subtotal_price": "15.00",
            "subtotal_price_set": {"shop_money": {"amount": "15.00"}}, "current_subtotal_price": "10.00",
            "total_price": "16.00", "current_total_price": "11.00", "tags": "gift, vip",
            "customer": {"id": 7200000000009},
            "refunds": [{"id": 1, "order_id": 5100000000123, "created_at": "2025-01-03T00:00:00Z",
                         "refund_line_items": [{"subtotal": 5.0,
                                                "subtotal_set": {"shop_money": {"amount": "5.00"}}}],
                         "transactions": [{"kind": "refund", "status": "success", "amount": "5.00",
                                           "currency": "NZD"}]}]}
    row = nz.order_from_rest(rest)
    assert row[0] == 5100000000123
    assert row[2] == 7200000000009
    assert row[8] == "PARTIALLY_REFUNDED"
    assert row[11:16] == ("15.00", "10.00", "16.00", "11.00", "5.00")
    assert row[16] == ["gift", "vip"]
    refund = nz.refund_from_rest(rest["refunds"][0], "NZD")
    assert refund[4:6] == ("5.00", "5.00")
