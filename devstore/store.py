"""One shop's data for devstore: orders, refunds and customers in the shop's own SQLite file.

SQLite (not Python lists) so a 1,000,000-order shop stays well under 1 GB resident and every
GraphQL page is an indexed keyset query. Money is kept in minor units (integers) of the shop
currency; presentment money is derived from a per-order rate. Times are UTC epoch seconds.

The seams the platform side plugs into (see notes in CONTRACT.md):
``handle_graphql``, ``bulk_result``, ``live_step``, ``ground_truth``, ``webhook_subscriptions``,
``faults``, ``pending_webhooks``/``on_event``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ORDER_ID_BASE = 5_100_000_000_000
CUSTOMER_ID_BASE = 7_200_000_000_000
REFUND_ID_BASE = 930_000_000_000
LINE_ITEM_ID_BASE = 13_400_000_000_000
TRANSACTION_ID_BASE = 6_600_000_000_000
DAY = 86_400

# Minor units per currency (ISO 4217 exponent); everything not listed has 2.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "HUF", "TWD", "UGX"})
# Units of each currency per 1 USD: enough to give presentment currencies plausible rates.
USD_RATES = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "CAD": 1.36,
    "AUD": 1.52,
    "NZD": 1.66,
    "JPY": 151.0,
    "CHF": 0.88,
    "SEK": 10.6,
    "DKK": 6.87,
    "NOK": 10.7,
    "MXN": 17.1,
    "SGD": 1.35,
}
PRESENTMENT_CHOICES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY")

# https://shopify.dev/docs/api/admin-graphql/latest/enums/customerrfmgroup
RFM_GROUPS = (
    "ACTIVE",
    "ALMOST_LOST",
    "AT_RISK",
    "CHAMPIONS",
    "DORMANT",
    "LOYAL",
    "NEEDS_ATTENTION",
    "NEW",
    "PREVIOUSLY_LOYAL",
    "PROMISING",
    "PROSPECTS",
)

FIRST_NAMES = (
    "Ava",
    "Liam",
    "Mia",
    "Noah",
    "Zoe",
    "Aroha",
    "Tane",
    "Ella",
    "Leo",
    "Isla",
    "Kai",
    "Ruby",
    "Hugo",
    "Maya",
    "Finn",
    "Nina",
    "Omar",
    "Priya",
    "Sam",
    "Yuki",
)
LAST_NAMES = (
    "Smith",
    "Ngata",
    "Brown",
    "Wilson",
    "Taylor",
    "Patel",
    "Nguyen",
    "Walker",
    "Kim",
    "Garcia",
    "Cohen",
    "Müller",
    "Rossi",
    "Silva",
    "Tanaka",
    "Hughes",
)
CITIES = (
    ("Auckland", "NZ"),
    ("Wellington", "NZ"),
    ("Sydney", "AU"),
    ("London", "GB"),
    ("Toronto", "CA"),
    ("Austin", "US"),
    ("Berlin", "DE"),
    ("Osaka", "JP"),
)
ORDER_TAGS = ("", "", "", "", "wholesale", "gift", "subscription", "vip")
CUSTOMER_TAGS = ("", "", "", "newsletter", "vip", "wholesale")

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    first_name TEXT, last_name TEXT, email TEXT, phone TEXT, city TEXT, country_code TEXT,
    tags TEXT NOT NULL DEFAULT '', rfm_group TEXT NOT NULL DEFAULT 'PROSPECTS',
    number_of_orders INTEGER NOT NULL DEFAULT 0, amount_spent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX customers_updated ON customers (updated_at, id);
CREATE INDEX customers_created ON customers (created_at, id);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, number INTEGER NOT NULL, customer_id INTEGER, email TEXT,
    created_at INTEGER NOT NULL, processed_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    cancelled_at INTEGER, cancel_reason TEXT, test INTEGER NOT NULL DEFAULT 0,
    financial_status TEXT NOT NULL, presentment_currency TEXT NOT NULL, rate REAL NOT NULL DEFAULT 1.0,
    subtotal INTEGER NOT NULL, shipping INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0, refunded_subtotal INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '',
    -- Order edits (items added or removed after checkout, no refund): they move the current
    -- subtotal and total, never subtotalPriceSet/totalPriceSet, which keep the checkout's amounts.
    edit_delta INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX orders_updated ON orders (updated_at, id);
CREATE INDEX orders_processed ON orders (processed_at, id);
CREATE INDEX orders_created ON orders (created_at, id);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, created_at INTEGER NOT NULL,
    processed_at INTEGER NOT NULL, amount INTEGER NOT NULL, subtotal INTEGER NOT NULL, note TEXT
);
CREATE INDEX refunds_order ON refunds (order_id, id);
"""

ORDER_COLUMNS = (
    "id",
    "number",
    "customer_id",
    "email",
    "created_at",
    "processed_at",
    "updated_at",
    "cancelled_at",
    "cancel_reason",
    "test",
    "financial_status",
    "presentment_currency",
    "rate",
    "subtotal",
    "shipping",
    "total",
    "refunded",
    "refunded_subtotal",
    "tags",
    "edit_delta",
)
CUSTOMER_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "country_code",
    "tags",
    "rfm_group",
    "number_of_orders",
    "amount_spent",
)
REFUND_COLUMNS = ("id", "order_id", "created_at", "processed_at", "amount", "subtotal", "note")


