"""Set-based writes of orders, refunds and customers: COPY, then one guarded upsert per table.

Every path (bulk backfill, incremental pages, webhooks) writes through `rows_write` or, for bulk
chunks, `bulk_write`, so they all share one rule: a row is replaced only by data at least as new
(`updated_at`), and an id with a tombstone (deleted on Shopify) is never written again.

Rows are COPYed into temporary staging tables (no WAL, no indexes) and one
`INSERT ... ON CONFLICT ... WHERE excluded.updated_at >= current.updated_at` per table moves them.
A bulk chunk none of whose ids the shop holds or has a tombstone for (a first backfill, chunk
after chunk) has nothing to guard against: it is COPYed into the table itself, which costs
PostgreSQL about half as much as staging plus upsert (batched heap inserts, no second pass).
Should one of those rows arrive meanwhile (a webhook), the COPY fails on the unique constraint,
its savepoint is rolled back and the chunk takes the staged path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection, transaction

from sync.normalize import (
    BULK_REFUND_COLUMNS,
    CUSTOMER_COLUMNS,
    ORDER_COLUMNS,
    REFUND_COLUMNS,
    BulkChunk,
    Row,
    copy_line,
)

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS tenure_stage_order (
  shop_id bigint, shopify_id bigint, name text, customer_shopify_id bigint, processed_at timestamptz,
  created_at timestamptz, updated_at timestamptz, cancelled_at timestamptz, test boolean, financial_status text,
  currency text, presentment_currency text, subtotal numeric, current_subtotal numeric, total numeric,
  current_total numeric, total_refunded numeric, tags text[]
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tenure_stage_refund (
  shop_id bigint, shopify_id bigint, order_shopify_id bigint, created_at timestamptz, processed_at timestamptz,
  amount numeric, subtotal_amount numeric, updated_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tenure_stage_customer (
  shop_id bigint, shopify_id bigint, created_at timestamptz, updated_at timestamptz, rfm_group text,
  number_of_orders bigint, amount_spent numeric, amount_spent_currency text, tags text[]
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

# A refund's line-item subtotal is unknown (NULL) when its line items were not read with it (bulk
# files): those rows are written first without touching a subtotal we have, then the rows that know it.
_UPSERT_REFUNDS = """
INSERT INTO sync_refund AS r (shop_id, shopify_id, order_shopify_id, created_at, processed_at, amount,
                              subtotal_amount, updated_at)
SELECT DISTINCT ON (s.shopify_id) %(shop)s, s.shopify_id, s.order_shopify_id, s.created_at, s.processed_at,
       s.amount, s.subtotal_amount, s.updated_at
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

# REST customer payloads carry no stats (order count, amount spent, RFM group), and since API
# 2025-01 no tags either: rows with stats are written first, then the rows without, which only
# move dates (and tags when they came).
_UPSERT_CUSTOMERS = """
INSERT INTO sync_customer AS c (shop_id, shopify_id, created_at, updated_at, rfm_group, number_of_orders,
                                amount_spent, amount_spent_currency, tags)
SELECT DISTINCT ON (s.shopify_id) %(shop)s, s.shopify_id, s.created_at, s.updated_at, coalesce(s.rfm_group, ''),
       coalesce(s.number_of_orders, 0), coalesce(s.amount_spent, 0),
       coalesce(s.amount_spent_currency, %(currency)s), coalesce(s.tags, '{{}}')
FROM tenure_stage_customer s
WHERE s.number_of_orders IS {known} NULL AND {tagged}
  AND NOT EXISTS (SELECT 1 FROM sync_deletion d
                  WHERE d.shop_id = %(shop)s AND d.kind = 'customer' AND d.shopify_id = s.shopify_id)
ORDER BY s.shopify_id, s.updated_at DESC
ON CONFLICT (shop_id, shopify_id) DO UPDATE SET {stats}
  created_at = excluded.created_at, updated_at = excluded.updated_at{tags}
WHERE excluded.updated_at >= c.updated_at
"""
_UPSERT_CUSTOMERS_STATS = _UPSERT_CUSTOMERS.format(
    known="NOT", tagged="true", tags=", tags = excluded.tags",
    stats="rfm_group = excluded.rfm_group, number_of_orders = excluded.number_of_orders, "
          "amount_spent = excluded.amount_spent, amount_spent_currency = excluded.amount_spent_currency,",
)
_UPSERT_CUSTOMERS_BARE = _UPSERT_CUSTOMERS.format(known="", stats="", tagged="s.tags IS NOT NULL",
                                                  tags=", tags = excluded.tags")
_UPSERT_CUSTOMERS_UNTAGGED = _UPSERT_CUSTOMERS.format(known="", stats="", tagged="s.tags IS NULL", tags="")

# kind -> (table, tombstone kind, columns of its bulk COPY lines, the staged upserts)
_TABLES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "order": ("sync_order", "order", ("shop_id", *ORDER_COLUMNS), (_UPSERT_ORDERS,)),
    "refund": ("sync_refund", "order", ("shop_id", *BULK_REFUND_COLUMNS), (_UPSERT_REFUNDS_UNKNOWN,)),
    "customer": ("sync_customer", "customer", ("shop_id", *CUSTOMER_COLUMNS),
                 (_UPSERT_CUSTOMERS_STATS, _UPSERT_CUSTOMERS_BARE, _UPSERT_CUSTOMERS_UNTAGGED)),
}
# Neither a row of ours nor a tombstone among these ids: first by range (one probe, enough for a
# file in id order), then id by id.
_FRESH = """
SELECT NOT EXISTS (SELECT 1 FROM {table} WHERE shop_id = %(shop)s AND shopify_id {own})
   AND NOT EXISTS (SELECT 1 FROM sync_deletion WHERE shop_id = %(shop)s AND kind = %(kind)s AND shopify_id {dead})
"""
_FRESH_BY = {
    "range": ("BETWEEN %(lo)s AND %(hi)s", "BETWEEN %(dead_lo)s AND %(dead_hi)s"),
    "ids": ("= ANY(%(ids)s)", "= ANY(%(dead)s)"),
}


