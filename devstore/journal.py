"""An optional record of every Admin GraphQL request devstore receives, for the conformance guard.

With ``DEVSTORE_JOURNAL`` set to a file path, each request's raw body is appended to it as one
JSON line ``{"ua": <User-Agent>, "body": <request body>}``; processes (the test run, a spawned
devstore, a worker's in-process devstore) may share the file: each line is one ``write`` on a file
opened for appending. The test suite checks every document the app sent against Shopify's real
schema, bulk rules and cost cap (tests/shopify_guard.py), whatever devstore answered.
"""

from __future__ import annotations

import os
import threading

import orjson

ENV = "DEVSTORE_JOURNAL"
_lock = threading.Lock()


def record(user_agent: str | None, body: bytes) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = orjson.dumps({"ua": user_agent or "", "body": body.decode("utf-8", "replace")}) + b"\n"
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