class DataFileError(ValueError):
    """A row of an input file that cannot be loaded; carries the 1-based line number."""

    def __init__(self, path: str | os.PathLike[str], line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        super().__init__(f"{self.path}, line {line}: {message}")


def minor_units(currency: str) -> int:
    return 1 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 100


def rate_between(shop_currency: str, presentment_currency: str) -> float:
    """Units of presentment currency per unit of shop currency."""
    return USD_RATES.get(presentment_currency, 1.0) / USD_RATES.get(shop_currency, 1.0)


def money_decimal(amount: int, currency: str) -> Decimal:
    """Minor units -> Decimal with the currency's exponent ("12.30", "1500")."""
    scale = minor_units(currency)
    if scale == 1:
        return Decimal(amount)
    return Decimal(amount).scaleb(-2)


def money_graphql(amount: int, currency: str) -> str:
    """GraphQL ``Decimal`` as Shopify prints it: no padding zeros beyond one decimal ("45.0", "129.95")."""
    if minor_units(currency) == 1:
        return f"{amount}.0"
    whole, cents = divmod(amount, 100)
    if cents == 0:
        return f"{whole}.0"
    if cents % 10 == 0:
        return f"{whole}.{cents // 10}"
    return f"{whole}.{cents:02d}"


def money_rest(amount: int, currency: str) -> str:
    """REST payloads print money with the currency's full exponent ("45.00")."""
    if minor_units(currency) == 1:
        return str(amount)
    whole, cents = divmod(amount, 100)
    return f"{whole}.{cents:02d}"


def presentment_amount(amount: int, rate: float, shop_currency: str, presentment_currency: str) -> int:
    """Shop-currency minor units -> presentment minor units at the order's rate."""
    major = amount / minor_units(shop_currency) * rate
    return round(major * minor_units(presentment_currency))


def iso_utc(ts: int | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def iso_local(ts: int | None, tz: ZoneInfo) -> str | None:
    """REST payloads carry times in the shop's zone with its offset ("2026-01-05T09:00:00+13:00")."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat()


def aware(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def order_gid(order_id: int) -> str:
    return f"gid://shopify/Order/{order_id}"


def customer_gid(customer_id: int) -> str:
    return f"gid://shopify/Customer/{customer_id}"


def refund_gid(refund_id: int) -> str:
    return f"gid://shopify/Refund/{refund_id}"


# devstore models one refunded line per refund: its id is the refund's plus this offset, in the
# REST payload (`refund_line_items[].id`) and as the GraphQL `RefundLineItem.id` alike.
REFUND_LINE_ITEM_ID_OFFSET = 17


def refund_line_item_gid(refund_id: int) -> str:
    return f"gid://shopify/RefundLineItem/{refund_id + REFUND_LINE_ITEM_ID_OFFSET}"


def split_tags(tags: str) -> list[str]:
    return [t.strip() for t in tags.split(",") if t.strip()]


@dataclass(frozen=True)
class GeneratorSpec:
    seed: int = 1
    customers: int = 300
    months: int = 24
    orders: int | None = None  # exact order count; None lets the purchase model decide


# ---------------------------------------------------------------------------------------------
# The store


class ShopStore:
    """All data of one shop, thread-safe (one writer lock; readers get their own connections)."""

    def __init__(
        self,
        *,
        name: str,
        currency: str = "USD",
        iana_timezone: str = "UTC",
        plan: str = "Basic",
        shop_id: int | None = None,
        shop_name: str | None = None,
        now: int | None = None,
    ) -> None:
        self.name = name
        self.domain = name if name.endswith(".myshopify.com") else f"{name}.myshopify.com"
        self.handle = self.domain.removesuffix(".myshopify.com")
        self.shop_name = shop_name or self.handle.replace("-", " ").title()
        self.currency = currency.upper()
        self.iana_timezone = iana_timezone
        self.tz = ZoneInfo(iana_timezone)
        self.plan = plan
        self.shop_id = (
            shop_id
            if shop_id is not None
            else 60_000_000_000 + int(hashlib.sha256(self.domain.encode()).hexdigest()[:8], 16) % 1_000_000_000
        )
        self.anchor = now if now is not None else int(time.time())
        # Read by both devstore halves: throttle_*, bulk_fail, bulk_expire, bulk_delay, ...
        self.faults: dict[str, Any] = {}
        # Created through webhookSubscriptionCreate; the platform delivers to these.
        self.webhook_subscriptions: list[dict[str, Any]] = []
        # Events generated on the API side (bulk_operations/finish); drained by the platform.
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None
        # Where the bulk result URLs point; the platform sets it once its port is known.
        self.base_url = "http://127.0.0.1"
        self.url_secret = secrets.token_bytes(32)
        self.clock: Callable[[], float] = time.time
        # The generator's bookkeeping for tests (not Shopify data): customers erased (GDPR) at
        # generation, and the orders they leave behind without a customer.
        self.erased_customer_ids: list[int] = []
        self.erased_customer_order_ids: list[int] = []
        self._lock = threading.RLock()
        self._dir = tempfile.mkdtemp(prefix=f"devstore-{self.handle}-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.db_path = os.path.join(self._dir, "shop.sqlite3")
        self._db = self._connect()
        self._db.executescript(SCHEMA)
        self._local = threading.local()
        self._ids: dict[str, int] = {}
        self._last_event_ts = 0
        # Lazily created API-side helpers (graphql_api, throttle, bulk import this module).
        self._api_state: dict[str, Any] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-32768")
        db.execute("PRAGMA temp_store=MEMORY")
        return db

    def reader(self) -> sqlite3.Connection:
        """A per-thread read connection (WAL lets readers run beside the writer)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA cache_size=-16384")
            self._local.db = db
        return db

    def new_reader(self) -> sqlite3.Connection:
        """A private connection for long scans (bulk exports) that must not share a cursor."""
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA cache_size=-16384")
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._finalizer()

    @property
    def tmp_dir(self) -> str:
        return self._dir

    def now(self) -> int:
        return int(self.clock())

    def _next_id(self, table: str) -> int:
        with self._lock:
            if table not in self._ids:
                (top,) = self._db.execute(f"SELECT max(id) FROM {table}").fetchone()  # noqa: S608
                base = {"orders": ORDER_ID_BASE, "customers": CUSTOMER_ID_BASE, "refunds": REFUND_ID_BASE}[table]
                self._ids[table] = max(top or base, base)
            self._ids[table] += 1 + random.Random(self._ids[table]).randrange(40)
            return self._ids[table]

    def emit(self, topic: str, payload: dict[str, Any]) -> None:
        """An event generated on the API side (e.g. bulk_operations/finish) for the platform to deliver."""
        callback = self.on_event
        if callback is not None:
            callback(topic, payload)
            return
        with self._lock:
            self._pending.append((topic, payload))

    def pending_webhooks(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            events, self._pending = self._pending, []
        return events

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        *,
        name: str,
        seed: int = 1,
        customers: int = 300,
        months: int = 24,
        orders: int | None = None,
        currency: str = "USD",
        iana_timezone: str = "UTC",
        plan: str = "Basic",
        now: int | None = None,
    ) -> ShopStore:
        """A deterministic shop: the same arguments (and ``now``) give the same rows."""
        if now is None:
            # Anchor to the start of the current UTC day so a seed is stable for a day of runs.
            now = int(time.time()) // DAY * DAY
        store = cls(name=name, currency=currency, iana_timezone=iana_timezone, plan=plan, now=now)
        _generate_into(store, GeneratorSpec(seed=seed, customers=customers, months=months, orders=orders), now)
        return store

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str,
        currency: str | None = None,
        iana_timezone: str = "UTC",
        plan: str = "Basic",
        now: int | None = None,
    ) -> ShopStore:
        """A shop loaded from a transactions CSV or Shopify's Orders export (detected by header)."""
        _utf8_check(Path(path))
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = fh.readline()
        loader = _load_shopify_export if header.startswith("Name,Email,Financial Status") else _load_transactions
        rows = loader(Path(path), currency)
        store = cls(name=name, currency=rows.currency, iana_timezone=iana_timezone, plan=plan, now=now)
        rows.insert_into(store)
        return store

    def insert_rows(
        self,
        *,
        customers: Iterable[tuple[Any, ...]] = (),
        orders: Iterable[tuple[Any, ...]] = (),
        refunds: Iterable[tuple[Any, ...]] = (),
    ) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            db.executemany(
                f"INSERT INTO customers ({','.join(CUSTOMER_COLUMNS)}) "  # noqa: S608
                f"VALUES ({','.join('?' * len(CUSTOMER_COLUMNS))})",
                customers,
            )
            db.executemany(
                f"INSERT INTO orders ({','.join(ORDER_COLUMNS)}) "  # noqa: S608
                f"VALUES ({','.join('?' * len(ORDER_COLUMNS))})",
                orders,
            )
            db.executemany(
                f"INSERT INTO refunds ({','.join(REFUND_COLUMNS)}) "  # noqa: S608
                f"VALUES ({','.join('?' * len(REFUND_COLUMNS))})",
                refunds,
            )
            db.execute("COMMIT")
            self._ids.clear()

    def customer_stats_refresh(self, customer_ids: Iterable[int] | None = None) -> None:
        """Recompute numberOfOrders, amountSpent and rfmGroup as Shopify reports them.

        numberOfOrders counts the customer's non-test orders (cancelled ones included, as
        Shopify's lifetime order count does); amountSpent sums what was actually paid and kept:
        the current total (total minus refunds) of non-test orders that were not voided.
        """
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            where = ""
            params: list[Any] = []
            if customer_ids is not None:
                ids = list(customer_ids)
                if not ids:
                    db.execute("COMMIT")
                    return
                db.execute("CREATE TEMP TABLE IF NOT EXISTS touched (id INTEGER PRIMARY KEY)")
                db.execute("DELETE FROM touched")
                db.executemany("INSERT OR IGNORE INTO touched VALUES (?)", ((i,) for i in ids))
                where = "WHERE id IN (SELECT id FROM touched)"
            db.execute(
                f"""
                UPDATE customers SET
                  number_of_orders = coalesce((SELECT count(*) FROM orders o
                      WHERE o.customer_id = customers.id AND o.test = 0), 0),
                  amount_spent = coalesce((SELECT sum(o.total + o.edit_delta - o.refunded) FROM orders o
                      WHERE o.customer_id = customers.id AND o.test = 0 AND o.financial_status != 'voided'), 0)
                {where}
                """,  # noqa: S608
                params,
            )
            if customer_ids is not None:
                # Quintiles need every buyer; a touched prospect who bought becomes NEW until the
                # next full refresh (Shopify also recomputes RFM groups in batches, not per order).
                db.execute(
                    "UPDATE customers SET rfm_group = 'NEW' WHERE number_of_orders > 0 AND rfm_group = 'PROSPECTS' "
                    "AND id IN (SELECT id FROM touched)"
                )
                db.execute(
                    "UPDATE customers SET rfm_group = 'PROSPECTS' WHERE number_of_orders = 0 "
                    "AND id IN (SELECT id FROM touched)"
                )
            db.execute("COMMIT")
        if customer_ids is None:
            self.rfm_refresh()

    def rfm_refresh(self) -> None:
        """Shopify's rfmGroup: quintile scores of recency, frequency and monetary among buyers."""
        with self._lock:
            db = self._db
            rows = db.execute(
                """SELECT c.id, max(o.processed_at), count(o.id), coalesce(sum(o.total + o.edit_delta - o.refunded), 0)
                   FROM customers c JOIN orders o ON o.customer_id = c.id AND o.test = 0
                   GROUP BY c.id"""
            ).fetchall()
            db.execute("BEGIN")
            db.execute("UPDATE customers SET rfm_group = 'PROSPECTS'")
            if rows:
                arr = np.array([(r[1], r[2], r[3]) for r in rows], dtype=np.float64)
                groups = rfm_groups(arr[:, 0], arr[:, 1], arr[:, 2], now=self.anchor_for_rfm())
                db.executemany(
                    "UPDATE customers SET rfm_group = ? WHERE id = ?",
                    zip(groups, (r[0] for r in rows), strict=True),
                )
            db.execute("COMMIT")

    def anchor_for_rfm(self) -> int:
        return max(self.anchor, self._last_event_ts)

    # -- reads ------------------------------------------------------------------------------

    def order_count(self) -> int:
        return int(self.reader().execute("SELECT count(*) FROM orders").fetchone()[0])

    def customer_count(self) -> int:
        return int(self.reader().execute("SELECT count(*) FROM customers").fetchone()[0])

    def ground_truth(self) -> dict[str, list[dict[str, Any]] | dict[str, Any]]:
        """What the shop holds now, in the CONTRACT.md shapes (money as Decimal, aware datetimes)."""
        db = self.new_reader()
        cur = self.currency
        try:
            orders = []
            for r in db.execute(f"SELECT {','.join(ORDER_COLUMNS)} FROM orders ORDER BY id"):  # noqa: S608
                o = dict(zip(ORDER_COLUMNS, r, strict=True))
                orders.append(
                    {
                        "shopify_id": o["id"],
                        "name": f"#{o['number']}",
                        "customer_shopify_id": o["customer_id"],
                        "processed_at": aware(o["processed_at"]),
                        "created_at": aware(o["created_at"]),
                        "updated_at": aware(o["updated_at"]),
                        "cancelled_at": aware(o["cancelled_at"]),
                        "test": bool(o["test"]),
                        "financial_status": o["financial_status"].upper(),
                        "currency": cur,
                        "presentment_currency": o["presentment_currency"],
                        "subtotal": money_decimal(o["subtotal"], cur),
                        "current_subtotal": money_decimal(
                            o["subtotal"] + o["edit_delta"] - o["refunded_subtotal"], cur),
                        "total": money_decimal(o["total"], cur),
                        "current_total": money_decimal(o["total"] + o["edit_delta"] - o["refunded"], cur),
                        "total_refunded": money_decimal(o["refunded"], cur),
                        "tags": split_tags(o["tags"]),
                    }
                )
            refunds = [
                {
                    "shopify_id": r[0],
                    "order_shopify_id": r[1],
                    "created_at": aware(r[2]),
                    "processed_at": aware(r[3]),
                    "amount": money_decimal(r[4], cur),
                    "subtotal_amount": money_decimal(r[5], cur),
                }
                for r in db.execute(f"SELECT {','.join(REFUND_COLUMNS)} FROM refunds ORDER BY id")  # noqa: S608
            ]
            customers = []
            for r in db.execute(f"SELECT {','.join(CUSTOMER_COLUMNS)} FROM customers ORDER BY id"):  # noqa: S608
                c = dict(zip(CUSTOMER_COLUMNS, r, strict=True))
                customers.append(
                    {
                        "shopify_id": c["id"],
                        "created_at": aware(c["created_at"]),
                        "updated_at": aware(c["updated_at"]),
                        "rfm_group": c["rfm_group"],
                        "number_of_orders": c["number_of_orders"],
                        "amount_spent": money_decimal(c["amount_spent"], cur),
                        "amount_spent_currency": cur,
                        "tags": split_tags(c["tags"]),
                    }
                )
        finally:
            db.close()
        shop = {
            "domain": self.domain,
            "name": self.shop_name,
            "currency": cur,
            "iana_timezone": self.iana_timezone,
            "plan": self.plan,
            "shopify_gid": f"gid://shopify/Shop/{self.shop_id}",
        }
        return {"orders": orders, "refunds": refunds, "customers": customers, "shop": shop}

    def order_row(self, order_id: int) -> dict[str, Any] | None:
        r = (
            self.reader()
            .execute(
                f"SELECT {','.join(ORDER_COLUMNS)} FROM orders WHERE id = ?",  # noqa: S608
                (order_id,),
            )
            .fetchone()
        )
        return None if r is None else dict(zip(ORDER_COLUMNS, r, strict=True))

    def customer_row(self, customer_id: int) -> dict[str, Any] | None:
        r = (
            self.reader()
            .execute(
                f"SELECT {','.join(CUSTOMER_COLUMNS)} FROM customers WHERE id = ?",  # noqa: S608
                (customer_id,),
            )
            .fetchone()
        )
        return None if r is None else dict(zip(CUSTOMER_COLUMNS, r, strict=True))

    def refund_rows(self, order_id: int) -> list[dict[str, Any]]:
        return [
            dict(zip(REFUND_COLUMNS, r, strict=True))
            for r in self.reader().execute(
                f"SELECT {','.join(REFUND_COLUMNS)} FROM refunds WHERE order_id = ? ORDER BY id",  # noqa: S608
                (order_id,),
            )
        ]

    # -- the API half (implemented in graphql_api / bulk) ------------------------------------

    def handle_graphql(
        self, token_scopes: set[str] | frozenset[str], body: bytes, *, app_id: str = "app"
    ) -> tuple[int, dict[str, str], bytes]:
        """POST /admin/api/2026-10/graphql.json for an authenticated token with these scopes."""
        from devstore.graphql_api import graphql_handle

        return graphql_handle(store=self, token_scopes=frozenset(token_scopes), body=body, app_id=app_id)

    def bulk_result(
        self, op_id: str | int, *, expires: str | int | None, signature: str | None
    ) -> tuple[int, dict[str, str], Iterable[bytes]]:
        """GET /bulk/<op-id>.jsonl?expires&signature: (status, headers, streamed body chunks)."""
        from devstore.bulk import bulk_result_stream

        return bulk_result_stream(store=self, op_id=op_id, expires=expires, signature=signature)

    # -- live trading -----------------------------------------------------------------------

    def live_step(self, n: int, rng: Any = None) -> list[tuple[str, dict[str, Any]]]:
        """Advance trading by ``n`` events; returns the webhooks they trigger, in order."""
        from devstore.live import live_step

        if rng is None:
            rng = random.Random(0)
        return live_step(store=self, n=n, rng=rng)

    def event_time(self) -> int:
        """A strictly increasing timestamp for live events (several per wall-clock second)."""
        with self._lock:
            ts = max(self.now(), self._last_event_ts + 1)
            self._last_event_ts = ts
            return ts


# ---------------------------------------------------------------------------------------------
# RFM


def rfm_groups(last_ts: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, *, now: int) -> list[str]:
    """Map buyers to Shopify's CustomerRfmGroup values from 1-5 quintile scores.

    Shopify does not publish its cut-offs; the mapping follows the enum's own descriptions
    (https://shopify.dev/docs/api/admin-graphql/latest/enums/customerrfmgroup): recency
    decides recent vs. lapsed, frequency and monetary split within.
    """
    n = len(last_ts)
    if n == 0:
        return []
    recency_days = (now - last_ts) / DAY
    r = _quintile(-recency_days)
    f = _quintile(frequency + monetary * 1e-12)
    m = _quintile(monetary)
    out: list[str] = []
    for ri, fi, mi, freq in zip(r.tolist(), f.tolist(), m.tolist(), frequency.tolist(), strict=True):
        fm = (fi + mi) / 2
        if ri == 5 and freq <= 1:
            out.append("NEW")
        elif ri >= 4 and fm >= 4.5:
            out.append("CHAMPIONS")
        elif ri >= 4 and fm >= 3.5:
            out.append("LOYAL")
        elif ri >= 4 and fm >= 2.5:
            out.append("ACTIVE")
        elif ri >= 4:
            out.append("PROMISING")
        elif ri == 3 and fm >= 3:
            out.append("NEEDS_ATTENTION")
        elif ri == 3:
            out.append("ALMOST_LOST")
        elif fm >= 4.5:
            out.append("PREVIOUSLY_LOYAL")
        elif fm >= 3.5:
            out.append("AT_RISK")
        elif ri == 2:
            out.append("ALMOST_LOST")
        else:
            out.append("DORMANT")
    return out


def _quintile(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(len(values))
    return 1 + (ranks * 5) // max(len(values), 1)


# ---------------------------------------------------------------------------------------------
# The generator


def _generate_into(store: ShopStore, spec: GeneratorSpec, now: int) -> None:
    """Buy-till-you-die customers (Pareto/NBD-like rates, BG dropout), skewed spend, and the traps."""
    rng = np.random.default_rng(spec.seed)
    start = now - int(spec.months * 30.44 * DAY)
    horizon = now - start
    n_cust = spec.customers
    scale = minor_units(store.currency)
    unit_major = USD_RATES.get(store.currency, 1.0) if scale == 100 else USD_RATES.get(store.currency, 100.0)

    # Customers: acquisition skewed towards recent months (a growing shop), prospects never buy.
    acq = start + (horizon * rng.random(n_cust) ** 0.8).astype(np.int64)
    prospect = rng.random(n_cust) < 0.05
    lam = rng.gamma(shape=0.9, scale=1.0 / 75.0, size=n_cust)  # purchases per day, mean ~1 per 83 days
    p_drop = rng.beta(1.3, 4.0, size=n_cust)  # chance of dropping out after each purchase
    mean_value = rng.lognormal(mean=np.log(55.0), sigma=0.55, size=n_cust) * unit_major
    guest_share = 0.08

    target_customer_orders = None if spec.orders is None else int(round(spec.orders * (1 - guest_share)))
    rate_scale = 1.0
    for _ in range(8):
        sub = np.random.default_rng(spec.seed + 1)
        cust_idx, when = _btyd_orders(sub, acq, lam * rate_scale, p_drop, prospect, now)
        if target_customer_orders is None or len(when) >= target_customer_orders:
            break
        rate_scale *= 1.25 * target_customer_orders / max(len(when), 1)
    if target_customer_orders is not None and len(when) > target_customer_orders:
        # Keep every first purchase, drop a random sample of repeats to hit the exact count.
        first = np.ones(len(when), dtype=bool)
        first[1:] = cust_idx[1:] != cust_idx[:-1]
        repeats = np.flatnonzero(~first)
        drop = len(when) - target_customer_orders
        if drop <= len(repeats):
            keep = np.ones(len(when), dtype=bool)
            keep[rng.choice(repeats, size=drop, replace=False)] = False
        else:
            keep = np.zeros(len(when), dtype=bool)
            keep[rng.choice(len(when), size=target_customer_orders, replace=False)] = True
        cust_idx, when = cust_idx[keep], when[keep]

    n_guest = (
        int(spec.orders - len(when))
        if spec.orders is not None
        else int(round(len(when) * guest_share / (1 - guest_share)))
    )
    n_guest = max(n_guest, 0)
    guest_when = start + (horizon * rng.random(n_guest) ** 0.8).astype(np.int64)
    all_cust = np.concatenate([cust_idx, np.full(n_guest, -1, dtype=np.int64)])
    all_when = np.concatenate([when, guest_when])
    order_sort = np.argsort(all_when, kind="stable")
    all_cust = all_cust[order_sort]
    created = all_when[order_sort]
    n = len(created)

    # Customers: ids in creation order; buyers created just before their first purchase.
    has_c = all_cust >= 0
    first_buy = np.full(n_cust, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_buy, all_cust[has_c], created[has_c])
    bought = first_buy < np.iinfo(np.int64).max
    cust_created = np.where(bought, first_buy - (rng.random(n_cust) * 3 * DAY).astype(np.int64), acq)
    del first_buy
    cust_created = np.minimum(cust_created, now - 60)
    cust_order = np.argsort(cust_created, kind="stable")
    cust_ids_sorted = CUSTOMER_ID_BASE + np.cumsum(rng.integers(1, 60, n_cust))
    cust_id_of = np.empty(n_cust, dtype=np.int64)
    cust_id_of[cust_order] = cust_ids_sorted
    last_buy = np.zeros(n_cust, dtype=np.int64)
    np.maximum.at(last_buy, all_cust[has_c], created[has_c])
    del has_c
    cust_updated = np.maximum(cust_created, last_buy)
    profile_edit = rng.random(n_cust) < 0.1
    cust_updated = np.where(
        profile_edit,
        np.minimum(np.maximum(cust_updated, cust_created + (rng.random(n_cust) * 90 * DAY).astype(np.int64)), now - 1),
        cust_updated,
    )
    # Erased customers (GDPR redaction): the record is gone, their orders keep no customer.
    erased = bought & (rng.random(n_cust) < 0.01)
    store.erased_customer_ids = sorted(cust_id_of[erased].tolist())
    cust_tags = rng.integers(0, len(CUSTOMER_TAGS), n_cust)
    city_pick = rng.integers(0, len(CITIES), n_cust)
    first_pick = rng.integers(0, len(FIRST_NAMES), n_cust)
    last_pick = rng.integers(0, len(LAST_NAMES), n_cust)
    order_ids = ORDER_ID_BASE + np.cumsum(rng.integers(1, 60, n))
    choices = [c for c in PRESENTMENT_CHOICES if c != store.currency]
    rates = {c: round(rate_between(store.currency, c), 6) for c in choices}

    chunk = 50_000

    def customer_rows() -> Iterator[tuple[Any, ...]]:
        for lo in range(0, n_cust, chunk):
            idx = cust_order[lo : lo + chunk]
            for j, cid, c_at, u_at, ct, cp, fp, lp, er in zip(
                idx.tolist(),
                cust_id_of[idx].tolist(),
                cust_created[idx].tolist(),
                cust_updated[idx].tolist(),
                cust_tags[idx].tolist(),
                city_pick[idx].tolist(),
                first_pick[idx].tolist(),
                last_pick[idx].tolist(),
                erased[idx].tolist(),
                strict=True,
            ):
                if er:
                    continue
                first, last = FIRST_NAMES[fp], LAST_NAMES[lp]
                city, cc = CITIES[cp]
                email = f"{first.lower()}.{j}@example.com"
                phone = f"+6421{j:07d}"[:13]
                yield (cid, c_at, u_at, first, last, email, phone, city, cc, CUSTOMER_TAGS[ct], "PROSPECTS", 0, 0)

    # Per-order attributes are drawn chunk by chunk (own stream, so still deterministic): a
    # million orders never need more than one chunk of attribute arrays in memory.
    orng = np.random.default_rng(spec.seed + 2)
    refunds: list[tuple[Any, ...]] = []
    next_refund = [REFUND_ID_BASE]

    def order_rows() -> Iterator[tuple[Any, ...]]:
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            yield from _order_chunk(lo, hi)

    def _order_chunk(lo: int, hi: int) -> Iterator[tuple[Any, ...]]:
        m = hi - lo
        c_at = created[lo:hi]
        owner = all_cust[lo:hi]
        has_owner = owner >= 0
        safe_owner = np.maximum(owner, 0)
        erased_owner = has_owner & erased[safe_owner]
        customer_of = np.where(erased_owner, -1, np.where(has_owner, cust_id_of[safe_owner], -1))
        store.erased_customer_order_ids.extend(order_ids[lo:hi][erased_owner].tolist())
        # Order values: gamma around each customer's own mean (guests: the population's).
        base_mean = np.where(has_owner, mean_value[safe_owner], 55.0 * unit_major)
        subtotal = np.maximum(np.round(orng.gamma(3.0, base_mean / 3.0) * scale), 1).astype(np.int64)
        free_ship = subtotal >= 100 * unit_major * scale
        shipping = np.where(free_ship | (orng.random(m) < 0.3), 0, round(6.5 * unit_major * scale)).astype(np.int64)
        total = subtotal + shipping
        test = orng.random(m) < 0.01
        processed = c_at.copy()
        imported = orng.random(m) < 0.02  # imported from an older system: processedAt before createdAt
        processed[imported] -= (orng.random(int(imported.sum())) * 200 * DAY).astype(np.int64)
        # Cancellations: half voided before capture, half captured and then fully refunded.
        cancelled = (orng.random(m) < 0.03) & (c_at < now - 3600)
        cancel_at = np.minimum(c_at + 3600 + (orng.random(m) * 4 * DAY).astype(np.int64), now - 1)
        voided = cancelled & (orng.random(m) < 0.5)
        # Refunds on kept orders: dated after the order, partial or full, sometimes two partials.
        delay = DAY + orng.exponential(10 * DAY, m).astype(np.int64)
        refunded1 = (~cancelled) & (orng.random(m) < 0.08) & (c_at + delay < now)
        partial = refunded1 & (orng.random(m) < 0.6)
        second = partial & (orng.random(m) < 0.15) & (c_at + 2 * delay < now)
        share1 = orng.uniform(0.1, 0.7, m)
        share2 = orng.uniform(0.1, 0.5, m)
        edited = orng.random(m) < 0.06
        edit_at = np.minimum(c_at + (orng.random(m) * 30 * DAY).astype(np.int64), now - 1)
        use_foreign = orng.random(m) < 0.22
        foreign_pick = orng.integers(0, len(choices), m)
        tag_pick = orng.integers(0, len(ORDER_TAGS), m)
        # Most edits add or remove items (current amounts move, no refund), the rest only retag; drawn
        # last so the draws above are the same as before edits had amounts.
        amount_edit = edited & ~cancelled & ~refunded1 & (orng.random(m) < 0.6)
        edit_share = orng.uniform(-0.4, 0.6, m)
        edit_delta = np.where(amount_edit, np.maximum(np.round(subtotal * edit_share), 1 - subtotal), 0)
        edit_delta = edit_delta.astype(np.int64)
        edit_delta = np.where(amount_edit & (edit_delta == 0), 1, edit_delta)
        updated = np.maximum(c_at, processed)
        updated = np.where(cancelled, np.maximum(updated, cancel_at), updated)
        updated = np.where(edited, np.maximum(updated, edit_at), updated)
        refunded = np.zeros(m, dtype=np.int64)
        refunded_sub = np.zeros(m, dtype=np.int64)
        rid = next_refund[0]
        for k in np.flatnonzero((cancelled & ~voided) | refunded1).tolist():
            i = lo + k
            oid = int(order_ids[i])
            if cancelled[k]:
                when_r = int(cancel_at[k])
                sub_amt, amt = int(subtotal[k]), int(total[k])
            elif not partial[k]:
                when_r = int(c_at[k] + delay[k])
                sub_amt, amt = int(subtotal[k]), int(total[k])
            else:
                when_r = int(c_at[k] + delay[k])
                sub_amt = max(1, int(subtotal[k] * share1[k]))
                amt = sub_amt
            rid += 1 + (i % 37)
            # processedAt is its own field on Shopify (an imported or delayed refund's transactions
            # are processed before the refund is recorded): most refunds here differ by minutes.
            refunds.append((rid, oid, when_r, max(int(c_at[k]), when_r - (rid % 5) * 90), amt, sub_amt, None))
            refunded[k] += amt
            refunded_sub[k] += sub_amt
            updated[k] = max(updated[k], when_r)
            if second[k]:
                when_2 = int(c_at[k] + 2 * delay[k])
                sub2 = max(1, int((subtotal[k] - refunded_sub[k]) * share2[k]))
                rid += 3
                refunds.append((rid, oid, when_2, max(int(c_at[k]), when_2 - (rid % 5) * 90), sub2, sub2, None))
                refunded[k] += sub2
                refunded_sub[k] += sub2
                updated[k] = max(updated[k], when_2)
        next_refund[0] = rid
        for k, (oid, cid, ca_, pa_, ua_, canc, cx, vd, tst, fr, fp, sub, shp, tot, ref, rsub, tg, ed) in enumerate(
            zip(
                order_ids[lo:hi].tolist(),
                customer_of.tolist(),
                c_at.tolist(),
                processed.tolist(),
                updated.tolist(),
                cancelled.tolist(),
                cancel_at.tolist(),
                voided.tolist(),
                test.tolist(),
                use_foreign.tolist(),
                foreign_pick.tolist(),
                subtotal.tolist(),
                shipping.tolist(),
                total.tolist(),
                refunded.tolist(),
                refunded_sub.tolist(),
                tag_pick.tolist(),
                edit_delta.tolist(),
                strict=True,
            )
        ):
            i = lo + k
            if vd:
                status = "voided"
            elif ref <= 0:
                status = "paid"
            else:
                status = "refunded" if ref >= tot else "partially_refunded"
            pres = choices[fp] if fr else store.currency
            yield (
                oid,
                1001 + i,
                cid if cid >= 0 else None,
                f"buyer{i}@example.com",
                ca_,
                pa_,
                ua_,
                cx if canc else None,
                ("customer" if vd else "declined") if canc else None,
                1 if tst else 0,
                status,
                pres,
                rates[pres] if fr else 1.0,
                sub,
                shp,
                tot,
                ref,
                rsub,
                ORDER_TAGS[tg],
                ed,
            )

    store.insert_rows(customers=customer_rows(), orders=order_rows(), refunds=refunds)
    store.customer_stats_refresh()


def _btyd_orders(
    rng: np.random.Generator, acq: np.ndarray, lam: np.ndarray, p_drop: np.ndarray, prospect: np.ndarray, now: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer purchase times: first at acquisition, exponential gaps, dropout after each buy."""
    n_cust = len(acq)
    buyers = np.flatnonzero(~prospect)
    # Purchases before dropping out ~ Geometric(p): the first purchase always happens.
    max_buys = rng.geometric(np.clip(p_drop[buyers], 1e-3, 1.0))
    max_buys = np.minimum(max_buys, 400)
    total = int(max_buys.sum())
    owner = np.repeat(buyers, max_buys)
    gaps = rng.exponential(1.0, total) / np.maximum(lam[owner], 1e-6) * DAY
    # Zero the gap of each customer's first purchase, then cumulative time within each customer.
    starts = np.concatenate([[0], np.cumsum(max_buys)[:-1]])
    gaps[starts] = 0.0
    cum = np.cumsum(gaps)
    offsets = np.repeat(cum[starts], max_buys)
    when = acq[owner] + (cum - offsets).astype(np.int64)
    keep = when < now
    del n_cust
    return owner[keep].astype(np.int64), when[keep]


# ---------------------------------------------------------------------------------------------
# File loaders


@dataclass
class _LoadedRows:
    currency: str
    customers: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    refunds: list[tuple[Any, ...]]

    def insert_into(self, store: ShopStore) -> None:
        store.insert_rows(customers=self.customers, orders=self.orders, refunds=self.refunds)
        store.customer_stats_refresh()


UTC_ZONE = ZoneInfo("UTC")
# Far above any real order (Shopify's money columns hold 16 digits before the point), and low enough
# that a shop's sums in minor units stay within SQLite's 64-bit integers.
MAX_AMOUNT = Decimal(10) ** 12
# Moments the store can print back as dates: from 1970 to the end of 9999, UTC.
TIME_RANGE = (0, int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()))


def _shown(value: str) -> str:
    """A field's value for an error message: a 1,000,000-character field must not make a 1 MB message."""
    return repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value):,} characters)"


