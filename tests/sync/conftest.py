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


def worker_start(name: str, extra_env: dict[str, str] | None = None) -> Any:
    """Another real worker subprocess (same command as `celery_worker_process`), for kill tests."""
    import os
    import subprocess
    import sys
    import time

    from config.celery import app
    from tests.conftest import ROOT, test_database_url

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": test_database_url(),
           "REDIS_URL": settings.REDIS_URL, "TENURE_TEST_WORKER": "1", **(extra_env or {})}
    log = open(ROOT / "var" / f"test-worker-{name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "-Q", "default,webhooks,sync,backfill,analytics", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-n", f"{name}-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early ({proc.returncode})")
        if any(f"{name}-{os.getpid()}@" in n for reply in app.control.ping(timeout=0.5) for n in reply):
            return proc
    proc.kill()
    raise RuntimeError("worker did not come up")


def app_install(client: Any, ds: Any, shop: str) -> Shop:
    """The Shopify-managed install: devstore grants, the admin loads the app home with an id_token."""
    from urllib.parse import urlsplit

    ds.install(shop)
    url = urlsplit(ds.app_home_url(shop))
    response = client.get(f"{url.path}?{url.query}")
    assert response.status_code in (200, 302), response.content[:300]
    return Shop.objects.get(domain=shop)


@pytest.fixture
def sync_worker(transactional_db: None, redis_client: Any) -> Iterator[Any]:
    """A real worker with its own log (var/test-worker-sync.log); killed at the end."""
    redis_client.flushdb()
    proc = worker_start("sync")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except Exception:  # noqa: BLE001
                proc.kill()
                proc.wait()


def queued(redis_client: Any, queue: str) -> list[tuple[str, list[Any]]]:
    """(task name, args) of the messages waiting in a Celery queue on the Redis broker."""
    import base64
    import json

    out = []
    for raw in redis_client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args))
    return out
