"""The Celery app: Redis broker, JSON only, queues and routes from Django settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("tenure")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