def _utf8_check(path: Path) -> None:
    """Fail with the line of the first byte that is not UTF-8 text (a BOM is allowed).

    Read line by line in binary: a UTF-8 sequence never holds a newline byte, so each line
    decodes on its own and a large file is never held in memory.
    """
    with open(path, "rb") as fh:
        if fh.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise DataFileError(path, 1, "the file is UTF-16 text; save it as CSV UTF-8")
        fh.seek(0)
        for number, raw in enumerate(fh, start=1):
            # UTF-16 without its BOM: every ASCII character comes with a NUL byte.
            if b"\x00" in raw:
                raise DataFileError(path, number, "a NUL byte (is the file UTF-16?); save it as CSV UTF-8")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFileError(
                    path, number, f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8 "
                    "(is the file Latin-1 or Windows-1252?); save it as CSV UTF-8") from exc


def _csv_rows(reader: csv.DictReader[str], path: Path) -> Iterator[dict[str, Any]]:
    """The reader's rows; a line the csv module refuses (a field over its size limit) is a DataFileError."""
    try:
        yield from reader
    except csv.Error as exc:
        raise DataFileError(path, reader.line_num + 1, _csv_problem(exc)) from exc


def _csv_fieldnames(reader: csv.DictReader[str], path: Path) -> list[str]:
    try:
        return list(reader.fieldnames or [])
    except csv.Error as exc:
        raise DataFileError(path, reader.line_num + 1, _csv_problem(exc)) from exc


