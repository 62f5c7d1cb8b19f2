"""`make demo`: bring the whole stack up on this machine and keep it up until Ctrl-C.

With no arguments it starts devstore with a generated shop `demo` (three years of history,
about 25,000 orders, live trading on), the web server, two Celery workers (webhooks and
analytics; sync and backfill) and beat; installs the app into the shop through the
Shopify-managed install (devstore grants, the admin frame loads the app home with an
id_token, as a browser would); shows the first backfill, run by the real worker, as a
progress bar; waits for the first report; and prints the devstore admin URL where the app
opens embedded. `--data FILE` loads the shop from a CSV in either format devstore reads
instead of generating it. `--no-shop` runs only the app's processes (for a real Shopify).
`--exit-when-synced` stops everything once the data is in place, for `report` and `sync`.

Ctrl-C stops every process started here, and the embedded PostgreSQL and Redis if this
command started them (servers it found running are left alone).
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from config.services import VAR_DIR, embedded_started, stop_embedded
from config.stack import WORKERS, Stack, beat_argv, ensure_port_free, preflight, wait_http_ok, web_argv, worker_argv

# The generated shop: big enough to look like a real one (three years, ~25,000 orders from
# 8,000 customers), small enough to be synced and reported on a fresh machine in about a minute.
DEFAULT_SHOP = "demo"
DEFAULT_CUSTOMERS = 8000
DEFAULT_MONTHS = 36


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = ("Start PostgreSQL and Redis (embedded unless configured), devstore with a demo shop, the web "
            "server, the workers and beat; install the app into the shop and run its first backfill.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--exit-when-up", action="store_true", help="stop everything once /healthz is 200")
        parser.add_argument("--shop", default=DEFAULT_SHOP,
                            help=f"devstore shop to install Tenure into (default {DEFAULT_SHOP!r})")
        parser.add_argument("--no-shop", action="store_true",
                            help="no devstore: only PostgreSQL, Redis, the web server, workers and beat")
        parser.add_argument("--data", help="CSV for the shop (transactions or Shopify orders export)")
        parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, help="generated shop: customers")
        parser.add_argument("--months", type=int, default=DEFAULT_MONTHS, help="generated shop: months of history")
        parser.add_argument("--orders", type=int, default=None, help="generated shop: exact order count")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--currency", default=None)
        parser.add_argument("--timezone", default=None,
                            help="the shop's IANA zone (default: UTC for --data, America/New_York generated)")
        parser.add_argument("--devstore-port", type=int, default=0)
        parser.add_argument("--no-live", action="store_true", help="devstore does not trade (no new orders)")
        parser.add_argument("--exit-when-synced", action="store_true",
                            help="stop everything once the first backfill has finished")

    def handle(self, *args: Any, **opts: Any) -> None:
        port: int = opts["port"]
        if opts["no_shop"] and (opts["data"] or opts["exit_when_synced"]):
            raise CommandError("--data and --exit-when-synced need the devstore shop (drop --no-shop)")
        if opts["data"] and not os.path.exists(opts["data"]):
            raise CommandError(f"no such file: {opts['data']}")
        # Ctrl-C (even when started with SIGINT ignored, as a background job is) and `kill` both stop cleanly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        stack = Stack(env={**os.environ})
        devstore = None
        try:
            ensure_port_free(port, what="web server")
            preflight()
            devstore = self._run(opts, port=port, stack=stack)
        except KeyboardInterrupt:
            self.stdout.write("\n==> stopping")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            stack.stop()
            if devstore is not None:
                devstore.close()
            started = embedded_started()
            if started:
                names = " and ".join({"postgres": "PostgreSQL", "redis": "Redis"}[n] for n in sorted(started))
                self.stdout.write(f"==> stopping the embedded {names} started by this command")
                stop_embedded(started)
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _run(self, opts: dict[str, Any], *, port: int, stack: Stack) -> Any:
        """Everything up to Ctrl-C; returns the devstore (for the caller to close)."""
        db = settings.DATABASES["default"]
        self.stdout.write(f"==> PostgreSQL: {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}")
        self.stdout.write(f"==> Redis: {settings.REDIS_URL}")
        self.stdout.write("==> applying migrations")
        call_command("migrate", interactive=False, verbosity=0)
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        env = stack.env
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        app_url = f"http://127.0.0.1:{port}"
        devstore = None
        if not opts["no_shop"]:
            devstore = self._devstore_start(opts, app_url=app_url)
            # The children talk to devstore exactly as they would to Shopify: only the base URL differs.
            env.update({
                "SHOPIFY_API_BASE_URL": devstore.base_url,
                "SHOPIFY_ADMIN_ORIGIN": devstore.base_url,
                "SHOPIFY_APP_BRIDGE_URL": f"{devstore.base_url}/cdn/app-bridge.js",
                "SHOPIFY_API_KEY": str(settings.SHOPIFY_API_KEY),
                "SHOPIFY_API_SECRET": str(settings.SHOPIFY_API_SECRET),
                "APP_URL": app_url,
            })
            settings.SHOPIFY_API_BASE_URL = devstore.base_url
        self.stdout.write(f"==> starting the web server on {app_url} (log: {VAR_DIR / 'web.log'})")
        stack.start("web", web_argv(port), log=VAR_DIR / "web.log")
        for name, queues, concurrency in WORKERS:
            log = VAR_DIR / f"worker-{name}.log"
            self.stdout.write(f"==> starting the Celery worker for {queues} (log: {log})")
            stack.start(f"worker-{name}", worker_argv(queues, name=name, concurrency=concurrency), log=log)
        self.stdout.write(f"==> starting Celery beat (log: {VAR_DIR / 'beat.log'})")
        stack.start("beat", beat_argv(), log=VAR_DIR / "beat.log")
        wait_http_ok(f"{app_url}/healthz", seconds=60, stack=stack)
        self.stdout.write(self.style.SUCCESS(f"Tenure is up: {app_url}/healthz"))
        if opts["exit_when_up"]:
            return devstore
        if devstore is not None:
            domain = devstore.shops[0]
            shop_id, run = self._install_and_backfill(devstore, domain, stack=stack)
            if opts["exit_when_synced"]:
                return devstore
            self._first_report(shop_id, since=run.finished_at or timezone.now(), stack=stack)
            self.stdout.write(self.style.SUCCESS(f"Open the shop's admin, with Tenure in it: "
                                                 f"{devstore.admin_url(domain)}"))
            if not opts["no_live"]:
                self.stdout.write("devstore keeps trading: new orders reach Tenure by webhook as they happen.")
        self.stdout.write("Press Ctrl-C to stop every process started here.")
        while True:
            stack.check_alive()
            time.sleep(1)

    def _devstore_start(self, opts: dict[str, Any], *, app_url: str) -> Any:
        from devstore.testing import DevStore, ShopSpec

        spec = ShopSpec(name=opts["shop"].removesuffix(".myshopify.com"), seed=opts["seed"],
                        customers=opts["customers"], months=opts["months"], orders=opts["orders"],
                        currency=opts["currency"], iana_timezone=opts["timezone"], data_file=opts["data"])
        live = not (opts["exit_when_synced"] or opts["no_live"])
        what = (f"from {opts['data']}" if opts["data"]
                else f"generated: {spec.customers:,} customers, {spec.months} months"
                + (f", {spec.orders:,} orders" if spec.orders else ""))
        self.stdout.write(f"==> starting devstore with {spec.domain} ({what}{', live trading' if live else ''})")
        devstore = DevStore([spec], app_url=app_url, port=opts["devstore_port"], live=live).start()
        store = devstore.store(spec.domain)
        self.stdout.write(f"==> devstore at {devstore.base_url}: {store.order_count():,} orders, "
                          f"{store.customer_count():,} customers")
        return devstore

    def _install_and_backfill(self, devstore: Any, domain: str, *, stack: Stack) -> tuple[int, Any]:
        from shops.models import Shop
        from shops.services import shop_uninstall
        from sync.client import shopify_http_client
        from sync.models import SyncRun
        from sync.progress import progress_watch

        previous = Shop.objects.filter(domain=domain, state=Shop.State.INSTALLED).first()
        if previous is not None:
            # This devstore shop is new (devstore keeps nothing between runs): forget the copy a
            # previous demo synced, as an uninstall would, so the install starts clean.
            self.stdout.write(f"==> forgetting the previous demo's copy of {domain}")
            shop_uninstall(shop=previous)
        self.stdout.write(f"==> installing Tenure on {domain} (managed install, then the app home with an id_token)")
        started = timezone.now()
        devstore.install(domain)
        with shopify_http_client(read_timeout=120, follow_redirects=True) as http:
            response = http.get(devstore.app_home_url(domain))
        if response.status_code >= 400:
            raise CommandError(f"the app home answered {response.status_code}: {response.text[:300]}")
        deadline = time.monotonic() + 120
        run = None
        while run is None:
            stack.check_alive()
            run = (SyncRun.objects.filter(shop__domain=domain, kind=SyncRun.Kind.BACKFILL, created_at__gte=started)
                   .order_by("-created_at").first())
            if run is None:
                if time.monotonic() > deadline:
                    raise CommandError(f"the install did not start a backfill (see {VAR_DIR}/web.log and "
                                       f"{VAR_DIR}/worker-*.log)")
                time.sleep(0.3)
        self.stdout.write("==> backfill on the worker:")
        run = progress_watch(run_id=run.pk, out=getattr(self.stdout, "_out", self.stdout), alive=stack.check_alive)
        if run.status != SyncRun.Status.SUCCEEDED:
            raise CommandError(f"backfill {run.status}: {run.error}")
        self.stdout.write(self.style.SUCCESS(
            f"{domain} synced: {run.objects_written:,} rows written"
            + (" (history limited to 60 days)" if run.history_limited else "")))
        return run.shop_id, run

    def _first_report(self, shop_id: int, *, since: Any, stack: Stack) -> None:
        """Have the analytics worker compute the report now (not after the sync's debounce) and wait for it."""
        from analytics.models import AnalyticsSnapshot
        from analytics.tasks import refresh_shop

        self.stdout.write("==> computing the first report on the analytics worker")
        refresh_shop.delay(shop_id)
        deadline = time.monotonic() + 600
        while not AnalyticsSnapshot.objects.filter(shop_id=shop_id, computed_at__gte=since).exists():
            stack.check_alive()
            if time.monotonic() > deadline:
                raise CommandError(f"no report after 10 minutes (see {VAR_DIR}/worker-webhooks.log)")
            time.sleep(0.5)
