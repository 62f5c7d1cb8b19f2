"""Production settings: every secret and URL from the environment, no defaults."""

import os

import dj_database_url

from config.errors import StartupError
from config.secret_checks import production_secrets_check
from config.settings.base import *  # noqa: F403
from config.settings.base import env

REQUIRED = ["DJANGO_SECRET_KEY", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "DATABASE_URL", "REDIS_URL",
            "TOKEN_ENCRYPTION_KEY", "APP_URL", "ALLOWED_HOSTS"]
_missing = [name for name in REQUIRED if not env(name)]
if _missing:
    raise StartupError(f"missing required setting {_missing[0]}: set it in the environment "
                       f"(all required: {', '.join(REQUIRED)}; see .env.example)")
production_secrets_check(os.environ)

SECRET_KEY = env("DJANGO_SECRET_KEY")
DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL") or "", conn_max_age=60, conn_health_checks=True)}
REDIS_URL = env("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 30
SECURE_CONTENT_TYPE_NOSNIFF = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