def _csv_problem(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        return f"a field is longer than {csv.field_size_limit():,} characters"
    return f"not a CSV line: {exc}"


def _parse_time(value: str, *, path: Path, line: int, column: str, tz: ZoneInfo = UTC_ZONE) -> int:
    text = value.strip()
    try:
        if len(text) == 10:
            dt = datetime.strptime(text, "%Y-%m-%d")  # noqa: DTZ007 - zone applied below
        elif " +" in text or " -" in text[10:]:
            dt = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        # Near year 1 or 9999 a zone offset moves the moment out of datetime's range.
        ts = int(dt.timestamp())
    except (ValueError, OverflowError) as exc:
        raise DataFileError(path, line, f"{column}: not a date/time: {_shown(value)}") from exc
    if not TIME_RANGE[0] <= ts <= TIME_RANGE[1]:
        raise DataFileError(path, line, f"{column}: not between 1970 and 9999 (UTC): {_shown(value)}")
    return ts


def _parse_money(value: str, currency: str, *, path: Path, line: int, column: str) -> int:
    try:
        amount = Decimal(value.strip())
    except InvalidOperation as exc:
        raise DataFileError(path, line, f"{column}: not an amount: {_shown(value)}") from exc
    if not amount.is_finite() or amount < 0:
        raise DataFileError(path, line, f"{column}: must be a non-negative amount: {_shown(value)}")
    if amount >= MAX_AMOUNT:
        raise DataFileError(path, line, f"{column}: must be less than {MAX_AMOUNT:,}: {_shown(value)}")
    return int((amount * minor_units(currency)).to_integral_value())


def _parse_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "y", "t"}


