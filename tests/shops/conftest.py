"""Helpers for the shops tests: signed webhooks, session tokens, shops with credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.utils import timezone

from shops.models import Shop, ShopCredential


def webhook_headers(body: bytes, *, topic: str, shop: str, webhook_id: str | None = None,
                    secret: str | None = None) -> dict[str, str]:
    key = (secret or settings.SHOPIFY_API_SECRET).encode()
    return {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_HMAC_SHA256": base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode(),
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": shop,
        "HTTP_X_SHOPIFY_WEBHOOK_ID": webhook_id or str(uuid.uuid4()),
        "HTTP_X_SHOPIFY_API_VERSION": "2026-10",
        "HTTP_X_SHOPIFY_TRIGGERED_AT": "2026-11-22T08:00:00.000Z",
    }


def post_webhook(client: Any, payload: Any, *, topic: str, shop: str, webhook_id: str | None = None,
                 secret: str | None = None, raw: bytes | None = None) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = webhook_headers(body, topic=topic, shop=shop, webhook_id=webhook_id, secret=secret)
    return client.generic("POST", "/webhooks", body, content_type="application/json", **headers)


def session_token(shop: str, *, aud: str | None = None, secret: str | None = None, exp_in: int = 60,
                  nbf_offset: int = -5, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": aud or settings.SHOPIFY_API_KEY,
        "sub": "42", "exp": now + exp_in, "nbf": now + nbf_offset, "iat": now + nbf_offset,
        "jti": str(uuid.uuid4()), "sid": "session-1",
    }
    claims.update(overrides)
    return jwt.encode(claims, secret or settings.SHOPIFY_API_SECRET, algorithm="HS256")


def shop_create(domain: str, *, state: str = Shop.State.INSTALLED, token: str = "shpat_test",  # noqa: S107
                expires_in: int = 3600, refresh_token: str = "shprt_test") -> Shop:  # noqa: S107
    shop = Shop.objects.create(domain=domain, state=state, name=domain.split(".")[0].title(), currency="NZD",
                               iana_timezone="Pacific/Auckland", scopes=",".join(settings.SHOPIFY_SCOPES),
                               installed_at=timezone.now())
    credential = ShopCredential(shop=shop, scopes=shop.scopes,
                                access_token_expires_at=timezone.now() + timedelta(seconds=expires_in),
                                refresh_token_expires_at=timezone.now() + timedelta(days=30))
    credential.access_token = token
    credential.refresh_token = refresh_token
    credential.save()
    return shop


@pytest.fixture
def shop_a(db: None) -> Shop:
    return shop_create("acme.myshopify.com")


@pytest.fixture
def shop_b(db: None) -> Shop:
    return shop_create("bravo.myshopify.com")


@dataclass
class WsgiResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes


class WsgiClient:
    """Sends requests through config.wsgi.application, the callable gunicorn serves, so POST
    /webhooks takes its lean path; the same calls as Django's test client where tests use them.

    Like Django's test client it keeps the test's database connection between requests; with
    ``recycle_connections`` it leaves Django's request signals alone, as under gunicorn.
    """

    def __init__(self, *, recycle_connections: bool = False) -> None:
        self.recycle_connections = recycle_connections

    def generic(self, method: str, path: str, data: bytes = b"", content_type: str = "application/octet-stream",
                **extra: str) -> WsgiResponse:
        from django.core.signals import request_finished, request_started
        from django.db import close_old_connections

        from config.wsgi import application

        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
                   "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                   "HTTP_HOST": "testserver", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
                   "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": True,
                   "wsgi.multiprocess": True, "wsgi.run_once": False, "CONTENT_TYPE": content_type,
                   "CONTENT_LENGTH": str(len(data)), **extra}
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started.append((status, headers))

        if not self.recycle_connections:
            # As Django's test client does: a test's connection must not be closed between requests.
            request_started.disconnect(close_old_connections)
            request_finished.disconnect(close_old_connections)
        try:
            result = application(environ, start_response)
            content = b"".join(result)
            getattr(result, "close", lambda: None)()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        status, headers = started[0]
        return WsgiResponse(int(status.split()[0]), dict(headers), content)

    def get(self, path: str) -> WsgiResponse:
        return self.generic("GET", path)
