"""Shared bits of the devstore platform tests: one reused HTTP client, shop-addressed calls, a webhook sink."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# One client for the whole run: building an httpx.Client loads CA certificates (~80 ms each).
HTTP = httpx.Client(timeout=10)

API_KEY = "platform-test-key"
SECRET = "platform-test-secret-0123456789abcdef"
APP_URL = "http://127.0.0.1:9"  # nothing listens there unless a test says otherwise
GRAPHQL = "/admin/api/2026-10/graphql.json"
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


class ShopClient:
    """Requests to devstore as the app's transport sends them: ``Host: <shop>.myshopify.com``."""

    def __init__(self, base_url: str, shop: str | None = None, http: httpx.Client = HTTP) -> None:
        self.base_url = base_url
        self.shop = shop
        self.http = http

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.shop:
            headers["Host"] = self.shop
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def __enter__(self) -> ShopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def graphql(self, access_token: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return self.post(GRAPHQL, json={"query": query, "variables": variables or {}},
                         headers={"X-Shopify-Access-Token": access_token})


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def topic(self) -> str:
        return self.headers["X-Shopify-Topic"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A stand-in for the app's webhook endpoint; ``status`` decides each answer."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: Callable[[int], int] = lambda n: 200  # noqa: E731 - n counts requests from 1
    delay_s: Callable[[int], float] = lambda n: 0.0  # noqa: E731
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topics(self) -> list[str]:
        with self.lock:
            return [r.topic for r in self.received]


@contextmanager
def receiver_serve() -> Iterator[Receiver]:
    """A Receiver listening on a free loopback port for as long as the block runs."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                n = len(state.received)
            time.sleep(state.delay_s(n))
            self.send_response(state.status(n))
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