@dataclass
class Written:
    orders: int = 0
    refunds: int = 0
    customers: int = 0
    # Tables a bulk chunk was COPYed into directly (the rest went through staging).
    direct: int = 0

    @property
    def total(self) -> int:
        return self.orders + self.refunds + self.customers


def _raw(cursor: Any) -> Any:
    return getattr(cursor, "cursor", cursor)


def _copy(cursor: Any, table: str, columns: tuple[str, ...], lines: list[str]) -> int:
    """COPY lines already in text format into a table; returns how many."""
    if not lines:
        return 0
    with _raw(cursor).copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write("".join(lines))
    return len(lines)


def _staged(cursor: Any, kind: str, lines: list[str], params: dict[str, Any]) -> int:
    _, _, columns, upserts = _TABLES[kind]
    _copy(cursor, f"tenure_stage_{kind}", columns, lines)
    written = 0
    for sql in upserts:
        cursor.execute(sql, params)
        written += cursor.rowcount
    return written


def _fresh(cursor: Any, kind: str, ids: list[int], dead: list[int], shop_id: int) -> bool:
    """No row of ours and no tombstone among these ids (`dead`: the ids a tombstone would name)."""
    table, tombstone, _, _ = _TABLES[kind]
    params = {"shop": shop_id, "kind": tombstone, "lo": min(ids), "hi": max(ids), "dead_lo": min(dead),
              "dead_hi": max(dead), "ids": ids, "dead": dead}
    for own, gone in _FRESH_BY.values():
        cursor.execute(_FRESH.format(table=table, own=own, dead=gone), params)  # noqa: S608 - our constants
        if cursor.fetchone()[0]:
            return True
    return False


def _direct(cursor: Any, kind: str, lines: list[str], ids: list[int], dead: list[int], shop_id: int) -> bool:
    """COPY a bulk chunk into its table when none of its ids is there yet; False: stage it instead."""
    table, _, columns, _ = _TABLES[kind]
    if not ids or not _fresh(cursor, kind, ids, dead, shop_id):
        return False
    try:
        with transaction.atomic():
            _copy(cursor, table, columns, lines)
    except psycopg.errors.UniqueViolation:
        return False  # one of them was written meanwhile (a webhook), or the chunk repeats an id
    return True


def rows_write(*, shop_id: int, currency: str = "", orders: Iterable[Row] = (), refunds: Iterable[Row] = (),
               customers: Iterable[Row] = ()) -> Written:
    """Upsert the given rows in the current transaction (call inside `transaction.atomic()`)."""
    written = Written()
    params: dict[str, Any] = {"shop": shop_id, "currency": currency}
    prefix = f"{shop_id}\t"
    with connection.cursor() as cursor:
        cursor.execute(_STAGING)
        order_lines = [prefix + copy_line(row) for row in orders]
        if order_lines:
            written.orders = _staged(cursor, "order", order_lines, params)
        refund_lines = [prefix + copy_line(row) for row in refunds]
        if refund_lines:
            _copy(cursor, "tenure_stage_refund", ("shop_id", *REFUND_COLUMNS), refund_lines)
            for sql in (_UPSERT_REFUNDS_UNKNOWN, _UPSERT_REFUNDS_KNOWN):
                cursor.execute(sql, params)
                written.refunds += cursor.rowcount
        customer_lines = [prefix + copy_line(row) for row in customers]
        if customer_lines:
            written.customers = _staged(cursor, "customer", customer_lines, params)
        # ON COMMIT DELETE ROWS only empties at commit; a caller may write twice in one transaction.
        cursor.execute("TRUNCATE tenure_stage_order, tenure_stage_refund, tenure_stage_customer")
    return written


def bulk_write(*, shop_id: int, currency: str, chunk: BulkChunk) -> Written:
    """Write one parsed bulk chunk in the current transaction, straight into the tables where it can.

    The commit does not wait for the WAL flush: the chunk's resume point commits in the same
    transaction, so a crash loses the chunk and its resume point together.
    """
    written = Written()
    params: dict[str, Any] = {"shop": shop_id, "currency": currency}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        staged = False
        for kind, lines, ids, dead in (("order", chunk.orders, chunk.order_ids, chunk.order_ids),
                                       ("refund", chunk.refunds, chunk.refund_ids, chunk.refund_order_ids),
                                       ("customer", chunk.customers, chunk.customer_ids, chunk.customer_ids)):
            if not lines:
                continue
            if _direct(cursor, kind, lines, ids, dead, shop_id):
                n = len(lines)
                written.direct += 1
            else:
                if not staged:
                    cursor.execute(_STAGING)
                    staged = True
                n = _staged(cursor, kind, lines, params)
            setattr(written, f"{kind}s", n)
        if staged:
            cursor.execute("TRUNCATE tenure_stage_order, tenure_stage_refund, tenure_stage_customer")
    return written
