"""`python manage.py sync <shop> [--full]`: sync one shop now, with a progress bar."""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from shops.models import Shop
from sync import services
from sync.models import SyncRun
from sync.progress import progress_line, progress_watch


class Command(BaseCommand):
    help = "Backfill (first time or --full) or incrementally sync one shop, showing progress."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shop", help="shop name or domain (acme or acme.myshopify.com)")
        parser.add_argument("--full", action="store_true", help="a full backfill even if one already ran")
        parser.add_argument("--worker", action="store_true",
                            help="enqueue on the Celery worker and watch, instead of running here")
        parser.add_argument("--reconcile", action="store_true", help="run the daily reconciliation now")

    def handle(self, *args: Any, **opts: Any) -> None:
        name: str = opts["shop"]
        domain = name if name.endswith(".myshopify.com") else f"{name}.myshopify.com"
        shop = Shop.objects.filter(domain=domain).first()
        if shop is None:
            raise CommandError(f"no shop {domain}; install the app on it first")
        if shop.state != Shop.State.INSTALLED:
            raise CommandError(f"{domain} is {shop.state}")
        if opts["reconcile"]:
            run = services.reconcile_run(shop=shop, days=None)
            if run is None:
                raise CommandError("another sync of this shop is running")
            self.stdout.write(f"reconcile {run.status}: {run.state} {run.error}")
            return
        has_backfill = SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL,
                                              status=SyncRun.Status.SUCCEEDED).exists()
        if opts["full"] or not has_backfill:
            run = services.backfill_create(shop=shop, full=opts["full"])
            if opts["worker"]:
                from sync.tasks import backfill_run

                backfill_run.delay(run.pk)
                run = progress_watch(run_id=run.pk, out=getattr(self.stdout, "_out", self.stdout))
            else:
                # Run here; a thread draws the bar from the committed progress.
                worker = threading.Thread(target=_backfill_in_thread, args=(run.pk,), daemon=True)
                worker.start()
                run = progress_watch(run_id=run.pk, out=getattr(self.stdout, "_out", self.stdout))
                worker.join()
        else:
            if opts["worker"]:
                from sync.tasks import incremental_sync

                incremental_sync.delay(shop.pk)
                self.stdout.write("incremental sync enqueued")
                return
            inc = services.incremental_run(shop=shop)
            if inc is None:
                raise CommandError("another sync of this shop is running")
            run = inc
            self.stdout.write(progress_line(run))
        if run.status != SyncRun.Status.SUCCEEDED:
            raise CommandError(f"{run.kind} {run.status}: {run.error}")
        self.stdout.write(self.style.SUCCESS(f"{run.kind} done: {run.objects_written:,} rows written"))


def _backfill_in_thread(run_id: int) -> None:
    """The backfill on this thread's own database connection, closed when it is done."""
    try:
        services.backfill_run(run_id=run_id)
    finally:
        connection.close()
