"""devstore's payloads against the example payloads in Shopify's docs: every key, every value's kind.

Each example below is the docs' own, trimmed to what devstore serves (the trimming is said where
it is done), with the page it comes from. devstore is driven over raw HTTP (webhooks received by
a local endpoint, GraphQL and OAuth with httpx) and each payload is compared with
``tests.devstore.doc_shape.shape_diff``: the set of keys at each level, and each value's JSON type
and, for strings, the format the docs show (GID, timestamp with ``Z`` or an offset, decimal
money, digits, UUID, URL).

Where devstore serves a documented object only in part (the REST Order, Refund, Customer and Shop
resources), the check runs with ``exact=False``: devstore may leave out what the app never reads
(addresses, discounts, fulfillments, shipping lines, most of the shop's settings...), but every
key it sends is one the example has, with the example's kind; a ``required`` set names the keys
the app reads, so those cannot go missing.

Sources (read with the docs search; the webhook samples from the 2026-07 edition of the reference,
the latest one stored, whose samples for these topics are what 2026-10 documents):
- webhooks: https://shopify.dev/docs/api/webhooks/2026-10?reference=toml (topic samples, Headers)
- cost: https://shopify.dev/docs/api/usage/limits#graphql-response
- bulk: https://shopify.dev/docs/api/usage/bulk-operations/queries
- tokens: https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/token-exchange,
  .../access-tokens/offline-access-tokens, .../access-tokens/authorization-code-grant
- session token: https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import orjson
import pytest

from devstore.testing import DevStore, ShopSpec, wait_until
from tests.devstore.doc_shape import shape_diff, string_kind
from tests.devstore.gql import NOW, Api, api_shop
from tests.devstore.platform_support import API_KEY, APP_URL, SECRET, Receiver, ShopClient, receiver_serve


def money_set(amount: str) -> dict[str, Any]:
    """The docs' `*_set` MoneyBag: shop and presentment money, amounts as decimal strings."""
    return {"shop_money": {"amount": amount, "currency_code": "USD"},
            "presentment_money": {"amount": amount, "currency_code": "USD"}}


