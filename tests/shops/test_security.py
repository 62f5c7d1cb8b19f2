"""Pure checks: shop domains, OAuth query HMAC, timestamps, scopes, claims, PII stripping."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from shops.privacy import payload_strip_pii
from shops.security import (
    oauth_query_message,
    oauth_query_valid,
    oauth_timestamp_fresh,
    scopes_cover,
    shop_domain_clean,
    shop_from_claims,
    webhook_hmac_valid,
)

SECRET = "hush"


@pytest.mark.parametrize("value", ["acme.myshopify.com", "ACME.myshopify.com", "a-1.myshopify.com", "9.myshopify.com"])
def test_shop_domain_accepts_plain_myshopify_domains(value: str) -> None:
    assert shop_domain_clean(value) == value.lower()


@pytest.mark.parametrize("value", [
    None, "", "acme", "acme.com", "myshopify.com", ".myshopify.com", "-acme.myshopify.com",
    "https://acme.myshopify.com", "//acme.myshopify.com", "acme.myshopify.com/", "acme.myshopify.com/admin",
    "acme.myshopify.com:443", "acme.myshopify.com.evil.com", "evil.com/acme.myshopify.com",
    "evil.com?.myshopify.com", "evil.com#.myshopify.com", "user@acme.myshopify.com", "acme.evil.myshopify.com",
    "acme.myshopify.com\n", " acme.myshopify.com", "acme_x.myshopify.com", "acme.myshopify.com%2F",
    "a" * 64 + ".myshopify.com",
])
def test_shop_domain_rejects_tricks(value: str | None) -> None:
    assert shop_domain_clean(value) is None


def _hex(message: str) -> str:
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_oauth_message_is_sorted_without_hmac() -> None:
    assert oauth_query_message([("timestamp", "1"), ("shop", "a.myshopify.com"), ("hmac", "x"), ("code", "c")]) \
        == "code=c&shop=a.myshopify.com&timestamp=1"


def test_oauth_array_params_become_one_json_list() -> None:
    # Shopify's documented encoding: ids[]=1&ids[]=2 is signed as ids=["1", "2"].
    message = oauth_query_message([("ids[]", "1"), ("ids[]", "2"), ("shop", "a.myshopify.com")])
    assert message == 'ids=["1", "2"]&shop=a.myshopify.com'
    query = f"ids%5B%5D=1&ids%5B%5D=2&shop=a.myshopify.com&hmac={_hex(message)}"
    assert oauth_query_valid(query, secret=SECRET)
    # Dropping one array element breaks the signature.
    assert not oauth_query_valid(f"ids%5B%5D=1&shop=a.myshopify.com&hmac={_hex(message)}", secret=SECRET)


def test_oauth_delimiters_cannot_be_smuggled() -> None:
    # "a=1&b=2" as one value must not sign like two parameters a=1 and b=2.
    two = _hex("a=1&b=2")
    assert not oauth_query_valid(f"a=1%26b%3D2&hmac={two}", secret=SECRET)


def test_oauth_hmac_checks() -> None:
    good = _hex("shop=a.myshopify.com&timestamp=5")
    assert oauth_query_valid(f"shop=a.myshopify.com&timestamp=5&hmac={good}", secret=SECRET)
    assert oauth_query_valid(f"shop=a.myshopify.com&timestamp=5&hmac={good.upper()}", secret=SECRET)
    assert oauth_query_valid(f"shop=a.myshopify.com&timestamp=5&hmac={good}", secret="new", previous_secret=SECRET)
    assert not oauth_query_valid(f"shop=b.myshopify.com&timestamp=5&hmac={good}", secret=SECRET)
    assert not oauth_query_valid("shop=a.myshopify.com&timestamp=5", secret=SECRET)
    assert not oauth_query_valid(f"shop=a.myshopify.com&timestamp=5&hmac={good}&hmac={good}", secret=SECRET)


def test_timestamp_window() -> None:
    now = 1_800_000_000.0
    assert oauth_timestamp_fresh(str(int(now) - 24 * 3600), now=now)
    assert not oauth_timestamp_fresh(str(int(now) - 24 * 3600 - 1), now=now)
    assert oauth_timestamp_fresh(str(int(now) + 60), now=now)
    assert not oauth_timestamp_fresh(str(int(now) + 3600), now=now)
    assert not oauth_timestamp_fresh("abc", now=now)
    assert not oauth_timestamp_fresh(None)
    assert oauth_timestamp_fresh(str(int(time.time())))


def test_webhook_hmac() -> None:
    import base64

    body = b'{"id": 1}'
    sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert webhook_hmac_valid(body, sig, secret=SECRET)
    assert webhook_hmac_valid(body, sig, secret="rotated", previous_secret=SECRET)
    assert not webhook_hmac_valid(body + b" ", sig, secret=SECRET)
    assert not webhook_hmac_valid(body, None, secret=SECRET)
    assert not webhook_hmac_valid(body, "not base64!", secret=SECRET)
    assert not webhook_hmac_valid(body, sig, secret="other")


def test_scopes_cover() -> None:
    need = ["read_orders", "read_all_orders", "read_customers"]
    assert scopes_cover("read_orders,read_all_orders,read_customers", need)
    assert scopes_cover("write_orders,read_all_orders,write_customers", need)
    assert not scopes_cover("read_orders,read_customers", need)
    assert not scopes_cover("", need)


def test_shop_from_claims_requires_matching_iss_and_dest() -> None:
    assert shop_from_claims({"iss": "https://a.myshopify.com/admin", "dest": "https://a.myshopify.com"}) \
        == "a.myshopify.com"
    assert shop_from_claims({"iss": "https://b.myshopify.com/admin", "dest": "https://a.myshopify.com"}) is None
    assert shop_from_claims({"iss": "https://a.myshopify.com/admin", "dest": "https://evil.com"}) is None
    assert shop_from_claims({"dest": "https://a.myshopify.com"}) is None


def test_pii_is_stripped_at_any_depth_and_business_fields_stay() -> None:
    payload = {
        "id": 1, "name": "#1001", "email": "x@example.com", "phone": "+64", "total_price": "10.00",
        "customer": {"id": 7, "email": "x@example.com", "first_name": "Ann", "last_name": "Lee", "name": "Ann Lee",
                     "default_address": {"address1": "1 Road"}, "tags": "vip"},
        "billing_address": {"name": "Ann Lee"}, "shipping_address": {"city": "Akl"},
        "line_items": [{"name": "Widget", "price": "10.00"}], "browser_ip": "1.2.3.4", "note": "call me",
        "refunds": [{"id": 3, "user": {"id": 9, "email": "staff@example.com", "name": "Staff"}}],
    }
    assert payload_strip_pii(payload) == {
        "id": 1, "name": "#1001", "total_price": "10.00", "customer": {"id": 7, "tags": "vip"},
        "line_items": [{"name": "Widget", "price": "10.00"}], "refunds": [{"id": 3, "user": {"id": 9}}],
    }