def _parse_id(value: str, *, path: Path, line: int, column: str) -> int:
    text = value.strip().lstrip("#")
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1]
    # ASCII digits only (int() refuses "²", which isdigit() accepts) and at most 19 of them (2**63 has 19).
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 0 < int(text) < 2**63:
        raise DataFileError(path, line, f"{column}: not a positive integer id: {_shown(value)}")
    return int(text)


def _status_of(total: int, refunded: int) -> str:
    if refunded <= 0:
        return "paid"
    return "refunded" if refunded >= total else "partially_refunded"


def _assemble(
    path: Path, currency: str, raw: list[dict[str, Any]], customer_info: dict[int, dict[str, Any]]
) -> _LoadedRows:
    """Orders (already parsed) -> table rows; customers are derived from their orders."""
    raw.sort(key=lambda o: (o["created_at"], o["id"]))
    customers: dict[int, list[int]] = {}
    orders = []
    refunds = []
    rid = REFUND_ID_BASE
    for number, o in enumerate(raw, start=1001):
        cid = o["customer_id"]
        if cid is not None:
            span = customers.setdefault(cid, [o["created_at"], o["created_at"]])
            span[0] = min(span[0], o["created_at"])
            span[1] = max(span[1], o["updated_at"])
        refunded = min(o["refunded"], o["total"])
        refunded_sub = min(refunded, o["subtotal"])
        status = (
            "voided"
            if o["cancelled_at"] is not None and refunded == 0 and o.get("voided", True)
            else _status_of(o["total"], refunded)
        )
        orders.append(
            (
                o["id"],
                o.get("number") or number,
                cid,
                o.get("email"),
                o["created_at"],
                o["processed_at"],
                o["updated_at"],
                o["cancelled_at"],
                "other" if o["cancelled_at"] is not None else None,
                1 if o["test"] else 0,
                status,
                o["presentment_currency"],
                rate_between(currency, o["presentment_currency"]),
                o["subtotal"],
                o["shipping"],
                o["total"],
                refunded,
                refunded_sub,
                o.get("tags", ""),
                0,  # a file holds orders as they are now: no edit to model
            )
        )
        if refunded > 0:
            rid += 1
            when = o["refunded_at"] or o["updated_at"]
            refunds.append((rid, o["id"], when, when, refunded, refunded_sub, None))
    customer_rows = []
    for cid, (first, last) in customers.items():
        info = customer_info.get(cid, {})
        customer_rows.append(
            (
                cid,
                first,
                last,
                info.get("first_name"),
                info.get("last_name"),
                info.get("email"),
                info.get("phone"),
                info.get("city"),
                info.get("country_code"),
                "",
                "PROSPECTS",
                0,
                0,
            )
        )
    return _LoadedRows(currency=currency, customers=customer_rows, orders=orders, refunds=refunds)