# --- webhook samples ------------------------------------------------------------------------------
# https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-orders/create
# (orders/updated, orders/cancelled, orders/fulfilled show the same order). Every top-level key of
# the sample is here; nested objects devstore does not send are cut down to their first keys.
ADDRESS = {  # the sample's customer.default_address
    "id": 715243470612851245, "customer_id": 115310627314723954, "first_name": "John", "last_name": "Smith",
    "company": None, "address1": "123 Elm St.", "address2": None, "city": "Ottawa", "province": "Ontario",
    "country": "Canada", "zip": "K2H7A8", "phone": "123-123-1234", "name": "John Smith",
    "province_code": "ON", "country_code": "CA", "country_name": "Canada", "default": True,
}
ORDER_CUSTOMER = {
    "id": 115310627314723954, "created_at": None, "updated_at": None, "first_name": "John",
    "last_name": "Smith", "state": "disabled", "note": None, "verified_email": True,
    "multipass_identifier": None, "tax_exempt": False, "email": "john@example.com", "phone": None,
    "currency": "USD", "tax_exemptions": [], "admin_graphql_api_id": "gid://shopify/Customer/115310627314723954",
    "default_address": ADDRESS,
}
LINE_ITEM = {
    "id": 487817672276298554, "admin_graphql_api_id": "gid://shopify/LineItem/487817672276298554",
    "attributed_staffs": [{"id": "gid://shopify/StaffMember/902541635", "quantity": 1}],
    "current_quantity": 1, "fulfillable_quantity": 1, "fulfillment_service": "manual", "fulfillment_status": None,
    "gift_card": False, "grams": 100, "name": "Aviator sunglasses", "price": "89.99",
    "price_set": money_set("89.99"), "product_exists": True, "product_id": 788032119674292922,
    "properties": [], "quantity": 1, "requires_shipping": True, "sales_line_item_group_id": None,
    "sku": "SKU2006-001", "taxable": True, "title": "Aviator sunglasses", "total_discount": "0.00",
    "total_discount_set": money_set("0.00"), "variant_id": None, "variant_inventory_management": None,
    "variant_title": None, "vendor": None, "tax_lines": [], "duties": [], "discount_allocations": [],
}
ORDER_SAMPLE = {
    "id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508", "app_id": None,
    "browser_ip": None, "buyer_accepts_marketing": True, "cancel_reason": "customer",
    "cancelled_at": "2021-12-31T19:00:00-05:00", "cart_token": None, "checkout_token": None,
    "client_details": None, "closed_at": None, "confirmation_number": None, "confirmed": False,
    "contact_email": "jon@example.com", "created_at": "2021-12-31T19:00:00-05:00", "currency": "USD",
    "current_shipping_price_set": money_set("0.00"), "current_subtotal_price": "414.95",
    "current_subtotal_price_set": money_set("414.95"), "current_total_additional_fees_set": None,
    "current_total_discounts": "0.00", "current_total_discounts_set": money_set("0.00"),
    "current_total_duties_set": None, "current_total_price": "414.95",
    "current_total_price_set": money_set("414.95"), "current_total_tax": "0.00",
    "current_total_tax_set": money_set("0.00"), "customer_locale": "en", "device_id": None,
    "discount_codes": [], "duties_included": False, "email": "jon@example.com", "estimated_taxes": False,
    "financial_status": "voided", "fulfillment_status": None, "landing_site": None, "landing_site_ref": None,
    "location_id": None, "merchant_business_entity_id": "MTU0ODM4MDAwOQ", "merchant_of_record_app_id": None,
    "name": "#9999", "note": None, "note_attributes": [], "number": 234, "order_number": 1234,
    "order_status_url": "https://jsmith.myshopify.com/548380009/orders/123456abcd/authenticate?key=abcdefg",
    "original_total_additional_fees_set": None, "original_total_duties_set": None,
    "payment_gateway_names": ["visa", "bogus"], "phone": None, "po_number": None, "presentment_currency": "USD",
    "processed_at": "2021-12-31T19:00:00-05:00", "reference": None, "referring_site": None,
    "source_identifier": None, "source_name": "web", "source_url": None, "subtotal_price": "404.95",
    "subtotal_price_set": money_set("404.95"), "tags": "tag1, tag2", "tax_exempt": False, "tax_lines": [],
    "taxes_included": False, "test": True, "token": "123456abcd",
    "total_cash_rounding_payment_adjustment_set": money_set("0.00"),
    "total_cash_rounding_refund_adjustment_set": money_set("0.00"), "total_discounts": "20.00",
    "total_discounts_set": money_set("20.00"), "total_line_items_price": "414.95",
    "total_line_items_price_set": money_set("414.95"), "total_outstanding": "414.95", "total_price": "404.95",
    "total_price_set": money_set("404.95"), "total_shipping_price_set": money_set("10.00"),
    "total_tax": "0.00", "total_tax_set": money_set("0.00"), "total_tip_received": "0.00", "total_weight": 0,
    "updated_at": "2021-12-31T19:00:00-05:00", "user_id": None,
    "billing_address": {"first_name": "Steve", "address1": "123 Shipping Street"},  # cut down
    "customer": ORDER_CUSTOMER, "discount_applications": [], "fulfillments": [], "line_items": [LINE_ITEM],
    "payment_terms": None, "refunds": [],
    "shipping_address": {"first_name": "Steve", "address1": "123 Shipping Street"},  # cut down
    "shipping_lines": [{"id": 271878346596884015, "title": "Generic Shipping", "price": "10.00"}],  # cut down
    "returns": [], "line_item_groups": [],
}
# What sync.normalize.order_from_rest reads (and what a subset check must never lose).
ORDER_REQUIRED = {
    "id", "admin_graphql_api_id", "name", "customer", "processed_at", "created_at", "updated_at", "cancelled_at",
    "test", "financial_status", "currency", "presentment_currency", "subtotal_price", "subtotal_price_set",
    "current_subtotal_price", "current_subtotal_price_set", "total_price", "total_price_set",
    "current_total_price", "current_total_price_set", "refunds", "tags",
}
# The samples' money is all USD. For a currency without minor units (devstore presents some orders
# in JPY) devstore prints whole amounts, "20607", which no example shows either way.
WHOLE = {"JPY"}
ORDER_NULLABLE = {
    "customer", "cancel_reason", "cancelled_at", "email", "contact_email", "first_name", "last_name", "phone",
    "default_address", "company", "address2", "province", "province_code", "zip",
}

