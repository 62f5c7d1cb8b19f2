"""A devstore (in-process server) with one installed shop, and our Shop row holding its token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from devstore.app import DevApp
from devstore.server import Platform, Server
from devstore.store import ShopStore
from shops.models import Shop, ShopCredential

SCOPES = "read_orders,read_all_orders,read_customers"


@dataclass
class DevShop:
    platform: Platform
    server: Server
    store: ShopStore
    shop: Shop

    @property
    def domain(self) -> str:
        return self.store.domain

    def faults(self, **faults: Any) -> None:
        self.platform.faults_set(self.domain, **faults)

    def live(self, events: int) -> list[tuple[str, dict[str, Any]]]:
        return self.store.live_step(events, self.platform._live_rngs[self.domain])

    def truth(self) -> dict[str, Any]:
        return self.store.ground_truth()  # type: ignore[return-value]


def devshop_make(*, name: str = "acme", customers: int = 120, months: int = 18, seed: int = 7,
                 currency: str = "NZD", tz: str = "Pacific/Auckland", scopes: str = SCOPES,
                 orders: int | None = None) -> DevShop:
    app = DevApp(api_key=settings.SHOPIFY_API_KEY, api_secret=settings.SHOPIFY_API_SECRET,
                 app_url="http://127.0.0.1:9")
    platform = Platform(app)
    server = Server(platform, port=0).start()
    store = ShopStore.generate(name=name, seed=seed, customers=customers, months=months, currency=currency,
                               iana_timezone=tz, orders=orders)
    platform.shop_add(store, scopes=scopes, seed=seed)
    install = platform.install(store.domain)
    grant = platform.registry.grant_tokens(store.domain, install.scopes, expiring=False)
    shop = Shop.objects.create(domain=store.domain, name=name, currency=currency, iana_timezone=tz,
                               scopes=",".join(sorted(install.scopes)), installed_at=timezone.now())
    credential = ShopCredential(shop=shop, scopes=shop.scopes)
    credential.access_token = grant["access_token"]
    credential.save()
    return DevShop(platform=platform, server=server, store=store, shop=shop)


@pytest.fixture
def devshop(db: None, settings: Any) -> Iterator[DevShop]:
    ds = devshop_make()
    settings.SHOPIFY_API_BASE_URL = ds.server.base_url
    try:
        yield ds
    finally:
        ds.server.stop()
