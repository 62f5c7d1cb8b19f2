"""Set-based writes of orders, refunds and customers: COPY into staging, then one guarded upsert.

Every path (bulk backfill, incremental pages, webhooks) writes through `rows_write`, so they all
share one rule: a row is replaced only by data at least as new (`updated_at`), and an id with a
tombstone (deleted on Shopify) is never written again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from sync.normalize import CUSTOMER_COLUMNS, ORDER_COLUMNS, REFUND_COLUMNS, Row, copy_line

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS tenure_stage_order (
  shopify_id bigint, name text, customer_shopify_id bigint, processed_at timestamptz, created_at timestamptz,
  updated_at timestamptz, cancelled_at timestamptz, test boolean, financial_status text, currency text,
  presentment_currency text, subtotal numeric, current_subtotal numeric, total numeric, current_total numeric,
  total_refunded numeric, tags text[]
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tenure_stage_refund (
  shopify_id bigint, order_shopify_id bigint, created_at timestamptz, processed_at timestamptz, amount numeric,
  subtotal_amount numeric, updated_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tenure_stage_customer (
  shopify_id bigint, created_at timestamptz, updated_at timestamptz, rfm_group text, number_of_orders bigint,
  amount_spent numeric, amount_spent_currency text, tags text[]
) ON COMMIT DELETE ROWS;
"""

_UPSERT_ORDERS = """
INSERT INTO sync_order AS o (shop_id, {cols})
SELECT DISTINCT ON (s.shopify_id) %(shop)s, {s_cols}
FROM tenure_stage_order s
WHERE NOT EXISTS (SELECT 1 FROM sync_deletion d
                  WHERE d.shop_id = %(shop)s AND d.kind = 'order' AND d.shopify_id = s.shopify_id)
ORDER BY s.shopify_id, s.updated_at DESC
ON CONFLICT (shop_id, shopify_id) DO UPDATE SET {updates}
WHERE excluded.updated_at >= o.updated_at
""".format(  # noqa: S608 - column names are our constants
    cols=", ".join(ORDER_COLUMNS),
    s_cols=", ".join(f"s.{c}" for c in ORDER_COLUMNS),
    updates=", ".join(f"{c} = excluded.{c}" for c in ORDER_COLUMNS if c != "shopify_id"),
)

# A refund's line-item subtotal is unknown when its line items come as separate bulk lines: those
# rows are written first without touching the subtotal, then the rows that know it.
_UPSERT_REFUNDS = """
INSERT INTO sync_refund AS r (shop_id, shopify_id, order_shopify_id, created_at, processed_at, amount,
                              subtotal_amount, updated_at)
SELECT DISTINCT ON (s.shopify_id) %(shop)s, s.shopify_id, s.order_shopify_id, s.created_at, s.processed_at,
       s.amount, coalesce(s.subtotal_amount, 0), s.updated_at
FROM tenure_stage_refund s
WHERE s.subtotal_amount IS {known} NULL
  AND NOT EXISTS (SELECT 1 FROM sync_deletion d
                  WHERE d.shop_id = %(shop)s AND d.kind = 'order' AND d.shopify_id = s.order_shopify_id)
ORDER BY s.shopify_id, s.updated_at DESC NULLS LAST
ON CONFLICT (shop_id, shopify_id) DO UPDATE SET
  order_shopify_id = excluded.order_shopify_id, created_at = excluded.created_at,
  processed_at = excluded.processed_at, amount = excluded.amount, {subtotal}
  updated_at = excluded.updated_at
WHERE r.updated_at IS NULL OR excluded.updated_at IS NULL OR excluded.updated_at >= r.updated_at
"""
_UPSERT_REFUNDS_UNKNOWN = _UPSERT_REFUNDS.format(known="", subtotal="")
_UPSERT_REFUNDS_KNOWN = _UPSERT_REFUNDS.format(known="NOT", subtotal="subtotal_amount = excluded.subtotal_amount,")