# https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-refunds/create
# The sample's first refund line and first transaction; `line_item` (the whole order line) cut down.
REFUND_SAMPLE = {
    "id": 890088186047892319, "order_id": 820982911946154508, "created_at": "2021-12-31T19:00:00-05:00",
    "note": "Things were damaged", "user_id": 548380009, "processed_at": "2021-12-31T19:00:00-05:00",
    "duties": [], "total_duties_set": money_set("0.00"), "return": None, "refund_shipping_lines": [],
    "restock": False, "admin_graphql_api_id": "gid://shopify/Refund/890088186047892319", "order_adjustments": [],
    "refund_line_items": [{
        "id": 487817672276298627, "quantity": 1, "line_item_id": 487817672276298554, "location_id": None,
        "restock_type": "no_restock", "subtotal": 89.99, "total_tax": 0.0, "subtotal_set": money_set("89.99"),
        "total_tax_set": money_set("0.00"),
        "line_item": {"id": 487817672276298554, "title": "Aviator sunglasses"},  # cut down
    }],
    "transactions": [{
        "id": 245135271310201194, "order_id": 820982911946154508, "kind": "refund", "gateway": "bogus",
        "status": "success", "message": "This is a refund", "created_at": "2019-12-31T19:00:00-05:00",
        "test": False, "authorization": None, "location_id": None, "user_id": None, "parent_id": None,
        "processed_at": None, "device_id": None, "error_code": None, "source_name": "web", "receipt": {},
        "amount": "75.00", "currency": None, "payment_id": "#9999.",
        "total_unsettled_set": {"presentment_money": {"amount": "0.0", "currency": "XXX"},
                                "shop_money": {"amount": "0.0", "currency": "XXX"}},
        "manual_payment_gateway": False, "amount_rounding": None,
        "admin_graphql_api_id": "gid://shopify/OrderTransaction/245135271310201194",
    }],
}
REFUND_REQUIRED = {"id", "admin_graphql_api_id", "order_id", "created_at", "processed_at", "refund_line_items",
                   "transactions", "total_duties_set"}
# A refund's `note` and `user_id` (the staff member) are often null; devstore's transactions carry no message.
REFUND_NULLABLE = {"note", "user_id", "message"}

# https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-customers/update
# (customers/create the same). Since 2025-01 there are no `tags` and no marketing consent here.
CUSTOMER_SAMPLE = {
    "id": 706405506930370084, "created_at": "2021-12-31T19:00:00-05:00", "updated_at": "2021-12-31T19:00:00-05:00",
    "first_name": "Bob", "last_name": "Biller", "state": "disabled", "note": "This customer loves ice cream",
    "verified_email": True, "multipass_identifier": None, "tax_exempt": False, "email": "bob@biller.com",
    "phone": None, "currency": "USD", "addresses": [], "tax_exemptions": [],
    "admin_graphql_api_id": "gid://shopify/Customer/706405506930370084",
    "default_address": {
        "id": 12321, "customer_id": 706405506930370084, "first_name": "Bob", "last_name": "Biller",
        "company": None, "address1": "151 O'Connor Street", "address2": None, "city": "Ottawa", "province": "ON",
        "country": "CA", "zip": "K2P 2L8", "phone": "555-555-5555", "name": "Bob Biller", "province_code": "ON",
        "country_code": "CA", "country_name": "CA", "default": True,
    },
}
CUSTOMER_NULLABLE = ORDER_NULLABLE | {"note"}

# https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#list-of-topics-customers/delete
CUSTOMER_DELETE_SAMPLE = {"id": 706405506930370084, "tax_exemptions": [],
                          "admin_graphql_api_id": "gid://shopify/Customer/706405506930370084"}
# ...#list-of-topics-orders/delete
ORDER_DELETE_SAMPLE = {"id": 820982911946154508}

# ...#list-of-topics-app/uninstalled: the REST Shop resource, all of its keys.
SHOP_SAMPLE = {
    "id": 548380009, "name": "Super Toys", "email": "super@supertoys.com", "domain": None, "province": "Tennessee",
    "country": "US", "address1": "190 MacLaren Street", "zip": "37178", "city": "Houston", "source": None,
    "phone": "3213213210", "latitude": None, "longitude": None, "primary_locale": "en", "address2": None,
    "created_at": None, "updated_at": None, "country_code": "US", "country_name": "United States",
    "currency": "USD", "customer_email": "super@supertoys.com", "timezone": "(GMT-05:00) Eastern Time (US & Canada)",
    "iana_timezone": None, "shop_owner": "John Smith", "money_format": "${{amount}}",
    "money_with_currency_format": "${{amount}} USD", "weight_unit": "kg", "province_code": "TN",
    "taxes_included": None, "auto_configure_tax_inclusivity": None, "tax_shipping": None, "county_taxes": None,
    "plan_display_name": "Shopify Plus", "plan_name": "enterprise", "has_discounts": False, "has_gift_cards": True,
    "myshopify_domain": None, "google_apps_domain": None, "google_apps_login_enabled": None,
    "money_in_emails_format": "${{amount}}", "money_with_currency_in_emails_format": "${{amount}} USD",
    "eligible_for_payments": True, "requires_extra_payments_agreement": False, "password_enabled": None,
    "has_storefront": True, "finances": True, "primary_location_id": 655441491, "checkout_api_supported": True,
    "multi_location_enabled": True, "setup_required": False, "pre_launch_enabled": False,
    "enabled_presentment_currencies": ["USD"], "marketing_sms_consent_enabled_at_checkout": False,
    "transactional_sms_disabled": False,
}
# What shops.services reads from app/uninstalled and shop/update.
SHOP_REQUIRED = {"id", "name", "myshopify_domain", "currency", "iana_timezone", "plan_display_name"}

