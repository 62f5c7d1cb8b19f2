"""`make demo`: bring the whole stack up on this machine and keep it up until Ctrl-C."""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from config.services import BASE_DIR
from config.stack import Stack, beat_argv, ensure_port_free, preflight, wait_http_ok, web_argv, worker_argv


class Command(BaseCommand):
    help = "Start PostgreSQL and Redis (embedded unless configured), migrate, and run web, worker and beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--exit-when-up", action="store_true", help="stop everything once /healthz is 200")

    def handle(self, *args: Any, **opts: Any) -> None:
        port: int = opts["port"]
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
        stack = Stack(env=env)
        try:
            self.stdout.write(f"==> starting web server on http://127.0.0.1:{port} (log: var/web.log)")
            stack.start("web", web_argv(port), log=var / "web.log")
            self.stdout.write("==> starting Celery worker (log: var/worker.log) and beat (log: var/beat.log)")
            stack.start("worker", worker_argv(), log=var / "worker.log")
            stack.start("beat", beat_argv(), log=var / "beat.log")
            wait_http_ok(f"http://127.0.0.1:{port}/healthz", seconds=60, stack=stack)
            self.stdout.write(self.style.SUCCESS(f"Tenure is up: http://127.0.0.1:{port}/healthz"))
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
