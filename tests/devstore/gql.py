"""Helpers for the devstore API contract tests: one small shop on a fixed clock, raw GraphQL calls."""

from __future__ import annotations

from typing import Any

import orjson

from devstore.store import ShopStore

# 2026-11-15T00:00:00Z: generation anchor and the frozen clock of the small test shops.
NOW = 1_795_132_800
ALL_SCOPES = frozenset({"read_orders", "read_all_orders", "read_customers", "protected_customer_data"})
BASIC_SCOPES = frozenset({"read_orders", "read_all_orders", "read_customers"})


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def small_shop(name: str = "acme", **kwargs: Any) -> tuple[ShopStore, Clock]:
    options: dict[str, Any] = {
        "seed": 7, "customers": 120, "months": 18, "currency": "NZD", "iana_timezone": "Pacific/Auckland",
    }
    options.update(kwargs)
    store = ShopStore.generate(name=name, now=NOW, **options)
    clock = Clock()
    store.clock = clock
    return store, clock


def gql(
    store: ShopStore,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    scopes: frozenset[str] = ALL_SCOPES,
    app_id: str = "app",
) -> tuple[int, dict[str, Any]]:
    """POST the raw JSON body the way the HTTP layer hands it over; returns (status, parsed body)."""
    body = orjson.dumps({"query": query, "variables": variables or {}})
    status, headers, raw = store.handle_graphql(scopes, body, app_id=app_id)
    assert headers["Content-Type"].startswith("application/json")
    return status, orjson.loads(raw)
