"""Developer and demo settings: embedded servers when no URLs are configured."""

from config.services import database_config, redis_url
from config.settings.base import *  # noqa: F403
from config.settings.base import env, env_bool

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env("DJANGO_SECRET_KEY", "local-dev-only-not-secret")  # noqa: S105
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
SHOPIFY_API_KEY = env("SHOPIFY_API_KEY", "tenure-dev-api-key")
SHOPIFY_API_SECRET = env("SHOPIFY_API_SECRET", "tenure-dev-api-secret-not-for-production")  # noqa: S105
# A fixed dev key (Fernet, base64 of 32 bytes); production refuses to start without its own.
TOKEN_ENCRYPTION_KEY = env("TOKEN_ENCRYPTION_KEY", "o9t1xQhcUgqIzYjpxYZorffFHNicmlsd0itNRsalSZ4=")

DATABASES = {"default": database_config(prefer_system=False)}
REDIS_URL = redis_url(prefer_system=False)
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL

WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
