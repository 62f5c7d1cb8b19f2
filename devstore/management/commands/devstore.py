"""``python manage.py devstore serve``: run devstore (the local Shopify stand-in) in the foreground.

devstore is standalone: this command never opens the app's database, so it runs with
PostgreSQL down (given a ``DATABASE_URL``; without one, the local settings start the embedded
servers when Django loads). ``python -m devstore serve`` takes the same flags without Django.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.management.base import BaseCommand, CommandError

from devstore.app import DEFAULT_TOML, shop_domain
from devstore.store import DataFileError
from devstore.testing import DevStore, ShopSpec, settings_default


def add_serve_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("action", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--shop", action="append", dest="shops", metavar="NAME[:CURRENCY[:ZONE]]",
                        help="a shop (repeatable), with its own currency and IANA zone if given, for example "
                             "paris:EUR:Europe/Paris; default: devstore-demo with --currency and --timezone")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--orders", type=int, default=None, help="exact order count per shop")
    parser.add_argument("--data", metavar="FILE",
                        help="load the shop(s) from a transactions CSV or Shopify's orders export")
    parser.add_argument("--currency", default=None)
    parser.add_argument("--timezone", default=None,
                        help="the shops' IANA zone (default: UTC with --data, America/New_York when generated)")
    parser.add_argument("--plan", default="Basic")
    parser.add_argument("--scopes", default=None, help="what the merchant grants on install")
    parser.add_argument("--live", action="store_true", help="keep the shops trading (webhooks flow)")
    parser.add_argument("--live-interval", type=float, default=1.0, help="seconds between live steps")
    parser.add_argument("--live-events", type=int, default=1, help="events per shop per live step")
    parser.add_argument("--fault", action="append", default=[], metavar="[SHOP:]KEY=VALUE",
                        help="a fault knob for every shop, or one shop (e.g. error_rate=0.1)")
    parser.add_argument("--app-url", default=None, help="the app's URL (default: settings.APP_URL)")
    parser.add_argument("--api-key", default=None, help="default: settings.SHOPIFY_API_KEY")
    parser.add_argument("--api-secret", default=None, help="default: settings.SHOPIFY_API_SECRET")
    parser.add_argument("--toml", default=str(DEFAULT_TOML), help="the app's shopify.app.toml")
    parser.add_argument("--no-toml", action="store_true", help="no app-level webhook subscriptions")
    parser.add_argument("--install", action="store_true", help="install the app on every shop at start")
    parser.add_argument("--retry-scale", type=float, default=1.0, help="scales the webhook retry schedule")
    parser.add_argument("--webhook-timeout", type=float, default=5.0)
    parser.add_argument("--webhook-concurrency", type=int, default=4)
    parser.add_argument("--spec-json", default=None,
                        help="shops as a JSON list of ShopSpec fields (overrides the per-shop flags)")


def serve(opts: dict[str, Any], write: Callable[[str], None]) -> None:
    """Start devstore as the options say, print where it is, run until SIGINT/SIGTERM."""
    specs = _specs(opts)
    faults: dict[str, dict[str, Any]] = {}
    for item in opts["fault"]:
        target, _, knob = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        key, sep, value = knob.partition("=")
        if not sep or not key:
            raise CommandError(f"--fault wants KEY=VALUE, got {item!r}")
        for spec in specs:
            if not target or shop_domain(target) == spec.domain:
                faults.setdefault(spec.domain, {})[key] = value  # typed by Platform.faults_set
    devstore = DevStore(
        specs,
        api_key=opts["api_key"] or settings_default("SHOPIFY_API_KEY", "devstore-api-key"),
        api_secret=opts["api_secret"] or settings_default("SHOPIFY_API_SECRET", "devstore-api-secret"),
        app_url=opts["app_url"] or settings_default("APP_URL", "http://127.0.0.1:8000"),
        port=opts["port"], host=opts["host"], live=opts["live"],
        retry_scale=opts["retry_scale"], webhook_timeout_s=opts["webhook_timeout"],
        webhook_concurrency=opts["webhook_concurrency"], live_interval_s=opts["live_interval"],
        live_events=opts["live_events"], toml_path=None if opts["no_toml"] else opts["toml"],
        faults=faults, install=opts["install"],
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        devstore.start()
    except DataFileError as exc:
        devstore.close()
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        devstore.close()
        raise CommandError(f"devstore could not listen on {opts['host']}:{opts['port']}: {exc}") from exc
    try:
        for spec in specs:
            store = devstore.store(spec.domain)
            write(f"{spec.domain}: {store.order_count()} orders, {store.customer_count()} customers, "
                  f"{store.currency}, {store.iana_timezone}")
            write(f"  admin: {devstore.admin_url(spec.domain)}")
        write(f"  app:   {devstore.app_url} (webhooks to {devstore.app_url}/webhooks)")
        # Parsed by devstore.testing.RemoteDevStore: keep the wording.
        write(f"devstore listening on {devstore.base_url}")
        stop.wait()
    finally:
        devstore.close()
        write("devstore stopped")


def _specs(opts: dict[str, Any]) -> list[ShopSpec]:
    if opts["spec_json"]:
        try:
            return [ShopSpec(**item) for item in json.loads(opts["spec_json"])]
        except (TypeError, ValueError) as exc:
            raise CommandError(f"--spec-json: {exc}") from exc
    extra = {"scopes": opts["scopes"]} if opts["scopes"] else {}
    specs = []
    for i, item in enumerate(opts["shops"] or ["devstore-demo"]):
        name, currency, zone = (item.split(":", 2) + [None, None])[:3]
        if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
            raise CommandError(f"--shop {item}: the currency must be a 3-letter ISO code such as EUR")
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise CommandError(f"--shop {item}: unknown time zone {zone!r}") from exc
        specs.append(ShopSpec(name=name, seed=opts["seed"] + i, customers=opts["customers"], months=opts["months"],
                              orders=opts["orders"], currency=currency or opts["currency"],
                              iana_timezone=zone or opts["timezone"], plan=opts["plan"], data_file=opts["data"],
                              **extra))
    return specs


class Command(BaseCommand):
    help = "Run devstore, the local Shopify stand-in, on one port for one or more shops."
    requires_system_checks: list[str] = []  # type: ignore[assignment]
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_serve_arguments(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        serve(opts, write)