def _load_transactions(path: Path, currency: str | None) -> _LoadedRows:
    """customer_id, order_id, processed_at, amount[, currency, test, cancelled_at, refunded_amount, refunded_at]."""
    required = ("customer_id", "order_id", "processed_at", "amount")
    raw: list[dict[str, Any]] = []
    seen: set[int] = set()
    file_currency: str | None = None
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in _csv_fieldnames(reader, path)]
        missing = [c for c in required if c not in fields]
        if missing:
            raise DataFileError(path, 1, f"missing column(s): {', '.join(missing)}")
        reader.fieldnames = fields
        for row in _csv_rows(reader, path):
            line = reader.line_num  # physical line: blank lines and quoted newlines count
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            if None in row:
                raise DataFileError(path, line, "more fields than the header has")
            row_currency = (row.get("currency") or "").strip().upper()
            if row_currency and (len(row_currency) != 3 or not (row_currency.isascii() and row_currency.isalpha())):
                raise DataFileError(path, line, f"currency: not an ISO 4217 code: {_shown(row_currency)}")
            if row_currency and file_currency is None:
                file_currency = row_currency
            shop_currency = (currency or file_currency or "USD").upper()
            oid = _parse_id(row["order_id"] or "", path=path, line=line, column="order_id")
            if oid in seen:
                raise DataFileError(path, line, f"order_id {oid} appears twice")
            seen.add(oid)
            cust_text = (row["customer_id"] or "").strip()
            cid = _parse_id(cust_text, path=path, line=line, column="customer_id") if cust_text else None
            ts = _parse_time(row["processed_at"] or "", path=path, line=line, column="processed_at")
            amount = _parse_money(row["amount"] or "", shop_currency, path=path, line=line, column="amount")
            cancelled_text = (row.get("cancelled_at") or "").strip()
            cancelled_at = (
                _parse_time(cancelled_text, path=path, line=line, column="cancelled_at") if cancelled_text else None
            )
            refunded_text = (row.get("refunded_amount") or "").strip()
            refunded = (
                _parse_money(refunded_text, shop_currency, path=path, line=line, column="refunded_amount")
                if refunded_text
                else 0
            )
            if refunded > amount:
                raise DataFileError(path, line, "refunded_amount is larger than amount")
            refunded_at_text = (row.get("refunded_at") or "").strip()
            refunded_at = (
                _parse_time(refunded_at_text, path=path, line=line, column="refunded_at") if refunded_at_text else None
            )
            if refunded_at is not None and refunded_at < ts:
                raise DataFileError(path, line, "refunded_at is before processed_at")
            if refunded and refunded_at is None:
                refunded_at = ts
            updated = max(x for x in (ts, cancelled_at, refunded_at) if x is not None)
            raw.append(
                {
                    "id": oid,
                    "customer_id": cid,
                    "created_at": ts,
                    "processed_at": ts,
                    "updated_at": updated,
                    "cancelled_at": cancelled_at,
                    "test": _parse_bool(row.get("test") or ""),
                    "presentment_currency": row_currency or shop_currency,
                    "subtotal": amount,
                    "shipping": 0,
                    "total": amount,
                    "refunded": refunded,
                    "refunded_at": refunded_at,
                }
            )
    if not raw:
        raise DataFileError(path, 2, "no orders in the file")
    shop_currency = (currency or file_currency or "USD").upper()
    return _assemble(path, shop_currency, raw, {})


