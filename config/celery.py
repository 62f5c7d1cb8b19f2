"""The Celery app: Redis broker, JSON only, queues and routes from Django settings."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("tenure")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_or_exit(**kwargs: Any) -> None:
    """Load Django settings before Celery reads them, so a missing variable is one line."""
    import sys

    from config.errors import run_friendly
    from config.startup import settings_load

    run_friendly(settings_load, stream=sys.__stderr__)


@signals.celeryd_init.connect
@signals.beat_init.connect
def _services_or_exit(**kwargs: Any) -> None:
    """A worker or beat that cannot reach PostgreSQL or Redis says so in one line and exits 1."""
    from config.startup import services_check_or_exit

    services_check_or_exit()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _secrets_filter_on_celery_handlers(logger: Any, **kwargs: Any) -> None:
    """Celery replaces the root's handlers with its own (worker and beat logs): scrub those too."""
    from config.logging import secrets_filter_install

    secrets_filter_install(logger)
