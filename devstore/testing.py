"""Start devstore from tests: in-process (``DevStore``) or as a subprocess (``DevStore.spawn``).

See devstore/CONTRACT.md. Both expose the same methods; the subprocess one goes through
devstore's ``/_devstore/`` control API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from devstore import admin_frame, oauth
from devstore.app import DEFAULT_SCOPES, DEFAULT_TOML, DevApp, shop_domain
from devstore.server import Platform, Server, tagged_loads
from devstore.store import ShopStore

ROOT = Path(__file__).resolve().parent.parent
FILE_TIMEZONE = "UTC"  # a merchant's own file: its shop is in UTC unless they say otherwise
GENERATED_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class ShopSpec:
    """One shop: generated from a seed, or loaded from a CSV file (``data_file``)."""

    name: str
    seed: int = 1
    customers: int = 300
    months: int = 24
    orders: int | None = None
    currency: str | None = None  # None: USD when generated, the file's currency when loaded
    # None: UTC for a file-loaded shop (issue 3), America/New_York when generated (never UTC, so
    # the app's time-zone handling is exercised).
    iana_timezone: str | None = None
    plan: str = "Basic"
    data_file: str | None = None
    scopes: str = DEFAULT_SCOPES  # what the merchant grants when installing
    now: int | None = None  # the generator's "today" (epoch seconds); None: start of the current UTC day

    @property
    def domain(self) -> str:
        return shop_domain(self.name)

    def build(self) -> ShopStore:
        if self.data_file:
            return ShopStore.from_file(self.data_file, name=self.name, currency=self.currency,
                                       iana_timezone=self.iana_timezone or FILE_TIMEZONE, plan=self.plan,
                                       now=self.now)
        return ShopStore.generate(name=self.name, seed=self.seed, customers=self.customers, months=self.months,
                                  orders=self.orders, currency=self.currency or "USD",
                                  iana_timezone=self.iana_timezone or GENERATED_TIMEZONE, plan=self.plan, now=self.now)


@dataclass
class GroundTruth:
    """What a shop holds now (CONTRACT.md shapes: Decimal money, aware datetimes)."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    shop: dict[str, Any] = field(default_factory=dict)


def settings_default(name: str, fallback: str) -> str:
    """The app's setting when Django is configured (tests, manage.py), else ``fallback``."""
    try:
        from django.conf import settings

        value = getattr(settings, name, None)
    except Exception:  # noqa: BLE001 - Django not configured: devstore is usable on its own
        value = None
    return str(value) if value else fallback


class _Api:
    """The methods shared by the in-process and the subprocess devstore."""

    base_url: str
    shops: list[str]

    def _shop(self, shop: str | None) -> str:
        return shop_domain(shop) if shop else self.shops[0]

    def app_home_url(self, shop: str | None = None, path: str = "/") -> str:
        raise NotImplementedError

    def admin_url(self, shop: str | None = None) -> str:
        handle = self._shop(shop).removesuffix(".myshopify.com")
        return f"{self.base_url}/store/{handle}/apps/{self.api_key}"

    api_key: str


