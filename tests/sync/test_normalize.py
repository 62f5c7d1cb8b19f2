"""The bulk fast path writes exactly what the general normalisers write."""

import orjson

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


REFUND = {"id": "gid://shopify/Refund/930000000015", "createdAt": "2025-01-05T12:31:01Z",
          "processedAt": "2025-01-05T12:30:00Z", "updatedAt": "2025-01-06T12:31:01Z",
          "totalRefundedSet": {"shopMoney": {"amount": "78.73"}}}
ESCAPES = {**ORDER, "name": "tab\there", "tags": ["new\nline", 'q"uote', "{brace}", "a,b"]}


def _general(shop_id, node):
    return f"{shop_id}\t" + nz.copy_line(nz.order_from_graphql(node))


def _jsonl(*objs):
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


def _shopify_jsonl(*objs):
    """Lines as Shopify's result files write them: every `/` escaped (`gid:\\/\\/shopify\\/Order\\/1`), and
    `&`, `<`, `>` as `\\u0026`, `\\u003c`, `\\u003e`."""
    out = _jsonl(*objs)
    for raw, escaped in ((b"/", b"\\/"), (b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e")):
        out = out.replace(raw, escaped)
    return out


def test_bulk_order_lines_equal_the_general_path():
    order_with_refund = {**GUEST, "id": "gid://shopify/Order/5100000000124", "refunds": [REFUND]}
    # Without a backslash in the chunk (the plain formatter) and with one (the escaping formatter),
    # in devstore's plain bytes and in Shopify's escaped ones.
    for encode in (_jsonl, _shopify_jsonl):
        for nodes in ([ORDER, GUEST], [ORDER, ESCAPES]):
            chunk = nz.bulk_orders_parse(encode(*nodes, order_with_refund), shop_id=7)
            assert chunk.orders == [_general(7, n) for n in (*nodes, order_with_refund)]
            assert chunk.order_ids == [nz.gid_id(n["id"]) for n in (*nodes, order_with_refund)]
            assert (chunk.refund_ids, chunk.refund_order_ids) == ([930000000015], [5100000000124])
            refund = nz.refund_from_graphql(REFUND, 5100000000124)
            # Refund.processedAt is read, not copied from createdAt; the subtotal is read later.
            assert refund[2:4] == ("2025-01-05T12:31:01Z", "2025-01-05T12:30:00Z")
            assert refund[5] is None
            assert chunk.refunds == ["7\t" + nz.copy_line(refund[:5] + refund[6:])]
            assert chunk.customers == []  # the order's customer came as an id only


def test_shopify_slash_escapes_keep_the_fast_path():
    """Shopify escapes every `/`: that alone must not send a chunk through the escaping pass."""
    plain = _shopify_jsonl({**ORDER, "name": "#1001", "tags": ["vip", "b&b <3>"]}, {**GUEST, "name": "#1002"})
    assert b"\\/" in plain
    assert not nz._needs_escaping(plain)
    assert nz._needs_escaping(_shopify_jsonl(ORDER, ESCAPES))  # a tab, quote or backslash does
    # An escaped backslash just before a slash is still seen.
    assert nz._needs_escaping(_shopify_jsonl({**GUEST, "tags": ["a\\"]}))


def test_escaped_values_survive_copy_into_postgresql(db):
    from django.db import connection

    line = nz.bulk_orders_parse(_jsonl(ESCAPES), shop_id=1).orders[0]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t (shop bigint, id bigint, name text, rest text, tags text[])")
        with cursor.cursor.copy("COPY t (shop, id, name, rest, tags) FROM STDIN") as copy:
            fields = line.split("\t")
            copy.write("\t".join([*fields[:3], "-", fields[-1]]))
        cursor.execute("SELECT name, tags FROM t")
        assert cursor.fetchone() == ("tab\there", ["new\nline", 'q"uote', "{brace}", "a,b"])


def test_bulk_customer_lines_equal_the_general_path():
    bare = {**CUSTOMER, "id": "gid://shopify/Customer/7200000000010", "statistics": {"rfmGroup": None}, "tags": [],
            "amountSpent": None, "numberOfOrders": 0}
    chunk = nz.bulk_customers_parse(_jsonl(CUSTOMER, bare), shop_id=3)
    assert chunk.customers == ["3\t" + nz.copy_line(nz.customer_from_graphql(c)) for c in (CUSTOMER, bare)]
    assert chunk.customer_ids == [7200000000009, 7200000000010]
    # Customers read whole with their orders (incremental bulk syncs) come out as customer rows too.
    order = {**ORDER, "customer": CUSTOMER}
    chunk = nz.bulk_orders_parse(_jsonl(order), shop_id=3)
    assert chunk.customers == ["3\t" + nz.copy_line(nz.customer_from_graphql(CUSTOMER))]
    assert chunk.orders == [_general(3, order)]


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


def test_a_customer_webhook_without_tags_keeps_the_tags_we_hold(db) -> None:
    """Since API 2025-01 customers/update carries no tags: the row keeps its own."""
    from django.db import transaction

    from shops.models import Shop
    from sync.models import Customer
    from sync.services import rows_write

    shop = Shop.objects.create(domain="tags.myshopify.com", currency="USD")
    graphql = {"id": "gid://shopify/Customer/77", "createdAt": "2026-01-01T00:00:00Z",
               "updatedAt": "2026-01-02T00:00:00Z", "tags": ["vip", "b2b"], "numberOfOrders": "2",
               "amountSpent": {"amount": "10.00", "currencyCode": "USD"}, "statistics": {"rfmGroup": "LOYAL"}}
    with transaction.atomic():
        rows_write(shop_id=shop.pk, currency="USD", customers=[nz.customer_from_graphql(graphql)])
    rest = {"id": 77, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-03T00:00:00Z"}
    with transaction.atomic():
        rows_write(shop_id=shop.pk, currency="USD", customers=[nz.customer_from_rest(rest)])
    row = Customer.objects.get(shop=shop, shopify_id=77)
    assert row.tags == ["vip", "b2b"]
    assert row.updated_at.isoformat().startswith("2026-01-03")
    assert (row.number_of_orders, row.rfm_group) == (2, "LOYAL")
    with transaction.atomic():
        rows_write(shop_id=shop.pk, currency="USD",
                   customers=[nz.customer_from_rest({**rest, "updated_at": "2026-01-04T00:00:00Z", "tags": "x"})])
    assert Customer.objects.get(shop=shop, shopify_id=77).tags == ["x"]
    with transaction.atomic():
        rows_write(shop_id=shop.pk, currency="USD", customers=[nz.customer_from_rest({"id": 78, **{
            k: v for k, v in rest.items() if k != "id"}})])
    assert Customer.objects.get(shop=shop, shopify_id=78).tags == []