# ...#list-of-topics-app/scopes_update
SCOPES_UPDATE_SAMPLE = {"id": 1, "shop_id": "gid://shopify/Shop/548380009", "previous": ["read_products"],
                        "current": ["read_products", "write_products"], "updated_at": "2024-06-25T00:00:00.000Z"}

# ...#list-of-topics-bulk_operations/finish
BULK_FINISH_SAMPLE = {"admin_graphql_api_id": "gid://shopify/BulkOperation/147595010",
                      "completed_at": "2024-01-01T07:34:56-05:00", "created_at": "2026-07-01T12:17:28-04:00",
                      "error_code": None, "status": "completed", "type": "query"}

# ...#list-of-topics-customers/data_request, customers/redact, shop/redact
# (also https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance)
COMPLIANCE_CUSTOMER = {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"}
COMPLIANCE_SAMPLES = {
    "customers/data_request": {"shop_id": 954889, "shop_domain": "{shop}.myshopify.com",
                               "customer": COMPLIANCE_CUSTOMER, "orders_requested": [299938, 280263, 220458],
                               "data_request": {"id": 9999}},
    "customers/redact": {"shop_id": 954889, "shop_domain": "{shop}.myshopify.com", "customer": COMPLIANCE_CUSTOMER,
                         "orders_to_redact": [299938, 280263, 220458]},
    "shop/redact": {"shop_id": 954889, "shop_domain": "{shop}.myshopify.com"},
}

# https://shopify.dev/docs/api/webhooks/2026-10?reference=toml#headers (the example delivery).
HEADERS_SAMPLE = {
    "X-Shopify-Topic": "products/update",
    "X-Shopify-Hmac-Sha256": "xT6yH5jZfQm6Q3lC8nA0r7sV2bP9dK1eL4wG0hM5nYI=",
    "X-Shopify-Shop-Domain": "snowdevil.myshopify.com",
    "X-Shopify-API-Version": "2026-07",
    "X-Shopify-Webhook-Id": "545ebdd4-b7be-4d3d-b14e-54aa78e0e0f9",
    "X-Shopify-Triggered-At": "2025-07-10T16:15:47.000000Z",
    "X-Shopify-Event-Id": "59d6d79c-595f-4e7e-bc6f-72f5c3d0c66f",
}
# `X-Shopify-Name` is optional: only for subscriptions given a `name`, which devstore's never are.

TOML = """
name = "Tenure"
application_url = "https://example.invalid"
[access_scopes]
scopes = "read_orders,read_all_orders,read_customers"
[webhooks]
api_version = "2026-10"
  [[webhooks.subscriptions]]
  topics = ["app/uninstalled", "app/scopes_update", "bulk_operations/finish", "orders/create", "orders/updated",
            "orders/cancelled", "orders/delete", "refunds/create", "customers/create", "customers/update",
            "customers/delete"]
  uri = "/webhooks"
  [[webhooks.subscriptions]]
  compliance_topics = ["customers/data_request", "customers/redact", "shop/redact"]
  uri = "/webhooks/compliance"
"""
LIVE_TOPICS = {"orders/create", "orders/updated", "orders/cancelled", "orders/delete", "refunds/create",
               "customers/create", "customers/update", "customers/delete"}
BULK_RUN = ('mutation { bulkOperationRunQuery(query: """{ customers { edges { node { id } } } }""") {'
            " bulkOperation { id status } userErrors { field message } } }")


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """Every topic devstore delivers, received over HTTP: live trading, compliance, scopes, bulk, uninstall."""
    toml = tmp_path_factory.mktemp("toml") / "shopify.app.toml"
    toml.write_text(TOML)
    spec = ShopSpec(name="docs", seed=5, customers=30, months=3, currency="NZD", iana_timezone="Pacific/Auckland",
                    now=NOW)
    with receiver_serve() as receiver, DevStore([spec], api_key=API_KEY, api_secret=SECRET, app_url=receiver.url,
                                               toml_path=toml, retry_scale=1e-4) as ds:
        ds.install("docs")
        for _ in range(30):  # deterministic for the seed; a few steps cover every live topic
            ds.live_step("docs", events=10)
            if set(receiver.topics()) >= LIVE_TOPICS:
                break
        customer = next(c for c in ds.ground_truth("docs").customers if c["number_of_orders"])["shopify_id"]
        for topic in COMPLIANCE_SAMPLES:
            ds.trigger_compliance(topic, "docs", customer_id=customer)
        ds.install("docs", scopes="read_orders,read_customers")  # another grant: app/scopes_update
        registry = ds.platform.registry
        token = registry.grant_tokens(spec.domain, registry.grants[spec.domain], expiring=False)["access_token"]
        started = ShopClient(ds.base_url, spec.domain).graphql(token, BULK_RUN).json()
        assert started["data"]["bulkOperationRunQuery"]["userErrors"] == [], started
        assert wait_until(lambda: "bulk_operations/finish" in receiver.topics(), timeout=20)
        ds.uninstall("docs")
        assert ds.wait_webhooks(10)
        yield receiver


def payloads(sink: Receiver, topic: str) -> list[Any]:
    got = [r.json() for r in sink.received if r.topic == topic]
    assert got, f"devstore delivered no {topic}"
    return got


# --- the comparison itself ------------------------------------------------------------------------


def test_shape_diff_reports_kinds_keys_and_nulls() -> None:
    doc = {"id": 1, "gid": "gid://shopify/Order/1", "at": "2021-12-31T19:00:00-05:00", "price": "89.99",
           "note": None, "items": [{"n": 1}], "tags": "a"}
    assert shape_diff(doc, doc) == []
    bad = {"id": "1", "gid": 1, "at": "2021-12-31T19:00:00Z", "price": 89.99, "note": {"x": 1},
           "items": [{"n": 1, "m": 2}], "extra": True}
    assert shape_diff(doc, bad) == [
        "$.tags: in the docs' example, missing",
        "$.id: docs show number (1), got string(digits) ('1')",
        "$.gid: docs show string(gid:Order) ('gid://shopify/Order/1'), got number (1)",
        "$.at: docs show string(timestamp.0offset) ('2021-12-31T19:00:00-05:00'), got string(timestamp.0Z) "
        "('2021-12-31T19:00:00Z')",
        "$.price: docs show string(decimal.2) ('89.99'), got number (89.99)",
        "$.note: docs show null (type unknown), got object",
        "$.items[0].m: not in the docs' example (number)",
        "$.extra: not in the docs' example (boolean)",
    ]
    assert shape_diff(doc, {**doc, "tags": None}) == ["$.tags: docs show string(text), got null"]
    assert shape_diff(doc, {**doc, "tags": None}, nullable={"tags"}) == []
    assert shape_diff({"a": 1}, {"a": 1, "b": 2}, extra={"$.b"}) == []
    assert shape_diff({"a": 1}, {"a": 1}, extra={"$.b"}) == ["$.b: the known deviation is gone; drop it from `extra`"]
    assert shape_diff({"a": 1, "b": 2}, {"a": 1}, exact=False) == []
    yen = {"amount": "20607", "currency_code": "JPY"}
    assert shape_diff({"amount": "1.00", "currency_code": "USD"}, yen) != []
    assert shape_diff({"amount": "1.00", "currency_code": "USD"}, yen, whole_currencies={"JPY"}) == []
    assert shape_diff({"zip": "K2P 2L8"}, {"zip": "1010"}) == []  # text may be all digits...
    assert shape_diff({"sub": "42"}, {"sub": "ab"}) != []  # ...but digits must stay digits
    assert string_kind("545ebdd4-b7be-4d3d-b14e-54aa78e0e0f9") == "uuid"
    assert string_kind("2025-07-10T16:15:47.000000Z") == "timestamp.6Z"


# --- webhooks ------------------------------------------------------------------------------------


def test_order_webhooks_have_the_sample_orders_shape(sink: Receiver) -> None:
    with_customer = with_refund = 0
    for topic in ("orders/create", "orders/updated", "orders/cancelled"):
        for order in payloads(sink, topic):
            assert shape_diff(ORDER_SAMPLE, order, exact=False, nullable=ORDER_NULLABLE | REFUND_NULLABLE,
                              whole_currencies=WHOLE,
                              templates={"$.refunds[]": REFUND_SAMPLE}) == [], topic
            assert set(order) >= ORDER_REQUIRED, ORDER_REQUIRED - set(order)
            if order["customer"] is not None:
                with_customer += 1
                # The embedded customer is the whole of the sample's: exact.
                assert shape_diff(ORDER_CUSTOMER, order["customer"], path="$.customer",
                                  nullable=ORDER_NULLABLE) == []
            with_refund += bool(order["refunds"])
    # The customer and refund parts were compared, not skipped.
    assert with_customer
    assert with_refund


def test_refunds_create_has_the_sample_refunds_shape(sink: Receiver) -> None:
    refunds = payloads(sink, "refunds/create")
    for refund in refunds:
        assert shape_diff(REFUND_SAMPLE, refund, exact=False, nullable=REFUND_NULLABLE, whole_currencies=WHOLE) == []
        assert set(refund) >= REFUND_REQUIRED
    assert any(r["refund_line_items"] for r in refunds)


def test_customer_webhooks_have_the_sample_customers_shape(sink: Receiver) -> None:
    customers = payloads(sink, "customers/create") + payloads(sink, "customers/update")
    for customer in customers:
        assert shape_diff(CUSTOMER_SAMPLE, customer, nullable=CUSTOMER_NULLABLE,
                          templates={"$.addresses[]": CUSTOMER_SAMPLE["default_address"]}) == []
    assert any(c["addresses"] for c in customers)


@pytest.mark.parametrize(("topic", "sample"), [("customers/delete", CUSTOMER_DELETE_SAMPLE),
                                               ("orders/delete", ORDER_DELETE_SAMPLE)])
def test_delete_webhooks_are_exactly_the_samples(sink: Receiver, topic: str, sample: dict[str, Any]) -> None:
    for payload in payloads(sink, topic):
        assert shape_diff(sample, payload) == []


@pytest.mark.parametrize("topic", list(COMPLIANCE_SAMPLES))
def test_compliance_webhooks_are_exactly_the_samples(sink: Receiver, topic: str) -> None:
    (payload,) = payloads(sink, topic)
    # The customer's email and phone are personal data a customer may not have given.
    assert shape_diff(COMPLIANCE_SAMPLES[topic], payload, nullable={"email", "phone"}) == []


def test_app_uninstalled_is_the_shop_resource(sink: Receiver) -> None:
    (shop,) = payloads(sink, "app/uninstalled")
    assert shape_diff(SHOP_SAMPLE, shop, exact=False) == []
    assert set(shop) >= SHOP_REQUIRED


def test_app_scopes_update_is_exactly_the_sample(sink: Receiver) -> None:
    (payload,) = payloads(sink, "app/scopes_update")
    assert shape_diff(SCOPES_UPDATE_SAMPLE, payload) == []


def test_bulk_operations_finish_is_exactly_the_sample(sink: Receiver) -> None:
    (payload,) = payloads(sink, "bulk_operations/finish")
    assert shape_diff(BULK_FINISH_SAMPLE, payload) == []
    # "the error_code and status fields in the webhook payload will be lowercase" (bulk queries guide)
    assert (payload["status"], payload["type"]) == ("completed", "query")


def test_every_delivery_carries_the_sample_headers(sink: Receiver) -> None:
    expected = {name.lower(): value for name, value in HEADERS_SAMPLE.items()}
    for delivery in sink.received:
        shopify = {k.lower(): v for k, v in delivery.headers.items() if k.lower().startswith("x-shopify-")}
        assert shape_diff(expected, shopify) == [], delivery.topic
        assert base64.b64decode(shopify["x-shopify-hmac-sha256"], validate=True)  # base64, as in the example
        assert shopify["x-shopify-shop-domain"].endswith(".myshopify.com")
        assert shopify["x-shopify-api-version"] == "2026-10"


# --- Admin GraphQL: cost, throttling, bulk operations ----------------------------------------------
# https://shopify.dev/docs/api/usage/limits#graphql-response
COST_SAMPLE = {"cost": {"requestedQueryCost": 101, "actualQueryCost": 46,
                        "throttleStatus": {"maximumAvailable": 1000, "currentlyAvailable": 954, "restoreRate": 50}}}
# No shopify.dev page found with a throttled response; this one is quoted from Shopify's GraphQL
# Admin API in https://community.shopify.com/t/throttled/254776 (the shape devstore follows).
THROTTLED_SAMPLE = {
    "errors": [{"message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
    "extensions": {"cost": {"requestedQueryCost": 752, "actualQueryCost": None,
                            "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 666,
                                               "restoreRate": 50.0}}},
}
# https://shopify.dev/docs/api/usage/bulk-operations/queries ("the response looks similar to")
BULK_RUN_SAMPLE = {"bulkOperationRunQuery": {"bulkOperation": {"id": "gid://shopify/BulkOperation/1",
                                                               "status": "CREATED"}, "userErrors": []}}
# The completed operation as the same guide showed it polled (an earlier edition, kept in
# Shopify/shopify-api-ruby's README); the current guide polls the same fields without a response.
BULK_POLL_SAMPLE = {
    "id": "gid://shopify/BulkOperation/720918", "status": "COMPLETED", "errorCode": None,
    "createdAt": "2019-08-29T17:16:35Z", "completedAt": "2019-08-29T17:23:25Z", "objectCount": "57",
    "fileSize": "358", "url": "https://storage.googleapis.com/shopify/dyfkl3g72empyyoenvmtidlm9o4g?<params>",
    "partialDataUrl": None,
}
BULK_POLL = ("query($id: ID!) { bulkOperation(id: $id) { id status errorCode createdAt completedAt objectCount"
             " fileSize url partialDataUrl } }")
# The guide's JSONL: a product line, then a variant line with `__parentId` (no grouping by default).
JSONL_SAMPLE = [
    {"id": "gid://shopify/Product/1921569226808"},
    {"id": "gid://shopify/ProductVariant/19435458986123", "title": "52",
     "__parentId": "gid://shopify/Product/1921569226808"},
]


@pytest.fixture(scope="module")
def shop() -> Iterator[Api]:
    with api_shop("docsapi", customers=40, months=12) as api:
        api.store.faults["throttle_bucket_size"] = 10**9  # the clock is frozen; throttling has its own shop
        yield api


def test_every_response_carries_the_sample_cost_extension(shop: Api) -> None:
    status, body = shop.gql("{ orders(first: 5) { nodes { id } } }")
    assert status == 200
    assert shape_diff(COST_SAMPLE, body["extensions"]) == []


def test_a_throttled_response_is_the_sample() -> None:
    with api_shop("docsthrottle", customers=5, months=1) as api:
        api.store.faults.update(throttle_bucket_size=10, throttle_restore_rate=1)
        status, body = api.gql("{ orders(first: 30) { nodes { id } } }")  # 32 points > 10
    assert status == 200
    assert shape_diff(THROTTLED_SAMPLE, body) == []


def test_bulk_run_poll_and_jsonl_are_the_samples(shop: Api) -> None:
    query = "{ customers { edges { node { id orders { edges { node { id name } } } } } } }"
    status, body = shop.gql("mutation($q: String!) { bulkOperationRunQuery(query: $q) {"
                            " bulkOperation { id status } userErrors { field message } } }", {"q": query})
    assert shape_diff(BULK_RUN_SAMPLE, body["data"]) == []
    op_id = body["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    deadline = time.monotonic() + 20
    while True:
        status, body = shop.gql(BULK_POLL, {"id": op_id})
        op = body["data"]["bulkOperation"]
        if op["status"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert shape_diff(BULK_POLL_SAMPLE, op) == []

    lines = [orjson.loads(line) for line in shop.get(op["url"]).text.splitlines()]
    root_doc, child_doc = JSONL_SAMPLE
    # The guide's lines for this query: customers for products, their orders (a nested
    # connection, devstore's) for variants; the children carry `name` where the guide's carry `title`.
    root_sample = {"id": retype(root_doc["id"], "Customer")}
    child_sample = {"id": retype(child_doc["id"], "Order"), "name": "#1001",
                    "__parentId": retype(child_doc["__parentId"], "Customer")}
    roots = [line for line in lines if "__parentId" not in line]
    children = [line for line in lines if "__parentId" in line]
    assert roots
    assert children
    for line in roots:
        assert shape_diff(root_sample, line) == []
    customer_ids = {line["id"] for line in roots}
    for line in children:
        assert shape_diff(child_sample, line) == []
        assert line["__parentId"] in customer_ids


def retype(gid: str, type_name: str) -> str:
    """The docs' GID with another object type: gid://shopify/Product/1 -> gid://shopify/Order/1."""
    return re.sub(r"^gid://shopify/\w+/", f"gid://shopify/{type_name}/", gid)


# --- OAuth and session tokens --------------------------------------------------------------------
# https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/offline-access-tokens
# (token exchange with expiring=1; the refresh response is the same shape)
EXPIRING_SAMPLE = {"access_token": "shpat_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "expires_in": 3600,
                   "refresh_token": "shprt_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "refresh_token_expires_in": 7776000,
                   "scope": "write_products,read_orders"}
# https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/token-exchange
NON_EXPIRING_SAMPLE = {"access_token": "f85632530bf277ec9ac6f649fc327f17", "scope": "write_orders,read_customers"}
ONLINE_SAMPLE = {
    "access_token": "f85632530bf277ec9ac6f649fc327f17", "scope": "write_orders,read_customers", "expires_in": 86399,
    "associated_user_scope": "write_orders",
    "associated_user": {"id": 902541635, "first_name": "John", "last_name": "Smith", "email": "john@example.com",
                        "email_verified": True, "account_owner": True, "locale": "en", "collaborator": False},
}
# https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant
# (step 3: the redirect to the app)
CALLBACK_PARAMS = {"code", "hmac", "host", "shop", "state", "timestamp"}
# https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens ("Example payload")
SESSION_HEADER_SAMPLE = {"alg": "HS256", "typ": "JWT"}
SESSION_SAMPLE = {
    "iss": "https://exampleshop.myshopify.com/admin", "dest": "https://exampleshop.myshopify.com",
    "aud": "client-id-123", "sub": "42", "exp": 1591765058, "nbf": 1591764998, "iat": 1591764998,
    "jti": "f8912129-1af6-4cad-9ca3-76b0f7621087",
    "sid": "aaea182f2732d44c23057c0fea584021a4485b2bd25d3eb7fd349313ad24c685",
    "sig": "f07cf3740270c17fb61c700b2f0f2e7f2f4fc8cc48426221738f7a39e4c475bf",
}
TOKEN_URL = "/admin/oauth/access_token"
EXCHANGE = {"client_id": API_KEY, "client_secret": SECRET,
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
OFFLINE = "urn:shopify:params:oauth:token-type:offline-access-token"
ONLINE = "urn:shopify:params:oauth:token-type:online-access-token"


@pytest.fixture(scope="module")
def oauth() -> Iterator[DevStore]:
    with DevStore([ShopSpec(name="docsauth", customers=5, months=1)], api_key=API_KEY, api_secret=SECRET,
                  app_url=APP_URL, toml_path=None) as ds:
        ds.install("docsauth")
        yield ds


def token_post(ds: DevStore, **body: Any) -> dict[str, Any]:
    response = ShopClient(ds.base_url, "docsauth.myshopify.com").post(TOKEN_URL, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return dict(response.json())


@pytest.mark.parametrize(("requested", "expiring", "sample"), [
    (OFFLINE, 1, EXPIRING_SAMPLE), (OFFLINE, 0, NON_EXPIRING_SAMPLE), (ONLINE, 0, ONLINE_SAMPLE)])
def test_token_exchange_answers_are_the_samples(oauth: DevStore, requested: str, expiring: int,
                                                sample: dict[str, Any]) -> None:
    body = token_post(oauth, **EXCHANGE, subject_token=oauth.session_token("docsauth"),
                      requested_token_type=requested, expiring=expiring)
    assert shape_diff(sample, body) == []
    if expiring:  # the documented lifetimes: one hour, 90 days
        assert (body["expires_in"], body["refresh_token_expires_in"]) == (3600, 7776000)


def test_refresh_answer_is_the_sample(oauth: DevStore) -> None:
    pair = token_post(oauth, **EXCHANGE, subject_token=oauth.session_token("docsauth"),
                      requested_token_type=OFFLINE, expiring=1)
    body = token_post(oauth, client_id=API_KEY, client_secret=SECRET, grant_type="refresh_token",
                      refresh_token=pair["refresh_token"])
    assert shape_diff(EXPIRING_SAMPLE, body) == []


def test_code_grant_redirect_and_exchange_are_the_samples(oauth: DevStore) -> None:
    params = {"client_id": API_KEY, "scope": "read_orders", "shop": "docsauth.myshopify.com",
              "redirect_uri": f"{APP_URL}/auth/callback", "state": "nonce-1"}
    approved = ShopClient(oauth.base_url).post("/admin/oauth/authorize", params=params, data={"decision": "approve"})
    assert approved.status_code == 302
    callback = dict(parse_qsl(urlsplit(approved.headers["Location"]).query))
    assert set(callback) == CALLBACK_PARAMS
    assert string_kind(callback["timestamp"]) == "digits"
    body = token_post(oauth, client_id=API_KEY, client_secret=SECRET, code=callback["code"], expiring=1)
    assert shape_diff(EXPIRING_SAMPLE, body) == []


def test_session_token_is_the_sample(oauth: DevStore) -> None:
    token = oauth.session_token("docsauth")
    assert shape_diff(SESSION_HEADER_SAMPLE, jwt.get_unverified_header(token)) == []
    claims = jwt.decode(token, options={"verify_signature": False})
    assert shape_diff(SESSION_SAMPLE, claims) == []
    assert claims["iss"] == claims["dest"] + "/admin"
    for claim in ("sid", "sig"):  # 64 hex digits in the example
        assert len(claims[claim]) == 64
        int(claims[claim], 16)