# The columns of Shopify admin's Orders > Export CSV (one row per line item; order-level
# fields only on the first row of each order).
SHOPIFY_EXPORT_COLUMNS = (
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Billing Street",
    "Billing Address1",
    "Billing Address2",
    "Billing Company",
    "Billing City",
    "Billing Zip",
    "Billing Province",
    "Billing Country",
    "Billing Phone",
    "Shipping Name",
    "Shipping Street",
    "Shipping Address1",
    "Shipping Address2",
    "Shipping Company",
    "Shipping City",
    "Shipping Zip",
    "Shipping Province",
    "Shipping Country",
    "Shipping Phone",
    "Notes",
    "Note Attributes",
    "Cancelled at",
    "Payment Method",
    "Payment Reference",
    "Refunded Amount",
    "Vendor",
    "Outstanding Balance",
    "Employee",
    "Location",
    "Device ID",
    "Id",
    "Tags",
    "Risk Level",
    "Source",
    "Lineitem discount",
    "Tax 1 Name",
    "Tax 1 Value",
    "Tax 2 Name",
    "Tax 2 Value",
    "Tax 3 Name",
    "Tax 3 Value",
    "Tax 4 Name",
    "Tax 4 Value",
    "Tax 5 Name",
    "Tax 5 Value",
    "Phone",
    "Receipt Number",
    "Duties",
    "Billing Province Name",
    "Shipping Province Name",
    "Payment ID",
    "Payment Terms Name",
    "Next Payment Due At",
    "Payment References",
)