# REST customer payloads carry no stats (order count, amount spent, RFM group): rows with stats
# are written first, then the rows without, which only move dates and tags.
_UPSERT_CUSTOMERS = """
INSERT INTO sync_customer AS c (shop_id, shopify_id, created_at, updated_at, rfm_group, number_of_orders,
                                amount_spent, amount_spent_currency, tags)
SELECT DISTINCT ON (s.shopify_id) %(shop)s, s.shopify_id, s.created_at, s.updated_at, coalesce(s.rfm_group, ''),
       coalesce(s.number_of_orders, 0), coalesce(s.amount_spent, 0),
       coalesce(s.amount_spent_currency, %(currency)s), s.tags
FROM tenure_stage_customer s
WHERE s.number_of_orders IS {known} NULL
  AND NOT EXISTS (SELECT 1 FROM sync_deletion d
                  WHERE d.shop_id = %(shop)s AND d.kind = 'customer' AND d.shopify_id = s.shopify_id)
ORDER BY s.shopify_id, s.updated_at DESC
ON CONFLICT (shop_id, shopify_id) DO UPDATE SET {stats}
  created_at = excluded.created_at, updated_at = excluded.updated_at, tags = excluded.tags
WHERE excluded.updated_at >= c.updated_at
"""
_UPSERT_CUSTOMERS_STATS = _UPSERT_CUSTOMERS.format(
    known="NOT",
    stats="rfm_group = excluded.rfm_group, number_of_orders = excluded.number_of_orders, "
          "amount_spent = excluded.amount_spent, amount_spent_currency = excluded.amount_spent_currency,",
)
_UPSERT_CUSTOMERS_BARE = _UPSERT_CUSTOMERS.format(known="", stats="")


@dataclass
class Written:
    orders: int = 0
    refunds: int = 0
    customers: int = 0

    @property
    def total(self) -> int:
        return self.orders + self.refunds + self.customers


def _copy(cursor: object, table: str, columns: tuple[str, ...], rows: Iterable[Row | str]) -> int:
    """Stream rows (tuples, or lines already in COPY text format) into a staging table; returns how many."""
    n = 0
    raw = getattr(cursor, "cursor", cursor)
    buf: list[str] = []
    for row in rows:
        buf.append(row if isinstance(row, str) else copy_line(row))
    n = len(buf)
    if not n:
        return 0
    with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        copy.write("".join(buf))
    return n


def staging_ensure() -> None:
    with connection.cursor() as cursor:
        cursor.execute(_STAGING)


def rows_write(*, shop_id: int, currency: str = "", orders: Iterable[Row | str] = (),
               refunds: Iterable[Row | str] = (), customers: Iterable[Row | str] = (),
               lazy_commit: bool = False) -> Written:
    """Upsert the given rows in the current transaction (call inside `transaction.atomic()`).

    `lazy_commit` skips waiting for the WAL flush at commit: for bulk chunks whose resume point
    commits in the same transaction, a crash loses the chunk and its resume point together.
    """
    written = Written()
    params: dict[str, int | str] = {"shop": shop_id, "currency": currency}
    with connection.cursor() as cursor:
        if lazy_commit:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(_STAGING)
        if _copy(cursor, "tenure_stage_order", ORDER_COLUMNS, orders):
            cursor.execute(_UPSERT_ORDERS, params)
            written.orders = cursor.rowcount
        if _copy(cursor, "tenure_stage_refund", REFUND_COLUMNS, refunds):
            for sql in (_UPSERT_REFUNDS_UNKNOWN, _UPSERT_REFUNDS_KNOWN):
                cursor.execute(sql, params)
                written.refunds += cursor.rowcount
        if _copy(cursor, "tenure_stage_customer", CUSTOMER_COLUMNS, customers):
            for sql in (_UPSERT_CUSTOMERS_STATS, _UPSERT_CUSTOMERS_BARE):
                cursor.execute(sql, params)
                written.customers += cursor.rowcount
        # ON COMMIT DELETE ROWS only empties at commit; a caller may write twice in one transaction.
        cursor.execute("TRUNCATE tenure_stage_order, tenure_stage_refund, tenure_stage_customer")
    return written
