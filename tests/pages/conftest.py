"""Report-page fixtures: an installed shop with a small order history and session tokens for it."""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from shops.models import Shop, ShopCredential
from tests.analytics.factories import customers_add, orders_add

DOMAIN = "pagesshop.myshopify.com"
AS_OF = date(2026, 11, 1)


def session_token(shop: str, *, exp_in: int = 60) -> str:
    now = int(time.time())
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": settings.SHOPIFY_API_KEY,
              "sub": "42", "exp": now + exp_in, "nbf": now - 5, "iat": now - 5, "jti": str(uuid.uuid4()),
              "sid": "session-1"}
    return jwt.encode(claims, settings.SHOPIFY_API_SECRET, algorithm="HS256")


def shop_install(domain: str = DOMAIN, *, scopes: str | None = None) -> Shop:
    shop = Shop.objects.create(domain=domain, state=Shop.State.INSTALLED, name="Pages Shop", currency="NZD",
                               iana_timezone="Pacific/Auckland",
                               scopes=scopes if scopes is not None else ",".join(settings.SHOPIFY_SCOPES),
                               installed_at=timezone.now())
    credential = ShopCredential(shop=shop, scopes=shop.scopes,
                                access_token_expires_at=timezone.now() + timedelta(hours=1),
                                refresh_token_expires_at=timezone.now() + timedelta(days=30))
    credential.access_token = "shpat_pages"  # noqa: S105
    credential.refresh_token = "shprt_pages"  # noqa: S105
    credential.save()
    return shop


def history_add(shop: Shop, *, customers: int = 40) -> None:
    """Customer i orders every (i % 5 + 1) months from month i % 7 of 2024 until Oct 2026, value 10 + i."""
    rows: list[dict[str, Any]] = []
    for i in range(customers):
        cid = 5000 + i
        month = i % 7
        while month < 34:
            year, mo = 2024 + month // 12, month % 12 + 1
            rows.append({"customer": cid, "at": f"{year}-{mo:02d}-{(i % 27) + 1:02d} 12:00", "value": 10 + i})
            month += i % 5 + 1
    # Two customers new in the last year (CAC needs new customers), one of them back a second time.
    rows += [{"customer": 6000, "at": "2026-03-14 10:00", "value": 55},
             {"customer": 6001, "at": "2026-06-02 10:00", "value": 35},
             {"customer": 6001, "at": "2026-09-21 10:00", "value": 45}]
    rows.append({"customer": None, "at": "2026-10-03 10:00", "value": 99})
    orders_add(shop, rows)
    customers_add(shop, [{"id": 5000 + i, "rfm_group": ("CHAMPIONS", "AT_RISK", "DORMANT")[i % 3],
                          "number_of_orders": 1, "amount_spent": "10"} for i in range(customers)])


def doc_value(doc: dict[str, Any], key: str) -> Any:
    """The report document's value for a page's ``data-figure`` key.

    Dotted path; in a list, a part like ``r=3,f=2`` picks the item with those fields. A path
    the document does not have raises KeyError: the page named a figure that does not exist.
    """
    node: Any = doc
    for part in key.split("."):
        if isinstance(node, list):
            wanted = dict(pair.split("=", 1) for pair in part.split(","))
            found = [item for item in node if all(str(item.get(k)) == v for k, v in wanted.items())]
            if len(found) != 1:
                raise KeyError(f"{key}: {len(found)} items match {part}")
            node = found[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"{key}: no {part!r}")
    return node


def figures_mismatched(shown: dict[str, str], doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Figures whose ``data-value`` differs from the document: {key: (shown, expected)}."""
    out = {}
    for key, value in shown.items():
        expected = doc_value(doc, key)
        expected_text = "" if expected is None else str(expected)
        if value != expected_text:
            out[key] = (value, expected_text)
    return out


@pytest.fixture
def shop(db: None) -> Shop:
    s = shop_install()
    history_add(s)
    return s


class Pages:
    """A client for the embedded pages: every request carries a fresh id_token and the shop."""

    def __init__(self, client: Client, shop: Shop) -> None:
        self.client = client
        self.shop = shop

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"shop": self.shop.domain, "host": "aG9zdA", "embedded": "1",
                "id_token": session_token(self.shop.domain), **extra}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, self.params(**params))

    def post(self, path: str, data: dict[str, Any], **params: Any) -> Any:
        from urllib.parse import urlencode

        return self.client.post(f"{path}?{urlencode(self.params(**params))}", data)


@pytest.fixture
def pages(client: Client, shop: Shop) -> Pages:
    return Pages(client, shop)