def _load_shopify_export(path: Path, currency: str | None) -> _LoadedRows:
    """Shopify's Orders export: the `Id` column gives order ids; customers are keyed by email.

    The export has no customer id, so each distinct email becomes one customer with a stable
    id derived from it (guest checkouts without an email stay guests).
    """
    required = ("Name", "Email", "Financial Status", "Currency", "Subtotal", "Total", "Created at")
    raw: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    info: dict[int, dict[str, Any]] = {}
    file_currency: str | None = None
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = _csv_fieldnames(reader, path)
        missing = [c for c in required if c not in fields]
        if missing:
            raise DataFileError(path, 1, f"missing column(s): {', '.join(missing)}")
        for row in _csv_rows(reader, path):
            line = reader.line_num  # physical line: blank lines and quoted newlines count
            name = (row.get("Name") or "").strip()
            if not name:
                raise DataFileError(path, line, "Name is empty")
            if name in by_name:
                continue  # further line items of an order already read
            if not (row.get("Created at") or "").strip():
                raise DataFileError(path, line, f"first row of order {_shown(name)} has no 'Created at'")
            cur = (row.get("Currency") or "").strip().upper()
            if len(cur) != 3 or not (cur.isascii() and cur.isalpha()):
                raise DataFileError(path, line, f"Currency: not an ISO 4217 code: {_shown(cur)}")
            file_currency = file_currency or cur
            shop_currency = (currency or file_currency).upper()
            id_text = (row.get("Id") or "").strip()
            digits = "".join(ch for ch in name if ch in "0123456789")
            if id_text:
                oid = _parse_id(id_text, path=path, line=line, column="Id")
            elif digits:
                oid = _parse_id(digits, path=path, line=line, column="Name")
            else:
                raise DataFileError(path, line, f"order {_shown(name)} has neither an Id nor a number")
            created = _parse_time(row["Created at"], path=path, line=line, column="Created at")
            paid_text = (row.get("Paid at") or "").strip()
            processed = _parse_time(paid_text, path=path, line=line, column="Paid at") if paid_text else created
            subtotal = _parse_money(row.get("Subtotal") or "0", shop_currency, path=path, line=line, column="Subtotal")
            total = _parse_money(row.get("Total") or "0", shop_currency, path=path, line=line, column="Total")
            shipping_text = (row.get("Shipping") or "").strip()
            shipping = (
                _parse_money(shipping_text, shop_currency, path=path, line=line, column="Shipping")
                if shipping_text
                else 0
            )
            refunded_text = (row.get("Refunded Amount") or "").strip()
            refunded = (
                _parse_money(refunded_text, shop_currency, path=path, line=line, column="Refunded Amount")
                if refunded_text
                else 0
            )
            cancelled_text = (row.get("Cancelled at") or "").strip()
            cancelled = (
                _parse_time(cancelled_text, path=path, line=line, column="Cancelled at") if cancelled_text else None
            )
            email = (row.get("Email") or "").strip().lower()
            cid = None
            if email:
                cid = CUSTOMER_ID_BASE + int(hashlib.sha256(email.encode()).hexdigest()[:10], 16) % 10**11
                billing = (row.get("Billing Name") or "").strip().split(" ", 1)
                info.setdefault(
                    cid,
                    {
                        "email": email,
                        "first_name": billing[0] or None,
                        "last_name": billing[1] if len(billing) > 1 else None,
                        "phone": (row.get("Billing Phone") or "").strip() or None,
                        "city": (row.get("Billing City") or "").strip() or None,
                        "country_code": (row.get("Billing Country") or "").strip() or None,
                    },
                )
            financial = (row.get("Financial Status") or "").strip().lower()
            order = {
                "id": oid,
                # An order number as long as an id or longer is not one Shopify would give.
                "number": int(digits) if 0 < len(digits) < 19 else None,
                "customer_id": cid,
                "email": email or None,
                "created_at": created,
                "processed_at": processed,
                "updated_at": max(x for x in (created, processed, cancelled) if x is not None),
                "cancelled_at": cancelled,
                "test": False,
                "presentment_currency": cur,
                "subtotal": subtotal,
                "shipping": shipping,
                "total": total,
                "refunded": refunded,
                "refunded_at": None,
                "voided": financial == "voided",
                "tags": (row.get("Tags") or "").strip(),
            }
            by_name[name] = order
            raw.append(order)
    if not raw:
        raise DataFileError(path, 2, "no orders in the file")
    shop_currency = (currency or file_currency or "USD").upper()
    # Customers of an export are created with their first order (the export has no signup date).
    return _assemble(path, shop_currency, raw, info)


def shop_timezone_offset(store: ShopStore, ts: int) -> timedelta:
    off = datetime.fromtimestamp(ts, store.tz).utcoffset()
    return off or timedelta(0)
