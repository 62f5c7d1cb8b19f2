"""`make demo`: bring the whole stack up on this machine and keep it up until Ctrl-C.

With `--shop NAME` it also starts devstore with that shop (generated, or loaded from `--data`
in either CSV format devstore reads), installs the app into it through the Shopify-managed
install (devstore grants, the admin frame loads the app home with an id_token, as a browser
would), and shows the first backfill, run by the real worker, as a progress bar.
`--exit-when-synced` stops everything once the data is in place, for `report` and `sync`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.services import BASE_DIR
from config.stack import Stack, beat_argv, ensure_port_free, preflight, wait_http_ok, web_argv, worker_argv


class Command(BaseCommand):
    help = "Start PostgreSQL and Redis (embedded unless configured), migrate, and run web, worker and beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--exit-when-up", action="store_true", help="stop everything once /healthz is 200")
        parser.add_argument("--shop", help="also start devstore with this shop and install Tenure into it")
        parser.add_argument("--data", help="CSV for the shop (transactions or Shopify orders export)")
        parser.add_argument("--customers", type=int, default=300, help="generated shop: customers")
        parser.add_argument("--months", type=int, default=24, help="generated shop: months of history")
        parser.add_argument("--orders", type=int, default=None, help="generated shop: exact order count")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--currency", default=None)
        parser.add_argument("--timezone", default="America/New_York")
        parser.add_argument("--devstore-port", type=int, default=0)
        parser.add_argument("--exit-when-synced", action="store_true",
                            help="with --shop: stop everything once the first backfill has finished")

    def handle(self, *args: Any, **opts: Any) -> None:
        port: int = opts["port"]
        if opts["exit_when_synced"] and not opts["shop"]:
            raise CommandError("--exit-when-synced needs --shop")
        if opts["data"] and not os.path.exists(opts["data"]):
            raise CommandError(f"no such file: {opts['data']}")
        ensure_port_free(port, what="web server")
        preflight()
        db = settings.DATABASES["default"]
        self.stdout.write(f"==> PostgreSQL: {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}")
        self.stdout.write(f"==> Redis: {settings.REDIS_URL}")
        self.stdout.write("==> applying migrations")
        call_command("migrate", interactive=False, verbosity=0)
        var = BASE_DIR / "var"
        var.mkdir(exist_ok=True)
        env = {**os.environ}
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        app_url = f"http://127.0.0.1:{port}"
        devstore = None
        if opts["shop"]:
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
        stack = Stack(env=env)
        try:
            self.stdout.write(f"==> starting web server on {app_url} (log: var/web.log)")
            stack.start("web", web_argv(port), log=var / "web.log")
            self.stdout.write("==> starting Celery worker (log: var/worker.log) and beat (log: var/beat.log)")
            stack.start("worker", worker_argv(), log=var / "worker.log")
            stack.start("beat", beat_argv(), log=var / "beat.log")
            wait_http_ok(f"{app_url}/healthz", seconds=60, stack=stack)
            self.stdout.write(self.style.SUCCESS(f"Tenure is up: {app_url}/healthz"))
            if devstore is not None:
                self._install_and_backfill(devstore, opts["shop"], stack=stack)
                if opts["exit_when_synced"]:
                    return
                self.stdout.write(self.style.SUCCESS(f"devstore admin: {devstore.admin_url(opts['shop'])}"))
            if opts["exit_when_up"]:
                return
            self.stdout.write("Press Ctrl-C to stop every process started here.")
            while True:
                stack.check_alive()
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\n==> stopping")
        finally:
            stack.stop()
            if devstore is not None:
                devstore.close()

    def _devstore_start(self, opts: dict[str, Any], *, app_url: str) -> Any:
        from devstore.testing import DevStore, ShopSpec

        spec = ShopSpec(name=opts["shop"].removesuffix(".myshopify.com"), seed=opts["seed"],
                        customers=opts["customers"], months=opts["months"], orders=opts["orders"],
                        currency=opts["currency"], iana_timezone=opts["timezone"], data_file=opts["data"])
        what = f"from {opts['data']}" if opts["data"] else "generated"
        self.stdout.write(f"==> starting devstore with {spec.domain} ({what})")
        devstore = DevStore([spec], app_url=app_url, port=opts["devstore_port"],
                            live=not opts["exit_when_synced"]).start()
        self.stdout.write(f"==> devstore at {devstore.base_url}")
        return devstore

    def _install_and_backfill(self, devstore: Any, name: str, *, stack: Stack) -> None:
        from shops.models import Shop
        from sync.client import shopify_http_client
        from sync.models import SyncRun
        from sync.progress import progress_watch

        domain = name if name.endswith(".myshopify.com") else f"{name}.myshopify.com"
        self.stdout.write(f"==> installing Tenure on {domain} (managed install, then the app home with an id_token)")
        devstore.install(domain)
        with shopify_http_client(read_timeout=120, follow_redirects=True) as http:
            response = http.get(devstore.app_home_url(domain))
        if response.status_code >= 400:
            raise CommandError(f"the app home answered {response.status_code}: {response.text[:300]}")
        deadline = time.monotonic() + 120
        run = None
        while run is None:
            stack.check_alive()
            shop = Shop.objects.filter(domain=domain).first()
            run = (SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL).order_by("-created_at").first()
                   if shop else None)
            if run is None:
                if time.monotonic() > deadline:
                    raise CommandError("the install did not start a backfill (see var/web.log, var/worker.log)")
                time.sleep(0.3)
        self.stdout.write("==> backfill on the worker:")
        run = progress_watch(run_id=run.pk, out=getattr(self.stdout, "_out", self.stdout), alive=stack.check_alive)
        if run.status != SyncRun.Status.SUCCEEDED:
            raise CommandError(f"backfill {run.status}: {run.error}")
        self.stdout.write(self.style.SUCCESS(
            f"{domain} synced: {run.objects_written:,} rows written"
            + (" (history limited to 60 days)" if run.history_limited else "")))
