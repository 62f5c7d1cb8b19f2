"""WSGI entry point (gunicorn config.wsgi:application)."""

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

from config.errors import run_friendly

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def webhooks_first(django_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """POST /webhooks straight to its lean handler, everything else to Django.

    Shopify's deliveries are the app's busiest traffic and the only requests that need no
    session, user or template; see shops.webhooks.webhook_wsgi.
    """
    from shops.webhooks import webhook_wsgi

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/webhooks" and environ.get("REQUEST_METHOD") == "POST":
            return webhook_wsgi(environ, start_response)
        return django_app(environ, start_response)

    return app


# A missing setting is one line, never a traceback. Exit code 3 is gunicorn's WORKER_BOOT_ERROR:
# the master stops instead of respawning a worker that can never boot. gunicorn.conf.py runs
# the same checks (and PostgreSQL/Redis reachability) once in the master, before any worker.
django_application = run_friendly(get_wsgi_application, exit_code=3)
# What gunicorn serves. django_application alone is the baseline of bench/webhooks_load.py.
application = webhooks_first(django_application)
