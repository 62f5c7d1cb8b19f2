"""WSGI entry point (gunicorn config.wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application

from config.errors import run_friendly

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# A missing setting is one line, never a traceback. Exit code 3 is gunicorn's WORKER_BOOT_ERROR:
# the master stops instead of respawning a worker that can never boot. gunicorn.conf.py runs
# the same checks (and PostgreSQL/Redis reachability) once in the master, before any worker.
application = run_friendly(get_wsgi_application, exit_code=3)