class DevStore(_Api):
    """devstore in this process, serving from a background thread (use as a context manager)."""

    def __init__(
        self, shops: Sequence[ShopSpec], *, api_key: str | None = None, api_secret: str | None = None,
        app_url: str | None = None, port: int = 0, host: str = "127.0.0.1", live: bool = False,
        retry_scale: float = 1.0, webhook_timeout_s: float = 5.0, webhook_concurrency: int = 4,
        live_interval_s: float = 1.0, live_events: int = 1, toml_path: str | Path | None = DEFAULT_TOML,
        faults: dict[str, dict[str, Any]] | None = None, install: bool = False,
    ) -> None:
        self.specs = list(shops)
        self.api_key = api_key or settings_default("SHOPIFY_API_KEY", "devstore-api-key")
        self.api_secret = api_secret or settings_default("SHOPIFY_API_SECRET", "devstore-api-secret")
        self.app_url = (app_url or settings_default("APP_URL", "http://127.0.0.1:8000")).rstrip("/")
        self.app = DevApp.from_toml(api_key=self.api_key, api_secret=self.api_secret, app_url=self.app_url,
                                    toml_path=toml_path)
        self.platform = Platform(self.app, retry_scale=retry_scale, webhook_timeout_s=webhook_timeout_s,
                                 webhook_concurrency=webhook_concurrency, live_interval_s=live_interval_s,
                                 live_events=live_events, seed=self.specs[0].seed if self.specs else 0)
        self.shops = [spec.domain for spec in self.specs]
        self._host, self._port, self._live = host, port, live
        self._faults = faults or {}
        self._install = install
        self.server: Server | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DevStore:
        stores = [spec.build() for spec in self.specs]  # bad data files fail here, before any socket
        self.server = Server(self.platform, host=self._host, port=self._port)
        self.base_url = self.server.base_url
        for spec, store in zip(self.specs, stores, strict=True):
            self.platform.shop_add(store, scopes=spec.scopes, seed=spec.seed)
        for shop, knobs in self._faults.items():
            self.platform.faults_set(shop, **knobs)
        if self._install:
            for shop in self.shops:
                self.platform.install(shop)
        self.server.start()
        if self._live:
            self.platform.live_start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for store in self.platform.registry.shops.values():
            store.close()

    def __enter__(self) -> DevStore:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @classmethod
    def spawn(cls, shops: Sequence[ShopSpec], **kwargs: Any) -> RemoteDevStore:
        """``python manage.py devstore serve`` in a subprocess, same arguments."""
        return RemoteDevStore(shops, **kwargs).start()

    # -- the contract ----------------------------------------------------------------------

    def store(self, shop: str | None = None) -> ShopStore:
        return self.platform.store(self._shop(shop))

    def install(self, shop: str | None = None, scopes: Sequence[str] | str | None = None) -> dict[str, Any]:
        wanted = scopes.split(",") if isinstance(scopes, str) else scopes
        install = self.platform.install(self._shop(shop), scopes=wanted)
        return {"shop": install.shop, "scopes": ",".join(sorted(install.scopes))}

    def uninstall(self, shop: str | None = None) -> bool:
        return self.platform.uninstall(self._shop(shop))

    def session_token(self, shop: str | None = None) -> str:
        return self.platform.session_token(self._shop(shop))

    def app_home_url(self, shop: str | None = None, path: str = "/") -> str:
        return admin_frame.app_home_url(self.platform, self._shop(shop), path=path)

    def install_link(self, shop: str | None = None) -> str:
        """The signed install request Shopify sends a non-embedded app (the code grant's start)."""
        return oauth.install_request_url(self.platform.registry, self._shop(shop))

    def set_faults(self, shop: str | None = None, **faults: Any) -> dict[str, Any]:
        return self.platform.faults_set(self._shop(shop), **faults)

    def live_step(self, shop: str | None = None, events: int = 1) -> list[tuple[str, dict[str, Any]]]:
        return self.platform.live_step(self._shop(shop), events)

    def ground_truth(self, shop: str | None = None) -> GroundTruth:
        return GroundTruth(**self.store(shop).ground_truth())  # type: ignore[arg-type]

    def trigger_compliance(self, topic: str, shop: str | None = None, *, customer_id: int | None = None,
                           orders: list[int] | None = None) -> dict[str, Any]:
        return self.platform.compliance(self._shop(shop), topic, customer_id=customer_id, orders=orders)

    def emit(self, topic: str, payload: dict[str, Any], shop: str | None = None) -> list[dict[str, Any]]:
        """Deliver an arbitrary event to the app's subscriptions for ``topic``."""
        return self.platform.event(self._shop(shop), topic, payload)

    def deliveries(self, shop: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
        return self.platform.webhooks.summaries(shop=shop_domain(shop) if shop else None, topic=topic)

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        return self.platform.webhooks.wait_idle(timeout)

    def advance_clock(self, seconds: float) -> None:
        """Move devstore's clock (token expiry, throttle refill, live event times)."""
        self.platform.registry.clock_advance(seconds)


class RemoteDevStore(_Api):
    """devstore as a subprocess, driven through its control API."""

    def __init__(
        self, shops: Sequence[ShopSpec], *, api_key: str | None = None, api_secret: str | None = None,
        app_url: str | None = None, port: int = 0, host: str = "127.0.0.1", live: bool = False,
        retry_scale: float = 1.0, webhook_timeout_s: float = 5.0, webhook_concurrency: int = 4,
        live_interval_s: float = 1.0, live_events: int = 1, toml_path: str | Path | None = DEFAULT_TOML,
        faults: dict[str, dict[str, Any]] | None = None, install: bool = False,
        env: dict[str, str] | None = None, startup_timeout_s: float = 120.0,
    ) -> None:
        self.specs = list(shops)
        self.shops = [spec.domain for spec in self.specs]
        self.api_key = api_key or settings_default("SHOPIFY_API_KEY", "devstore-api-key")
        self.api_secret = api_secret or settings_default("SHOPIFY_API_SECRET", "devstore-api-secret")
        self.app_url = (app_url or settings_default("APP_URL", "http://127.0.0.1:8000")).rstrip("/")
        args = [
            sys.executable, "manage.py", "devstore", "serve", "--host", host, "--port", str(port),
            "--api-key", self.api_key, "--api-secret", self.api_secret, "--app-url", self.app_url,
            "--spec-json", json.dumps([asdict(s) for s in self.specs]),
            "--retry-scale", str(retry_scale), "--webhook-timeout", str(webhook_timeout_s),
            "--webhook-concurrency", str(webhook_concurrency), "--live-interval", str(live_interval_s),
            "--live-events", str(live_events),
        ]
        if toml_path is None:
            args += ["--no-toml"]
        elif Path(toml_path) != DEFAULT_TOML:
            args += ["--toml", str(toml_path)]
        if live:
            args.append("--live")
        if install:
            args.append("--install")
        for shop, knobs in (faults or {}).items():
            for key, value in knobs.items():
                args += ["--fault", f"{shop_domain(shop)}:{key}={value}"]
        self._args = args
        self._env = {**os.environ, **(env or {})}
        self._timeout = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.base_url = ""

    def start(self) -> RemoteDevStore:
        self.process = subprocess.Popen(  # noqa: S603 - our own manage.py with our own arguments
            self._args, cwd=ROOT, env=self._env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready = threading.Event()

        def pump() -> None:
            process = self.process
            if process is None or process.stdout is None:
                return
            for line in process.stdout:
                self.output.append(line.rstrip("\n"))
                if line.startswith("devstore listening on "):
                    self.base_url = line.split()[-1].strip()
                    ready.set()
            ready.set()

        threading.Thread(target=pump, name="devstore-stdout", daemon=True).start()
        if not ready.wait(self._timeout) or not self.base_url:
            self.close()
            raise RuntimeError("devstore did not start:\n" + "\n".join(self.output[-30:]))
        return self

    def close(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, for tests that need devstore to vanish mid-request."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RemoteDevStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- control API -----------------------------------------------------------------------

    def _call(self, name: str, *, method: str = "POST", timeout: float = 60.0, **args: Any) -> Any:
        url = f"{self.base_url}/_devstore/{name}"
        data = None
        if method == "GET":
            url += "?" + urlencode({k: v for k, v in args.items() if v is not None})
        else:
            data = json.dumps({k: v for k, v in args.items() if v is not None}).encode()
        request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - loopback http
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return tagged_loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"devstore {name}: HTTP {exc.code} {exc.read().decode(errors='replace')}") from exc

    def install(self, shop: str | None = None, scopes: Sequence[str] | str | None = None) -> dict[str, Any]:
        wanted = ",".join(scopes) if scopes is not None and not isinstance(scopes, str) else scopes
        return dict(self._call("install", shop=self._shop(shop), scopes=wanted))

    def uninstall(self, shop: str | None = None) -> bool:
        return bool(self._call("uninstall", shop=self._shop(shop))["uninstalled"])

    def session_token(self, shop: str | None = None) -> str:
        return str(self._call("id_token", method="GET", shop=self._shop(shop))["id_token"])

    def app_home_url(self, shop: str | None = None, path: str = "/") -> str:
        return str(self._call("app_home_url", method="GET", shop=self._shop(shop), path=path)["url"])

    def install_link(self, shop: str | None = None) -> str:
        return str(self._call("install_link", method="GET", shop=self._shop(shop))["url"])

    def set_faults(self, shop: str | None = None, **faults: Any) -> dict[str, Any]:
        return dict(self._call("faults", shop=self._shop(shop), **faults)["faults"])

    def live_step(self, shop: str | None = None, events: int = 1) -> list[tuple[str, dict[str, Any]]]:
        return [(t, p) for t, p in self._call("live_step", shop=self._shop(shop), events=events)["events"]]

    def ground_truth(self, shop: str | None = None) -> GroundTruth:
        return GroundTruth(**self._call("ground_truth", method="GET", shop=self._shop(shop)))

    def trigger_compliance(self, topic: str, shop: str | None = None, *, customer_id: int | None = None,
                           orders: list[int] | None = None) -> dict[str, Any]:
        return dict(self._call("compliance", shop=self._shop(shop), topic=topic, customer_id=customer_id,
                               orders=orders))

    def emit(self, topic: str, payload: dict[str, Any], shop: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("event", shop=self._shop(shop), topic=topic, payload=payload)["deliveries"])

    def deliveries(self, shop: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("deliveries", method="GET", shop=shop_domain(shop) if shop else None, topic=topic))

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        return bool(self._call("wait_webhooks", timeout=timeout + 5, timeout_s=timeout)["idle"])

    def advance_clock(self, seconds: float) -> None:
        self._call("clock", advance=seconds)


def wait_until(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


__all__ = ["DevStore", "GroundTruth", "RemoteDevStore", "ShopSpec", "wait_until"]
