"""Test settings: real PostgreSQL and Redis (system servers first, embedded otherwise)."""

import os

from config.services import database_config, redis_url
from config.settings.base import *  # noqa: F403
from config.settings.base import env

SECRET_KEY = "test-only-not-secret"  # noqa: S105
ALLOWED_HOSTS = ["*"]
SHOPIFY_API_KEY = "tenure-test-api-key"
SHOPIFY_API_SECRET = "tenure-test-api-secret-not-for-production"  # noqa: S105
SHOPIFY_API_SECRET_PREVIOUS = "tenure-test-api-secret-old-not-for-production"  # noqa: S105
TOKEN_ENCRYPTION_KEY = "lg8sqq89PcDx46fCsOmPM1FWprUit3ZDB-QtuOdJp7U="  # noqa: S105

DATABASES = {"default": database_config(prefer_system=True)}
# Several test runs may share one server (parallel checkouts): keep their databases apart.
_suffix = env("TENURE_TEST_DB_SUFFIX", "") or ""
DATABASES["default"]["TEST"] = {"NAME": f"test_tenure{('_' + _suffix) if _suffix else ''}"}
DATABASES["default"]["CONN_MAX_AGE"] = 0
REDIS_URL = redis_url(prefer_system=True)
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")}}  # noqa: F405

WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
