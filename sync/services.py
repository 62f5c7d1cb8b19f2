"""Writes of the sync app: backfill, incremental sync, reconciliation, webhook upserts.

Every write of shop data goes through `sync.store.rows_write` (COPY into staging, one guarded
upsert), so bulk files, GraphQL pages and REST webhooks obey the same `updated_at` rule.
Only one sync of a shop runs at a time (`shop_lock`, a PostgreSQL session advisory lock that
dies with the connection of a killed worker). Webhooks do not take it: their rows are guarded.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from config.logging import log_context
from shops.models import Shop
from sync import normalize as nz
from sync import outcomes
from sync.client import (
    GraphQLResult,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyError,
    ShopifyQueryError,
    ShopifyShopPausedError,
    ShopifyTransientError,
)
from sync.models import Customer, Deletion, Order, PauseProbe, Refund, SyncRun, WorkerHeartbeat
from sync.store import Written, bulk_write, rows_write

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x5E17  # first key of pg_advisory_lock(int, int); the second is the shop id
# Bytes of bulk file per committed chunk (whole lines; ~10,000 orders): bounded memory, a fine resume
# point, few enough transactions (tests make it small).
CHUNK_BYTES = int(os.environ.get("TENURE_SYNC_CHUNK_BYTES", str(8 << 20)))
OVERLAP = timedelta(minutes=5)
PAGE_CHANGED_MAX = 250
ORDER_TOPICS = frozenset({
    "orders/create", "orders/updated", "orders/cancelled", "orders/paid", "orders/fulfilled",
    "orders/partially_fulfilled", "orders/edited",
})
CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update", "customers/enable", "customers/disable"})

ClientFactory = Callable[[Shop], ShopifyClient]


def worker_heartbeat_record(*, queue: str, hostname: str, now: datetime) -> WorkerHeartbeat:
    """Upsert the heartbeat row of one queue; replaying it only moves the time forward."""
    beat, _ = WorkerHeartbeat.objects.update_or_create(queue=queue, defaults={"seen_at": now, "hostname": hostname})
    return beat


# --- locking and hooks ----------------------------------------------------------------------


@contextmanager
def shop_lock(*, shop_id: int, namespace: int = LOCK_NAMESPACE) -> Iterator[bool]:
    """Yields True when this connection now holds the shop's sync lock (False: someone else does);
    another `namespace` is another lock of the same shop."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, shop_id])
        got = bool(cursor.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, shop_id])


def shop_lock_held(*, shop_id: int) -> bool:
    """Whether any session holds the shop's sync lock (a live worker is on it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND granted",
            [LOCK_NAMESPACE, shop_id],
        )
        return bool(cursor.fetchone()[0])


def analytics_refresh_later(*, shop_id: int) -> None:
    """Ask analytics to recompute the shop (debounced on its side), once this transaction commits."""

    def enqueue() -> None:
        try:
            from analytics import tasks as analytics_tasks
        except ImportError:
            return
        refresh = getattr(analytics_tasks, "refresh_shop_later", None)
        if refresh is None:
            return
        try:
            refresh.delay(shop_id)
        except Exception:  # broker down: the next sync or scheduled refresh catches up
            logger.warning("analytics refresh not enqueued", exc_info=True)

    transaction.on_commit(enqueue)


def default_client(shop: Shop) -> ShopifyClient:
    return ShopifyClient.for_shop(shop)


# --- webhooks ---------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if value:
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            pass
    return timezone.now()


def order_delete(*, shop: Shop, shopify_id: int, at: datetime | None = None) -> tuple[int | None, int]:
    """Remove an order and its refunds for good; returns (its customer id, rows deleted)."""
    with transaction.atomic():
        customer_id = (Order.objects.filter(shop=shop, shopify_id=shopify_id)
                       .values_list("customer_shopify_id", flat=True).first())
        Deletion.objects.update_or_create(shop=shop, kind=Deletion.Kind.ORDER, shopify_id=shopify_id,
                                          defaults={"deleted_at": at or timezone.now(),
                                                    "customer_shopify_id": customer_id})
        refunds, _ = Refund.objects.filter(shop=shop, order_shopify_id=shopify_id).delete()
        orders, _ = Order.objects.filter(shop=shop, shopify_id=shopify_id).delete()
    return customer_id, refunds + orders


def customer_delete(*, shop: Shop, shopify_id: int, at: datetime | None = None) -> int:
    with transaction.atomic():
        Deletion.objects.update_or_create(shop=shop, kind=Deletion.Kind.CUSTOMER, shopify_id=shopify_id,
                                          defaults={"deleted_at": at or timezone.now()})
        deleted, _ = Customer.objects.filter(shop=shop, shopify_id=shopify_id).delete()
    return deleted


def rows_gone(*, shop: Shop, kind: str, ids: Iterable[int]) -> set[int]:
    """Many orders (with their refunds) or customers removed for good at once, each with its
    tombstone (what order_delete/customer_delete do for one); returns the orders' customers."""
    ids = list(ids)
    now = timezone.now()
    with transaction.atomic():
        if kind == "orders":
            customers = dict(Order.objects.filter(shop=shop, shopify_id__in=ids)
                             .values_list("shopify_id", "customer_shopify_id"))
            tombstones = [Deletion(shop=shop, kind=Deletion.Kind.ORDER, shopify_id=i, deleted_at=now,
                                   customer_shopify_id=customers.get(i)) for i in ids]
            Deletion.objects.bulk_create(tombstones, update_conflicts=True,
                                         unique_fields=["shop", "kind", "shopify_id"],
                                         update_fields=["deleted_at", "customer_shopify_id"])
            Refund.objects.filter(shop=shop, order_shopify_id__in=ids).delete()
            Order.objects.filter(shop=shop, shopify_id__in=ids).delete()
            return {c for c in customers.values() if c is not None}
        Deletion.objects.bulk_create([Deletion(shop=shop, kind=Deletion.Kind.CUSTOMER, shopify_id=i, deleted_at=now)
                                      for i in ids], update_conflicts=True,
                                     unique_fields=["shop", "kind", "shopify_id"], update_fields=["deleted_at"])
        Customer.objects.filter(shop=shop, shopify_id__in=ids).delete()
    return set()


def webhook_apply(*, shop: Shop, topic: str, payload: dict[str, Any]) -> None:
    """Apply one REST webhook payload through the same guarded upsert as the syncs.

    A duplicate or an older delivery than what we hold changes nothing (the `updated_at`
    guard); a delete leaves a tombstone so a late update cannot bring the row back. A payload
    holding a value Shopify cannot send raises nz.Refused before anything is written.
    """
    with log_context(shop=shop.domain, topic=topic), transaction.atomic():
        if topic in ORDER_TOPICS:
            if "order_edit" in payload or "id" not in payload:
                return  # orders/edited carries the edit, not the order; orders/updated follows it
            order = nz.order_from_rest(payload)
            # No refund-within-order check here: a REST order's only refunded total is the sum of these
            # refunds, and an edit that added to the order leaves `total_price` at its first value, so
            # what was paid cannot be told apart from the refunds themselves (each is range-checked).
            refunds = [nz.refund_from_rest(r, shop.currency or str(payload.get("currency") or ""))
                       for r in payload.get("refunds") or []]
            rows_write(shop_id=shop.pk, currency=shop.currency, orders=[order], refunds=refunds)
        elif topic == "refunds/create":
            refund = nz.refund_from_rest(payload, shop.currency)
            # The order came first (Shopify sends orders/create before its refunds): compare with
            # the total we hold; an order we do not hold yet is checked when a sync brings both.
            held = (Order.objects.filter(shop=shop, shopify_id=refund[1])
                    .values_list("total", "current_total", "total_refunded").first())
            nz.refund_within_order(refund, None if held is None else nz.refund_cap(*held))
            rows_write(shop_id=shop.pk, currency=shop.currency, refunds=[refund])
        elif topic in CUSTOMER_TOPICS:
            rows_write(shop_id=shop.pk, currency=shop.currency, customers=[nz.customer_from_rest(payload)])
        elif topic == "orders/delete":
            order_delete(shop=shop, shopify_id=nz.id_checked(payload.get("id"), "id"))
        elif topic == "customers/delete":
            customer_delete(shop=shop, shopify_id=nz.id_checked(payload.get("id"), "id"))
        elif topic == "bulk_operations/finish":
            # The backfill polls its operation; this only shortens nothing we rely on.
            logger.info("bulk operation finished: %s", payload.get("admin_graphql_api_id"))
            return
        else:
            logger.info("webhook topic not handled by sync: %s", topic)
            return
        analytics_refresh_later(shop_id=shop.pk)


# --- bulk ingestion -------------------------------------------------------------------------------

ORDERS_BULK = """
{{
  orders{args} {{
    edges {{
      node {{
        {fields}
        refunds {{
          {refund_fields}
        }}
      }}
    }}
  }}
}}
"""
CUSTOMERS_BULK = "{{ customers{args} {{ edges {{ node {{ {fields} }} }} }} }}"


def _args(search: str | None) -> str:
    return "" if not search else f"(query: {orjson.dumps(search).decode()})"


def bulk_query(kind: str, search: str | None = None, *, with_customers: bool = False) -> str:
    if kind == "orders":
        fields = nz.ORDER_FIELDS_WITH_CUSTOMER if with_customers else nz.ORDER_FIELDS
        return ORDERS_BULK.format(args=_args(search), fields=fields, refund_fields=nz.REFUND_FIELDS)
    return CUSTOMERS_BULK.format(args=_args(search), fields=nz.CUSTOMER_FIELDS)


def _chunk_parse(kind: str, data: bytes, run: SyncRun) -> nz.BulkChunk:
    if kind == "customers":
        return nz.bulk_customers_parse(data, shop_id=run.shop_id)
    return nz.bulk_orders_parse(data, shop_id=run.shop_id)


def _run_save(run: SyncRun, *fields: str) -> None:
    run.save(update_fields=list(fields))


def _prefetched(items: Iterator[tuple[bytes, int]], depth: int = 1) -> Iterator[tuple[bytes, int]]:
    """`items`, read ahead on a thread of its own: the next chunk downloads while this one parses."""
    ahead: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[bool, Any]) -> bool:
        """Queue an entry unless the consumer has gone; False once it has."""
        while not stop.is_set():
            try:
                ahead.put(entry, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
            offer((True, None))
        except BaseException as exc:  # noqa: BLE001 - raised in the consuming thread
            offer((False, exc))

    thread = threading.Thread(target=fill, name="bulk-download", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = ahead.get()
            if not ok:
                raise value
            if value is None:
                return
            yield value
    finally:
        stop.set()
        close = getattr(items, "close", None)
        thread.join(timeout=5)
        if close is not None and not thread.is_alive():
            close()


class _Aborted(Exception):
    """Another writer failed: this one rolls back its chunk instead of committing past the gap."""


def bulk_ingest(*, run: SyncRun, client: ShopifyClient, phase: str, url: str | None,
                on_chunk: Callable[[SyncRun], None] | None = None, writers: int | None = None) -> Written:
    """Stream one result file into the database, committing a chunk (and the resume point) at a time.

    The stages overlap: this thread downloads and parses chunk n+1 (a few MB of whole lines, decoded
    in one call) while writer threads (each on its own connection) COPY the chunks before it. With
    two writers, two chunks are written at once, but each commits only after the chunk before it
    has: the resume point (lines committed) commits with its rows, in file order, so a killed worker
    resumes exactly after the last committed chunk. A download thread reads the next chunk's bytes
    meanwhile. At most one raw chunk waits, one is parsed, one parsed chunk waits and one is written
    per writer: memory stays flat whatever the file's size. Where the time went is kept on the phase
    (the bench reports it): download (waiting for bytes), parse, db (the writers' transactions,
    summed) and wait (the reader blocked on a full queue: the database is the slower stage).

    `writers` defaults to the SYNC_BULK_WRITERS setting; pass 1 where two chunks may hold the same
    row (an incremental orders file carries each order's customer): two transactions inserting
    one key would each wait on the other.
    """
    ph = run.state.setdefault("phases", {}).setdefault(phase, {})
    kind = ph.get("kind", phase)
    total = Written()
    n_writers = max(1, int(writers if writers is not None else settings.SYNC_BULK_WRITERS))
    if url:
        skip = int(ph.get("lines", 0))
        pending: queue.Queue[tuple[int, nz.BulkChunk, int, float] | None] = queue.Queue(maxsize=1)
        failure: list[Exception] = []
        clock = {"download_s": 0.0, "parse_s": 0.0, "wait_s": 0.0}
        turn = threading.Condition()
        committed = [0]  # the number of chunks committed: chunk i commits when this equals i

        def write(i: int, parsed: nz.BulkChunk, n_lines: int, parse_s: float) -> None:
            started = time.perf_counter()
            with transaction.atomic():
                written = bulk_write(shop_id=run.shop_id, currency=run.shop.currency, chunk=parsed)
                with turn:
                    while committed[0] != i and not failure:
                        turn.wait()
                    if failure:
                        raise _Aborted
                    ph["lines"] = int(ph.get("lines", 0)) + n_lines
                    for name in ("download_s", "wait_s"):
                        ph[name] = round(float(ph.get(name, 0)) + clock[name], 3)
                        clock[name] = 0.0
                    ph["parse_s"] = round(float(ph.get("parse_s", 0)) + parse_s, 3)
                    ph["db_s"] = round(float(ph.get("db_s", 0)) + time.perf_counter() - started, 3)
                    ph["chunks"] = int(ph.get("chunks", 0)) + 1
                    ph["direct"] = int(ph.get("direct", 0)) + written.direct
                    parsed.rejected.merge_into(run.state)
                    run.objects_seen += n_lines
                    run.objects_written += written.total
                    run.state["updated_at"] = time.time()
                    _run_save(run, "objects_seen", "objects_written", "state")
            # Committed: the next chunk may commit now.
            with turn:
                committed[0] = i + 1
                total.orders += written.orders
                total.refunds += written.refunds
                total.customers += written.customers
                turn.notify_all()
                if on_chunk is not None:
                    on_chunk(run)

        def writer() -> None:
            try:
                while (item := pending.get()) is not None:
                    if not failure:
                        write(*item)
            except Exception as exc:  # noqa: BLE001 - handed to the reading thread, which re-raises it
                with turn:
                    failure.append(exc)
                    turn.notify_all()
                while pending.get() is not None:
                    pass
            finally:
                connection.close()

        threads = [threading.Thread(target=writer, name=f"bulk-writer-{run.pk}-{w}", daemon=True)
                   for w in range(n_writers)]
        for thread in threads:
            thread.start()
        try:
            chunks = _prefetched(client.bulk_chunks(url, skip=skip, chunk_bytes=CHUNK_BYTES))
            i = 0
            while not failure:
                started = time.perf_counter()
                item = next(chunks, None)
                parsing = time.perf_counter()
                clock["download_s"] += parsing - started
                if item is None:
                    break
                data, n_lines = item
                parsed = _chunk_parse(kind, data, run)
                del data
                queued = time.perf_counter()
                pending.put((i, parsed, n_lines, queued - parsing))
                clock["wait_s"] += time.perf_counter() - queued
                i += 1
        finally:
            for _ in threads:
                pending.put(None)
            for thread in threads:
                thread.join()
        real = [exc for exc in failure if not isinstance(exc, _Aborted)]
        if failure:
            raise (real or failure)[0]
    with transaction.atomic():
        ph["done"] = True
        ph["ingested_at"] = time.time()
        _run_save(run, "state")
    return total


def _bulk_start(*, client: ShopifyClient, query: str, attempts: int = 30) -> str:
    for attempt in range(attempts):
        try:
            return client.bulk_run(query)
        except ShopifyQueryError as exc:
            if {"OPERATION_IN_PROGRESS", "LIMIT_REACHED"} & exc.codes:
                if attempt == attempts - 1:
                    raise outcomes.RetryLater(outcomes.CODES["OPERATION_IN_PROGRESS"]) from exc
                time.sleep(min(10.0, 1.0 + attempt))
                continue
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def bulk_phase_run(*, run: SyncRun, client: ShopifyClient, phase: str, kind: str, search: str | None = None,
                   on_progress: Callable[[SyncRun], None] | None = None) -> Written:
    """One bulk operation, from start (or the one already started) to its rows committed."""
    phases = run.state.setdefault("phases", {})
    ph = phases.setdefault(phase, {"kind": kind})
    if ph.get("done"):
        return Written()
    for _ in range(3):
        if not ph.get("op"):
            query = bulk_query(kind, search, with_customers=search is not None)
            ph.update({"op": client_bulk_start(client, query), "lines": 0, "kind": kind, "started_at": time.time()})
            run.bulk_operation_id = ph["op"]
            _run_save(run, "state", "bulk_operation_id")

        def progress(op: Mapping[str, Any], ph: dict[str, Any] = ph) -> None:
            ph["object_count"] = int(op.get("objectCount") or 0)
            ph["status"] = op.get("status")
            run.object_count = sum(int(p.get("object_count") or 0) for p in phases.values())
            _run_save(run, "object_count", "state")
            if on_progress is not None:
                on_progress(run)

        # A small incremental operation is done in well under a second: look early, then back off
        # (x1.5 per poll) to one poll every 3 s for a long backfill.
        op = client.bulk_wait(ph["op"], on_progress=progress, poll_every=0.1, max_poll=3.0)
        status = op.get("status")
        if status == "COMPLETED":
            if "ready_at" not in ph:
                ph["ready_at"] = time.time()
            return bulk_ingest(run=run, client=client, phase=phase, url=op.get("url"),
                               on_chunk=on_progress, writers=None if search is None else 1)
        # FAILED, EXPIRED or CANCELED: what was written stays (guarded upserts); start a fresh operation.
        # A partial file (partialDataUrl) is not read: the fresh operation carries all of it again.
        logger.warning("bulk operation %s ended %s (%s); starting a new one", ph["op"], status, op.get("errorCode"))
        ph.setdefault("ended", []).append({"op": ph["op"], "status": status, "errorCode": op.get("errorCode"),
                                           "partial": bool(op.get("partialDataUrl"))})
        run.error = outcomes.bulk_outcome(status, op.get("errorCode"), partial=bool(op.get("partialDataUrl")))
        ph["op"] = None
        _run_save(run, "error", "state")
        if status == "FAILED" and op.get("errorCode") == "ACCESS_DENIED":
            raise ShopifyQueryError(f"bulk operation {phase} failed: ACCESS_DENIED",
                                    [{"message": "ACCESS_DENIED", "extensions": {"code": "ACCESS_DENIED"}}])
    raise outcomes.RetryLater(run.error)


# --- refund line items ----------------------------------------------------------------------------
# Shopify refuses a bulk query that selects a connection inside a list field, and `Order.refunds`
# is a list while `Refund.refundLineItems` is a connection: bulk files carry each refund (dates,
# total) without its line items. Such refunds are stored with an unknown subtotal (NULL). Their
# line items are only needed where refunds are dated by refund and valued at their line subtotal
# (a shop setting, off by default), and reading them costs points per refund (about 7 each,
# ~2 hours for 100,000 refunds at a Standard plan's 100 points a second): so they are read on
# demand (`refund_lines_later`, asked by analytics), by id, in slices of a worker's time, in
# requests sized by what Shopify says they cost. Only refunds still unknown are asked for, so a
# resumed run picks up where it stopped and a replay writes the same values.

_REFUND_LINES_SELECTION = "nodes { subtotalSet { shopMoney { amount } } } pageInfo { hasNextPage endCursor }"
REFUND_LINES = f"""
query TenureRefundLines($ids: [ID!]!) {{
  nodes(ids: $ids) {{ ... on Refund {{ id refundLineItems(first: 5) {{ {_REFUND_LINES_SELECTION} }} }} }}
}}"""
REFUND_LINES_MORE = f"""
query TenureRefundLinesMore($id: ID!, $after: String) {{
  refund(id: $id) {{ refundLineItems(first: 250, after: $after) {{ {_REFUND_LINES_SELECTION} }} }}
}}"""
# Points per refund before Shopify has said: the refund (1), its connection (2), page info (1) and five
# lines of three objects each (15), rounded up. Most refunds have one to three lines; a refund with
# more is paged on its own (REFUND_LINES_MORE).
REFUND_LINES_COST_GUESS = 20.0
REFUND_LINES_BLOCK = 5_000  # unknown refunds taken from our table at a time
REFUND_LINES_SLICE_S = 20.0  # a worker's time per task before it queues the rest (other shops go between)
REFUND_LINES_LOCK = LOCK_NAMESPACE + 1  # its own lock: syncs of the shop go on meanwhile


def _refund_lines_total(client: ShopifyClient, gid: str, conn: Mapping[str, Any]) -> Decimal:
    """The subtotal of a refund's line items, paging on where the first request's five stopped."""
    total = sum((nz.refund_line_subtotal(i) for i in conn.get("nodes") or []), Decimal(0))
    info = conn.get("pageInfo") or {}
    while info.get("hasNextPage"):
        data = client.graphql(REFUND_LINES_MORE, {"id": gid, "after": info.get("endCursor")},
                              expected_cost=760).data
        conn = (data.get("refund") or {}).get("refundLineItems") or {}
        total += sum((nz.refund_line_subtotal(i) for i in conn.get("nodes") or []), Decimal(0))
        info = conn.get("pageInfo") or {}
    return total


def refund_lines_unread(*, shop: Shop) -> int:
    """How many of the shop's refunds are stored without their line-item subtotal."""
    return Refund.objects.filter(shop=shop, subtotal_amount__isnull=True).count()


def refund_lines_fill(*, shop: Shop, client: ShopifyClient, after: int = 0,
                      budget_s: float | None = None) -> tuple[int, int | None]:
    """Read the line-item subtotal of the shop's refunds stored without one, in refund id order from
    `after`, for about `budget_s` seconds (all of them without a budget). Returns (subtotals set, the
    id to go on after, or None once every refund was asked for). A refund Shopify no longer has (its
    order deleted) is passed over, left for the deletion to remove."""
    unread = Refund.objects.filter(shop=shop, subtotal_amount__isnull=True)
    deadline = None if budget_s is None else time.monotonic() + budget_s

    def send(part: Sequence[int], expected_cost: int) -> GraphQLResult:
        return client.graphql(REFUND_LINES, {"ids": [f"gid://shopify/Refund/{i}" for i in part]},
                              expected_cost=expected_cost)

    filled = 0
    while ids := list(unread.filter(shopify_id__gt=after).order_by("shopify_id")
                      .values_list("shopify_id", flat=True)[:REFUND_LINES_BLOCK]):
        for part, result in client.batched(ids, send, per_item=REFUND_LINES_COST_GUESS):
            found = [n for n in result.data.get("nodes") or [] if isinstance(n, dict) and n.get("id")]
            subtotals = {}
            for n in found:
                try:
                    subtotals[nz.id_checked(n["id"], "id")] = Decimal(nz.money_checked(
                        str(_refund_lines_total(client, n["id"], n.get("refundLineItems") or {})), "refund subtotal"))
                except nz.Refused as exc:
                    # Left unknown: the refund keeps counting at its total, as one not read yet.
                    logger.warning("refund line items refused: %s", exc)
            with connection.cursor() as cursor:
                # Only where still unknown: a webhook that wrote the subtotal meanwhile stays as it is.
                cursor.execute(
                    "UPDATE sync_refund r SET subtotal_amount = v.subtotal "
                    "FROM unnest(%s::bigint[], %s::numeric[]) AS v(id, subtotal) "
                    "WHERE r.shop_id = %s AND r.shopify_id = v.id AND r.subtotal_amount IS NULL",
                    [list(subtotals), list(subtotals.values()), shop.pk])
                filled += cursor.rowcount
            after = part[-1]
            if deadline is not None and time.monotonic() > deadline:
                return filled, after
    return filled, None


REFUND_LINES_STALL = timedelta(minutes=10)  # a running read with no slice for this long lost its worker


def refund_lines_later(*, shop: Shop) -> bool:
    """Queue the reading of the shop's unknown refund line items (once this transaction commits),
    unless none is unknown, a read is under way, or one has asked for every unknown refund since the
    last sync (a refund Shopify no longer has stays unknown: it is not asked for again and again)."""
    if not refund_lines_unread(shop=shop):
        return False
    last = (SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.REFUND_LINES).order_by("-created_at").first())
    if last is not None and last.status == SyncRun.Status.RUNNING:
        touched = float(last.state.get("updated_at") or 0) or last.created_at.timestamp()
        if time.time() - touched < REFUND_LINES_STALL.total_seconds():
            return False
    elif last is not None and last.status == SyncRun.Status.SUCCEEDED:
        synced = (SyncRun.objects.filter(shop=shop, status=SyncRun.Status.SUCCEEDED,
                                         kind__in=[SyncRun.Kind.BACKFILL, SyncRun.Kind.INCREMENTAL])
                  .aggregate(m=Max("finished_at"))["m"])
        if synced is None or (last.finished_at is not None and last.finished_at >= synced):
            return False
    shop_id = shop.pk

    def enqueue() -> None:
        from sync import tasks as sync_tasks

        try:
            sync_tasks.backfill_refund_lines.delay(shop_id)
        except Exception:  # broker down: the next analytics refresh asks again
            logger.warning("refund line reads not enqueued", exc_info=True)

    transaction.on_commit(enqueue)
    return True


def refund_lines_run(*, shop: Shop, client_factory: ClientFactory = default_client,
                     budget_s: float = REFUND_LINES_SLICE_S) -> str:
    """One slice of the shop's refund-line reads, recorded as a run of its own (progress, errors on the
    Data page): "more" when refunds are left for the next slice, else how the run ended."""
    with shop_lock(shop_id=shop.pk, namespace=REFUND_LINES_LOCK) as got:
        if not got:
            return "locked"
        run = (SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.REFUND_LINES, status=SyncRun.Status.RUNNING)
               .order_by("-created_at").first())
        if run is None:
            unread = refund_lines_unread(shop=shop)
            if not unread:
                return "nothing to do"
            run = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.REFUND_LINES, status=SyncRun.Status.RUNNING,
                                         started_at=timezone.now(), object_count=unread, state={"after": 0})
        try:
            client = client_factory(shop)
        except (ShopifyAuthError, ShopifyShopPausedError) as exc:
            _fail(run, exc)
            return "failed"
        try:
            with log_context(shop=shop.domain, sync_run=run.pk):
                filled, after = refund_lines_fill(shop=shop, client=client, after=int(run.state.get("after") or 0),
                                                  budget_s=budget_s)
            run.objects_seen += filled
            run.objects_written += filled
            run.state.update({"after": after, "updated_at": time.time(), "client": _client_stats(client)})
            if after is not None:
                _run_save(run, "objects_seen", "objects_written", "state")
                return "more"
            run.state["not_found"] = refund_lines_unread(shop=shop)
            _succeed(run, high_water_mark=None)
            return "succeeded"
        except (ShopifyAuthError, ShopifyShopPausedError, ShopifyQueryError) as exc:
            _fail(run, exc)
            return "failed"
        except ShopifyTransientError as exc:
            _note_error(run, exc)
            _run_save(run, "error", "state")
            raise
        finally:
            client.close()


def client_bulk_start(client: ShopifyClient, query: str) -> str:
    return _bulk_start(client=client, query=query)


# --- backfill ---------------------------------------------------------------------------------------


def backfill_create(*, shop: Shop, full: bool = False) -> SyncRun:
    """The shop's unfinished backfill, or a new pending one."""
    run = (SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL,
                                  status__in=[SyncRun.Status.PENDING, SyncRun.Status.RUNNING])
           .order_by("-created_at").first())
    if run is None:
        run = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, state={"full": full})
    return run


def _note_error(run: SyncRun, exc: BaseException) -> None:
    """The merchant's sentence on the run (the Data page shows it), the technical line beside it."""
    run.error = outcomes.explain(exc)[:2000]
    run.state["error_detail"] = outcomes.detail(exc)[:2000]


def _fail(run: SyncRun, exc: Exception, *, status: str = SyncRun.Status.FAILED) -> None:
    run.status = status
    _note_error(run, exc)
    run.finished_at = timezone.now()
    _run_save(run, "status", "error", "finished_at", "state")


def _succeed(run: SyncRun, *, high_water_mark: datetime | None) -> None:
    with transaction.atomic():
        run.status = SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.high_water_mark = high_water_mark
        run.error = ""
        # The state in the same save: whoever sees the run succeeded sees all it recorded.
        _run_save(run, "status", "finished_at", "high_water_mark", "error", "objects_seen", "objects_written",
                  "state")
        analytics_refresh_later(shop_id=run.shop_id)


def _shop_now(client: ShopifyClient) -> datetime:
    """Shopify's clock (the shop's idea of now), for high-water marks that never outrun its data."""
    result = client.graphql("query TenureNow { bulkOperations(first: 1, reverse: true) { nodes { createdAt } } }",
                            expected_cost=3)
    nodes = (result.data.get("bulkOperations") or {}).get("nodes") or []
    if nodes and nodes[0].get("createdAt"):
        return _parse_time(nodes[0]["createdAt"])
    return timezone.now()


def backfill_run(*, run_id: int, client_factory: ClientFactory = default_client,
                 on_progress: Callable[[SyncRun], None] | None = None) -> str:
    """Run (or resume) a backfill: customers, then orders with refunds, each one bulk operation."""
    run = SyncRun.objects.select_related("shop").filter(pk=run_id).first()
    if run is None or run.status not in (SyncRun.Status.PENDING, SyncRun.Status.RUNNING):
        return "nothing to do"
    shop = run.shop
    if shop.state != Shop.State.INSTALLED:
        _fail(run, RuntimeError(f"shop is {shop.state}"), status=SyncRun.Status.CANCELLED)
        return "cancelled"
    with log_context(shop=shop.domain, sync_run=run.pk), shop_lock(shop_id=shop.pk) as got:
        if not got:
            return "locked"
        run.refresh_from_db()
        if run.status not in (SyncRun.Status.PENDING, SyncRun.Status.RUNNING):
            return "nothing to do"
        try:
            client = client_factory(shop)
        except (ShopifyAuthError, ShopifyShopPausedError) as exc:
            _fail(run, exc)
            return "failed"
        try:
            run.status = SyncRun.Status.RUNNING
            run.started_at = run.started_at or timezone.now()
            run.history_limited = "read_all_orders" not in shop.granted_scopes
            run.state.setdefault("resumes", -1)
            run.state["resumes"] += 1
            # The percent needs every phase's objectCount: until the last one has one, there is none.
            run.state["planned"] = list(BACKFILL_PHASES)
            _run_save(run, "status", "started_at", "history_limited", "state")
            for phase in BACKFILL_PHASES:
                bulk_phase_run(run=run, client=client, phase=phase, kind=phase, on_progress=on_progress)
            run.state["client"] = _client_stats(client)
            # Changes after the snapshot are the incremental sync's: it starts from here.
            _succeed(run, high_water_mark=_ops_created_at(client, run) or timezone.now())
            return "succeeded"
        except (ShopifyAuthError, ShopifyShopPausedError, ShopifyQueryError) as exc:
            run.state["client"] = _client_stats(client)
            _fail(run, exc)
            return "failed"
        except ShopifyTransientError as exc:
            run.state["client"] = _client_stats(client)
            _note_error(run, exc)
            _run_save(run, "error", "state")
            raise
        finally:
            client.close()


BACKFILL_PHASES = ("customers", "orders")


def _client_stats(client: ShopifyClient) -> dict[str, float]:
    """What the run asked of Shopify (requests, retries, throttle waits), for the run's record."""
    return {k: round(v, 3) for k, v in client.stats.items()}


def _ops_created_at(client: ShopifyClient, run: SyncRun) -> datetime | None:
    """The earliest creation time of this run's bulk operations (the snapshot the data is as of)."""
    times = []
    for ph in run.state.get("phases", {}).values():
        op_id = ph.get("op")
        if not op_id:
            continue
        try:
            op = client.bulk_get(op_id)
        except ShopifyError:
            continue
        if op.get("createdAt"):
            times.append(_parse_time(op["createdAt"]))
    return min(times) if times else None


def backfill_stale(*, older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Backfills that are pending or running with no worker on them (killed worker): to resume."""
    cutoff = time.time() - older_than.total_seconds()
    out = []
    for run in SyncRun.objects.filter(kind=SyncRun.Kind.BACKFILL,
                                      status__in=[SyncRun.Status.PENDING, SyncRun.Status.RUNNING]):
        if shop_lock_held(shop_id=run.shop_id):
            continue
        touched = float(run.state.get("updated_at") or 0) or (run.created_at.timestamp())
        if touched < cutoff:
            out.append(run.pk)
    return out


# --- incremental ---------------------------------------------------------------------------------

ORDERS_PAGE = f"""
query TenureOrdersChanged($first: Int!, $after: String, $query: String) {{
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    nodes {{
      {nz.ORDER_FIELDS_WITH_CUSTOMER}
      refunds(first: 3) {{
        {nz.REFUND_FIELDS}
        refundLineItems(first: 5) {{ nodes {{ subtotalSet {{ shopMoney {{ amount }} }} }} pageInfo {{ hasNextPage }} }}
      }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
CUSTOMERS_PAGE = f"""
query TenureCustomersChanged($first: Int!, $after: String, $query: String) {{
  customers(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    nodes {{ {nz.CUSTOMER_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
CUSTOMER_NODES = f"""
query TenureCustomers($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Customer {{ {nz.CUSTOMER_FIELDS} }} }} }}
"""
COUNTS = """
query TenureCounts($orders: String, $customers: String) {
  orders: ordersCount(query: $orders, limit: null) { count precision }
  customers: customersCount(query: $customers, limit: null) { count precision }
}
"""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _last_mark(shop: Shop) -> datetime | None:
    return (SyncRun.objects.filter(shop=shop, status=SyncRun.Status.SUCCEEDED,
                                   kind__in=[SyncRun.Kind.BACKFILL, SyncRun.Kind.INCREMENTAL],
                                   high_water_mark__isnull=False)
            .aggregate(m=Max("high_water_mark"))["m"])


def _last_started(shop: Shop, *, before: SyncRun) -> datetime:
    """When the previous successful sync started, on our clock."""
    prev = (SyncRun.objects.filter(shop=shop, status=SyncRun.Status.SUCCEEDED,
                                   kind__in=[SyncRun.Kind.BACKFILL, SyncRun.Kind.INCREMENTAL])
            .exclude(pk=before.pk).order_by("-started_at").values_list("started_at", flat=True).first())
    return prev or before.created_at


def _order_rows_from_nodes(
    nodes: Iterable[Mapping[str, Any]], *, run: SyncRun,
) -> tuple[list[nz.Row], list[nz.Row], list[nz.Row], set[int]]:
    """Orders, their refunds, their customers (when read whole) and the customers read as an id only.
    An order holding a value Shopify cannot send is left out with its refunds and recorded on `run`."""
    orders: list[nz.Row] = []
    refunds: list[nz.Row] = []
    customers: list[nz.Row] = []
    stale: set[int] = set()
    rejected = nz.Rejected()
    for node in nodes:
        try:
            row = nz.order_from_graphql(node)
            customer = node.get("customer")
            whole = (nz.customer_from_graphql(customer)
                     if isinstance(customer, Mapping) and "updatedAt" in customer else None)
            its_refunds = []
            for refund in node.get("refunds") or []:
                r = nz.refund_from_graphql(refund, row[0])
                nz.refund_within_order(r, nz.refund_cap(row[13], row[14], row[15]))
                items = refund.get("refundLineItems") or {}
                if (items.get("pageInfo") or {}).get("hasNextPage"):
                    r = (*r[:5], None, r[6])  # not all lines seen: keep the subtotal we have
                its_refunds.append(r)
        except nz.Refused as exc:
            rejected.add(f"order {node.get('id')}", str(exc))
            continue
        orders.append(row)
        refunds.extend(its_refunds)
        if whole is not None:
            customers.append(whole)
        elif row[2] is not None:
            stale.add(row[2])
    rejected.merge_into(run.state)
    return orders, refunds, customers, stale


def _customer_rows(nodes: Iterable[Mapping[str, Any]], *, run: SyncRun) -> list[nz.Row]:
    """Customer rows; one holding a value Shopify cannot send is left out and recorded on `run`."""
    rows = []
    rejected = nz.Rejected()
    for node in nodes:
        try:
            rows.append(nz.customer_from_graphql(node))
        except nz.Refused as exc:
            rejected.add(f"customer {node.get('id')}", str(exc))
    rejected.merge_into(run.state)
    return rows


def customers_refresh(*, shop: Shop, client: ShopifyClient, ids: Iterable[int], run: SyncRun) -> int:
    """Re-read customers whose stats moved without their `updated_at` moving (orders, refunds)."""
    ids = sorted(set(ids))
    written = 0
    size = 50
    start = 0
    while start < len(ids):
        batch = [f"gid://shopify/Customer/{i}" for i in ids[start:start + size]]
        try:
            result = client.graphql(CUSTOMER_NODES, {"ids": batch}, expected_cost=len(batch) + 2)
        except ShopifyQueryError as exc:
            if "MAX_COST_EXCEEDED" in exc.codes and size > 1:
                size = max(1, size // 2)
                continue
            raise
        start += len(batch)
        nodes = [n for n in result.data.get("nodes") or [] if isinstance(n, dict) and n.get("id")]
        with transaction.atomic():
            w = rows_write(shop_id=shop.pk, currency=shop.currency, customers=_customer_rows(nodes, run=run))
        written += w.customers
    return written


def incremental_run(*, shop: Shop, client_factory: ClientFactory = default_client,
                    reconcile_on_mismatch: bool = True) -> SyncRun | None:
    """Pull what changed since the last high-water mark (minus an overlap); None if locked or no backfill yet."""
    since = _last_mark(shop)
    if since is None:
        return None
    with log_context(shop=shop.domain), shop_lock(shop_id=shop.pk) as got:
        if not got:
            return None
        run = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.INCREMENTAL, status=SyncRun.Status.RUNNING,
                                     started_at=timezone.now(), state={"since": _iso(since - OVERLAP)})
        try:
            client = client_factory(shop)
        except (ShopifyAuthError, ShopifyShopPausedError, ShopifyTransientError) as exc:
            _fail(run, exc)
            return run
        try:
            with log_context(sync_run=run.pk):
                _incremental(run=run, shop=shop, client=client, since=since,
                             reconcile_on_mismatch=reconcile_on_mismatch)
        except ShopifyError as exc:
            _fail(run, exc)
            if isinstance(exc, ShopifyTransientError):
                raise
        finally:
            client.close()
        return run


def _incremental(*, run: SyncRun, shop: Shop, client: ShopifyClient, since: datetime,
                 reconcile_on_mismatch: bool) -> None:
    clock = time.perf_counter()
    timings: dict[str, float] = run.state.setdefault("timings_s", {})

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    search = f"updated_at:>='{_iso(since - OVERLAP)}'"
    counts = client.graphql(COUNTS, {"orders": search, "customers": search}, expected_cost=2).data
    n_orders = int((counts.get("orders") or {}).get("count") or 0)
    n_customers = int((counts.get("customers") or {}).get("count") or 0)
    run.object_count = n_orders + n_customers
    run.state.update({"changed_orders": n_orders, "changed_customers": n_customers})
    _run_save(run, "object_count", "state")
    hwm = since
    touched: set[int] = set()
    if max(n_orders, n_customers) > settings.SYNC_BULK_SWITCH_AT:
        run.state["mode"] = "bulk"
        for kind in ("customers", "orders"):
            bulk_phase_run(run=run, client=client, phase=kind, kind=kind, search=search)
        hwm = _ops_created_at(client, run) or hwm
    else:
        run.state["mode"] = "pages"
        buffer: list[dict[str, Any]] = []

        def flush_orders() -> None:
            nonlocal hwm
            orders, refunds, customers, stale = _order_rows_from_nodes(buffer, run=run)
            touched.update(stale)
            with transaction.atomic():
                w = rows_write(shop_id=shop.pk, currency=shop.currency, orders=orders, refunds=refunds,
                               customers=customers)
            run.objects_seen += len(buffer)
            run.objects_written += w.total
            for row in orders:
                hwm = max(hwm, _parse_time(row[5]))
            buffer.clear()

        for node in client.paginate(ORDERS_PAGE, variables={"query": search}, connection="orders", page_size=12):
            buffer.append(node)
            if len(buffer) >= PAGE_CHANGED_MAX:
                flush_orders()
        flush_orders()
        customer_rows = []
        for node in client.paginate(CUSTOMERS_PAGE, variables={"query": search}, connection="customers",
                                    page_size=100):
            for row in _customer_rows([node], run=run):
                customer_rows.append(row)
                hwm = max(hwm, _parse_time(row[2]))
            if len(customer_rows) >= PAGE_CHANGED_MAX:
                with transaction.atomic():
                    run.objects_written += rows_write(shop_id=shop.pk, currency=shop.currency,
                                                      customers=customer_rows).total
                run.objects_seen += len(customer_rows)
                customer_rows = []
        if customer_rows:
            with transaction.atomic():
                run.objects_written += rows_write(shop_id=shop.pk, currency=shop.currency,
                                                  customers=customer_rows).total
            run.objects_seen += len(customer_rows)
    lap("changes")
    _run_save(run, "objects_seen", "objects_written", "state")
    if reconcile_on_mismatch:
        # Deletions whose webhook never came: totals differ, so look closer.
        totals = client.graphql(COUNTS, {"orders": None, "customers": None}, expected_cost=2).data
        theirs_o = int((totals.get("orders") or {}).get("count") or 0)
        theirs_c = int((totals.get("customers") or {}).get("count") or 0)
        ours_o = Order.objects.filter(shop=shop).count()
        ours_c = Customer.objects.filter(shop=shop).count()
        run.state["totals"] = {"orders": [ours_o, theirs_o], "customers": [ours_c, theirs_c]}
        # Orders placed since this sync started are the next one's: they cannot hide a deletion.
        until = run.started_at or timezone.now()
        differ = [kind for kind, ours, theirs in (("orders", ours_o, theirs_o), ("customers", ours_c, theirs_c))
                  if ours != theirs]
        if differ:
            # The totals say how many rows differ at least: that sizes the first level's blocks.
            expected = {"orders": abs(ours_o - theirs_o), "customers": abs(ours_c - theirs_c)}
            touched.update(reconcile_kinds(shop=shop, client=client, run=run, kinds=differ, until=until,
                                           expected=expected))
        lap("reconcile")
    # Orders deleted by webhook since the last sync: their customers' counts moved too.
    touched.update(i for i in Deletion.objects.filter(
        shop=shop, kind=Deletion.Kind.ORDER, deleted_at__gte=_last_started(shop, before=run) - OVERLAP,
        customer_shopify_id__isnull=False).values_list("customer_shopify_id", flat=True) if i is not None)
    touched -= set(Deletion.objects.filter(shop=shop, kind=Deletion.Kind.CUSTOMER)
                   .values_list("shopify_id", flat=True))
    if touched:
        run.state["customers_refreshed"] = customers_refresh(shop=shop, client=client, ids=touched, run=run)
    lap("customers_refresh")
    run.state["client"] = _client_stats(client)
    _succeed(run, high_water_mark=hwm)


# --- reconciliation ------------------------------------------------------------------------------
# Rows deleted on Shopify whose webhook never came (and rows we lack) show as a difference between
# our count and Shopify's over some creation-time range. Weeks are counted first, then differing
# ranges are halved, one aliased request of counts per level, each split asking only for its left
# half (the right one is the parent's count minus it), until Shopify has none of ours in a range
# (they are gone: confirmed by id, then deleted) or we have none of its (listed and read). The
# cost follows the rows that differ (about a point per level per differing row), not the days
# they fall on: a day of 900 orders with one deletion costs a dozen points, not 900. A deletion
# and a row we lack in the same week cancel out (until either changes again); Shopify's rows
# created during the check are left for the next one (`until`).

# What a count field costs before Shopify has said: 10 points, as live stores charge for
# `customersCount` (a guess that errs high; the requests size themselves from the answers).
COUNT_COST_GUESS = 10.0
RECONCILE_BLOCK_DAYS = 7  # the first level: one count per week, unless the expected differences say otherwise
# Listing a range's ids costs 2 + n points for its n rows; halving it costs a count (10 points) and
# then the half that differs: halving pays while 10 + n / 2 < n, so ranges of 20 rows or fewer are listed.
RECONCILE_LIST_AT_MOST = int(2 * COUNT_COST_GUESS)
DETAIL_ROWS = 100_000  # our (created_at, id) pairs of differing days held at once
IDS_PAGE_MAX = 250
HISTORY_DAYS = 60  # without read_all_orders Shopify shows only the orders of the last 60 days


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def _table(kind: str) -> str:
    return "sync_order" if kind == "orders" else "sync_customer"


def _our_counts_by_day(shop: Shop, tz: ZoneInfo, kind: str) -> tuple[dict[date, int], datetime | None]:
    """Our rows per creation day (shop's zone), and the newest creation time."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (created_at AT TIME ZONE %s)::date AS day, count(*), max(created_at) FROM {_table(kind)} "  # noqa: S608
            "WHERE shop_id = %s GROUP BY day", [str(tz), shop.pk])
        rows = cursor.fetchall()
    return {day: n for day, n, _ in rows}, max((newest for _, _, newest in rows), default=None)


def _our_rows_on_days(shop: Shop, tz: ZoneInfo, kind: str, days: list[date]) -> dict[date, list[tuple[int, int]]]:
    """Our (created_at as epoch seconds, id) on these days of the shop's zone, sorted, per day."""
    days = sorted(days)
    out: dict[date, list[tuple[int, int]]] = {d: [] for d in days}
    bounds = [_day_bounds(d, tz) for d in days]
    starts = [int(b[0].timestamp()) for b in bounds]
    with connection.cursor() as cursor:
        # The days as one multirange: a containment test per row (a binary search), not a time
        # zone conversion of every row of the shop.
        cursor.execute(
            f"SELECT floor(extract(epoch FROM created_at))::bigint, shopify_id FROM {_table(kind)} "  # noqa: S608
            "WHERE shop_id = %s AND created_at <@ "
            "(SELECT range_agg(tstzrange(s, e)) FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS r(s, e)) "
            "ORDER BY 1, 2",
            [shop.pk, [b[0] for b in bounds], [b[1] for b in bounds]])
        for at, shopify_id in cursor.fetchall():
            out[days[bisect.bisect_right(starts, at) - 1]].append((at, shopify_id))
    return out


def _created_between(start: datetime, end: datetime) -> str:
    return f"created_at:>='{_iso(start)}' AND created_at:<'{_iso(end)}'"


def _epoch_between(start: int, end: int) -> str:
    return _created_between(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))


IDS_PAGE = {
    kind: f"""
query TenureIds($first: Int!, $after: String, $query: String) {{
  {kind}(first: $first, after: $after, sortKey: ID, query: $query) {{
    nodes {{ id }} pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
    for kind in ("orders", "customers")
}
ORDER_NODES = f"""
query TenureOrders($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on Order {{
      {nz.ORDER_FIELDS_WITH_CUSTOMER}
      refunds(first: 3) {{
        {nz.REFUND_FIELDS}
        refundLineItems(first: 5) {{ nodes {{ subtotalSet {{ shopMoney {{ amount }} }} }} pageInfo {{ hasNextPage }} }}
      }}
    }}
  }}
}}
"""


@dataclass
class _Tally:
    """What a reconciliation asked Shopify for (the run records it): points spent finding the rows
    that differ, and reading whole the ones we lack."""

    requests: int = 0
    points: float = 0.0  # requested points, as Shopify reported them
    read_points: int = 0
    sql_s: float = 0.0  # reading our own rows to compare


def _counts_batched(client: ShopifyClient, asks: dict[str, list[str]],
                    tallies: dict[str, _Tally]) -> dict[str, list[int]]:
    """Many `ordersCount`/`customersCount` (kind -> searches) in as few requests as can hold them
    (aliases), each request as large as its cost allows (ShopifyClient.batched)."""
    field = {"orders": "ordersCount", "customers": "customersCount"}
    flat = [(kind, q) for kind, searches in asks.items() for q in searches]

    def send(part: Sequence[tuple[str, str]], expected_cost: int) -> GraphQLResult:
        body = " ".join(f"c{i}: {field[kind]}(query: {orjson.dumps(q).decode()}, limit: null) {{ count }}"
                        for i, (kind, q) in enumerate(part))
        return client.graphql(f"query TenureCounts {{ {body} }}", expected_cost=expected_cost)

    answers: list[int] = []
    for part, result in client.batched(flat, send, per_item=COUNT_COST_GUESS):
        kinds = {k for k, _ in part}
        points = result.requested_cost or 0
        for kind in kinds:
            tallies[kind].requests += 1
        for kind, _ in part:
            tallies[kind].points += points / len(part)
        answers.extend(int((result.data.get(f"c{i}") or {}).get("count") or 0) for i in range(len(part)))
    out: dict[str, list[int]] = {}
    at = 0
    for kind, searches in asks.items():
        out[kind] = answers[at:at + len(searches)]
        at += len(searches)
    return out


# A reconciliation step: yields the count searches it needs next, receives their counts.
CountSteps = Generator[list[str], list[int], Any]


def _counts_together(client: ShopifyClient, steps: dict[str, CountSteps],
                     tallies: dict[str, _Tally]) -> dict[str, Any]:
    """Run each kind's steps, the counts of all kinds at the same level in one request."""
    results: dict[str, Any] = {}
    asks: dict[str, list[str]] = {}
    for kind, gen in steps.items():
        try:
            asks[kind] = next(gen)
        except StopIteration as done:
            results[kind] = done.value
    while asks:
        answers = _counts_batched(client, asks, tallies)
        for kind in list(asks):
            try:
                asks[kind] = steps[kind].send(answers[kind])
            except StopIteration as done:
                results[kind] = done.value
                del asks[kind]
    return results


def _ids_batched(client: ShopifyClient, kind: str, ranges: list[tuple[str, int]], tally: _Tally) -> list[set[int]]:
    """Shopify's ids in each (search, expected count), many ranges per request (aliases)."""
    out: list[set[int]] = [set() for _ in ranges]
    batch: list[tuple[int, str, int]] = []

    def send() -> None:
        body = " ".join(
            f"d{n}: {kind}(first: {size}, sortKey: ID, query: {orjson.dumps(q).decode()}) "
            "{ nodes { id } pageInfo { hasNextPage } }" for n, (_, q, size) in enumerate(batch))
        cost = sum(2 + size for _, _, size in batch)
        data = client.graphql(f"query TenureIds {{ {body} }}", expected_cost=cost).data
        tally.requests += 1
        tally.points += cost
        for n, (i, q, _) in enumerate(batch):
            conn = data.get(f"d{n}") or {}
            nodes = conn.get("nodes") or []
            if (conn.get("pageInfo") or {}).get("hasNextPage"):
                # More than counted a moment ago: page through that range on its own.
                nodes = list(client.paginate(IDS_PAGE[kind], variables={"query": q}, connection=kind,
                                             page_size=IDS_PAGE_MAX))
                tally.requests += 1 + len(nodes) // IDS_PAGE_MAX
                tally.points += len(nodes) + 2
            out[i] = {nz.gid_id(node["id"]) for node in nodes}  # type: ignore[misc]
        batch.clear()

    for i, (search, expected) in enumerate(ranges):
        if expected == 0:
            continue  # nothing there: no need to ask
        size = max(1, min(IDS_PAGE_MAX, expected + 1))
        if batch and (sum(2 + n for _, _, n in batch) + 2 + size > 800 or len(batch) >= 25):
            send()
        batch.append((i, search, size))
    if batch:
        send()
    return out


def _block_days(span: int, expected: int | None) -> int:
    """Days per first-level count. Counting S days in blocks of B costs S / B counts, and narrowing
    each of D differences down to its day about log2(B) more: S / B + D log2(B) is least at
    B = S ln 2 / D. Without an expected number (the daily check), a week."""
    if not expected:
        return RECONCILE_BLOCK_DAYS
    return max(1, min(span, round(span * math.log(2) / expected)))


def _differing_days(bounds: list[int], ours: list[int],
                    block: int = RECONCILE_BLOCK_DAYS) -> Generator[list[str], list[int], dict[int, int]]:
    """Day index -> Shopify's count, for the days whose count differs from ours (`bounds`: the
    epoch second each day starts, then where the last one ends), counted `block` days at a time first."""
    prefix = [0]
    for n in ours:
        prefix.append(prefix[-1] + n)

    def search(i: int, j: int) -> str:
        return _epoch_between(bounds[i], bounds[j])

    out: dict[int, int] = {}
    blocks = [(i, min(i + block, len(ours))) for i in range(0, len(ours), block)]
    counts = (yield [search(i, j) for i, j in blocks]) if blocks else []
    level = [(i, j, n) for (i, j), n in zip(blocks, counts, strict=True)]
    while level:
        parents = []
        for i, j, theirs in level:
            if theirs == prefix[j] - prefix[i]:
                continue
            if j - i == 1:
                out[i] = theirs
            else:
                parents.append((i, j, theirs))
        lefts = [(i, (i + j) // 2) for i, j, _ in parents]
        answers = (yield [search(i, m) for i, m in lefts]) if lefts else []
        level = []
        for (i, j, theirs), (_, m), left in zip(parents, lefts, answers, strict=True):
            level += [(i, m, left), (m, j, theirs - left)]
    return out


def _differing_ranges(days: dict[date, tuple[int, int, int]], ours: dict[date, list[tuple[int, int]]],
                      ) -> Generator[list[str], list[int], list[tuple[int, int, int]]]:
    """Within differing days (day -> its start, end and Shopify's count): the (start, end,
    Shopify's count) ranges where Shopify has none of ours (ours there are gone), none of ours
    but some of its own (we lack those), few enough rows to list (RECONCILE_LIST_AT_MOST), or one
    second left; halved at the median of our rows."""

    def bounds(day: date, a: int, b: int) -> tuple[int, int]:
        rows = ours[day]
        return bisect.bisect_left(rows, (a,)), bisect.bisect_left(rows, (b,))

    leaves: list[tuple[int, int, int]] = []
    level = [(day, a, b, theirs) for day, (a, b, theirs) in days.items()]
    while level:
        splits = []
        for day, a, b, theirs in level:
            lo, hi = bounds(day, a, b)
            if theirs == hi - lo:
                continue
            if theirs == 0 or hi == lo or b - a <= 1 or theirs <= RECONCILE_LIST_AT_MOST:
                leaves.append((a, b, theirs))
                continue
            mid = ours[day][(lo + hi) // 2][0] if hi - lo >= 2 else a
            if not a < mid < b:
                mid = (a + b) // 2
            splits.append((day, a, mid, b, theirs))
        asks = [_epoch_between(a, mid) for _, a, mid, _, _ in splits]
        answers = (yield asks) if asks else []
        level = []
        for (day, a, mid, b, theirs), left in zip(splits, answers, strict=True):
            level += [(day, a, mid, left), (day, mid, b, theirs - left)]
    return leaves


def reconcile_kinds(*, shop: Shop, client: ShopifyClient, run: SyncRun, kinds: Iterable[str],
                    days: int | None = None, until: datetime | None = None,
                    expected: Mapping[str, int] | None = None) -> set[int]:
    """Compare our counts with Shopify's (`ordersCount`/`customersCount` by created_at, days in the
    shop's zone), find the rows that differ and fix them: ours that Shopify no longer has are
    deleted (with a tombstone), Shopify's that we lack are read and written. The kinds go side by
    side, their counts of a level in one request.

    With `days` only the most recent days are checked. Shopify's rows created from `until` on
    (default: now) are left for the next check, so orders placed meanwhile cannot hide a deletion;
    every row we hold is checked, whatever its time. `expected` (kind -> how many rows differ at
    least, from the totals) sizes the first level's blocks. Returns the customers whose orders changed.
    """
    tallies = {kind: _Tally() for kind in kinds}
    steps = {kind: _reconcile_steps(shop=shop, client=client, run=run, kind=kind, days=days, until=until,
                                    tally=tallies[kind], expected=(expected or {}).get(kind))
             for kind in tallies}
    touched: set[int] = set()
    for found in _counts_together(client, steps, tallies).values():
        touched |= found
    return touched


def _reconcile_steps(*, shop: Shop, client: ShopifyClient, run: SyncRun, kind: str, days: int | None,
                     until: datetime | None, tally: _Tally,
                     expected: int | None = None) -> Generator[list[str], list[int], set[int]]:
    """One kind's reconciliation (see reconcile_kinds); its counts go through the caller."""
    tz = ZoneInfo(shop.iana_timezone or "UTC")
    clock = time.perf_counter()
    ours_by_day, newest = _our_counts_by_day(shop, tz, kind)
    tally.sql_s += time.perf_counter() - clock
    until = until or timezone.now()
    if newest is not None and newest >= until:
        until = newest + timedelta(seconds=1)
    last = until.astimezone(tz).date()
    first = last - timedelta(days=days) if days else min([last, *ours_by_day])
    if kind == "orders" and "read_all_orders" not in shop.granted_scopes:
        # Older orders are ours to keep: Shopify only hides them from this app.
        first = max(first, last - timedelta(days=HISTORY_DAYS - 1))
    span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    bounds = [int(_day_bounds(d, tz)[0].timestamp()) for d in span] + [int(until.timestamp())]
    by_index = yield from _differing_days(bounds, [ours_by_day.get(d, 0) for d in span],
                                          _block_days(len(span), expected))
    differing = {span[i]: (bounds[i], bounds[i + 1], theirs) for i, theirs in by_index.items()}
    touched: set[int] = set()
    removed = added = 0
    pending = sorted(differing, reverse=True)
    while pending:
        # Our rows of the differing days, a bounded number at a time.
        batch: dict[date, tuple[int, int, int]] = {}
        held = 0
        while pending and (not batch or held + ours_by_day.get(pending[-1], 0) <= DETAIL_ROWS):
            day = pending.pop()
            batch[day] = differing[day]
            held += ours_by_day.get(day, 0)
        clock = time.perf_counter()
        ours = _our_rows_on_days(shop, tz, kind, list(batch))
        tally.sql_s += time.perf_counter() - clock
        leaves = yield from _differing_ranges(batch, ours)
        theirs_ids = _ids_batched(client, kind, [(_epoch_between(a, b), n) for a, b, n in leaves], tally)
        gone: set[int] = set()
        missing: set[int] = set()
        for (a, b, _), their_ids in zip(leaves, theirs_ids, strict=True):
            rows = ours[datetime.fromtimestamp(a, tz).date()]
            mine = {i for _, i in rows[bisect.bisect_left(rows, (a,)):bisect.bisect_left(rows, (b,))]}
            gone |= mine - their_ids
            missing |= their_ids - mine
        gone -= _still_there(client, kind, gone, tally)
        removed += len(gone)
        added += len(missing)
        touched |= _reconcile_apply(shop=shop, client=client, kind=kind, gone=gone, missing=missing, tally=tally,
                                    run=run)
    run.state.setdefault("reconciled", {})[kind] = {
        "days": [d.isoformat() for d in sorted(differing)], "removed": removed, "added": added,
        "requests": tally.requests, "points": round(tally.points), "read_points": tally.read_points,
        "sql_s": round(tally.sql_s, 3)}
    return touched


def _still_there(client: ShopifyClient, kind: str, ids: set[int], tally: _Tally) -> set[int]:
    """Those of `ids` Shopify still finds by id: counts come from its search index, which may lag;
    a deletion leaves a tombstone for good, so each one is confirmed first."""
    found: set[int] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), IDS_PAGE_MAX):
        gids = [f"gid://shopify/{'Order' if kind == 'orders' else 'Customer'}/{i}"
                for i in ordered[start:start + IDS_PAGE_MAX]]
        result = client.graphql("query TenureExist($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": gids},
                                expected_cost=len(gids))
        tally.requests += 1
        tally.points += int(result.requested_cost or len(gids))
        found |= {nz.gid_id(n["id"]) for n in result.data.get("nodes") or []  # type: ignore[misc]
                  if isinstance(n, dict) and n.get("id")}
    if found:
        logger.warning("reconciliation: %d row(s) counted gone are still there", len(found))
    return found


def _reconcile_apply(*, shop: Shop, client: ShopifyClient, kind: str, gone: set[int], missing: set[int],
                     tally: _Tally, run: SyncRun) -> set[int]:
    """Delete ours that Shopify no longer has, read and write Shopify's that we lack."""
    touched = rows_gone(shop=shop, kind=kind, ids=gone) if gone else set()
    ids = sorted(missing)
    size = 10 if kind == "orders" else 50
    for start in range(0, len(ids), size):
        gids = [f"gid://shopify/{'Order' if kind == 'orders' else 'Customer'}/{i}" for i in ids[start:start + size]]
        query = ORDER_NODES if kind == "orders" else CUSTOMER_NODES
        result = client.graphql(query, {"ids": gids}, expected_cost=len(gids) * (60 if kind == "orders" else 3))
        tally.requests += 1
        tally.read_points += int(result.requested_cost or 0)
        nodes = [n for n in result.data.get("nodes") or [] if isinstance(n, dict) and n.get("id")]
        with transaction.atomic():
            if kind == "orders":
                orders, refunds, customers, stale = _order_rows_from_nodes(nodes, run=run)
                touched |= stale
                rows_write(shop_id=shop.pk, currency=shop.currency, orders=orders, refunds=refunds,
                           customers=customers)
            else:
                rows_write(shop_id=shop.pk, currency=shop.currency, customers=_customer_rows(nodes, run=run))
    return touched


def reconcile_run(*, shop: Shop, client_factory: ClientFactory = default_client,
                  days: int | None = 90) -> SyncRun | None:
    """The daily check: per-day counts against Shopify's, differing days re-synced."""
    with log_context(shop=shop.domain), shop_lock(shop_id=shop.pk) as got:
        if not got:
            return None
        run = SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.RECONCILE, status=SyncRun.Status.RUNNING,
                                     started_at=timezone.now())
        try:
            client = client_factory(shop)
            try:
                touched = reconcile_kinds(shop=shop, client=client, run=run, kinds=("orders", "customers"),
                                          days=days)
                if touched:
                    customers_refresh(shop=shop, client=client, ids=touched, run=run)
            finally:
                client.close()
        except ShopifyError as exc:
            _fail(run, exc)
            return run
        _succeed(run, high_water_mark=None)
        return run


# --- paused shops -----------------------------------------------------------------------------------
# A 402 (frozen: unpaid bill) or 423 (locked) pauses a shop (ShopifyClient.for_shop records the
# reason): no sync asks for it. A beat task probes paused shops, the first time at once, then
# after 5, 10, 20... minutes (at most 12 hours between probes), and un-pauses a shop as soon as
# Shopify answers it again.

PROBE_FIRST_WAIT = timedelta(minutes=5)
PROBE_MAX_WAIT = timedelta(hours=12)
SHOP_PING = "query TenurePing { shop { id } }"


def paused_shops_due(*, now: datetime | None = None) -> list[int]:
    """Installed, paused shops whose next probe is due (never probed: due now)."""
    now = now or timezone.now()
    # A shop un-paused some other way (reinstall) needs no probe state.
    PauseProbe.objects.filter(shop__paused_reason="").delete()
    return list(Shop.objects.installed().exclude(paused_reason="")
                .exclude(pause_probe__next_at__gt=now).values_list("pk", flat=True))


def shop_pause_probe(*, shop: Shop, client_factory: ClientFactory = default_client,
                     now: datetime | None = None) -> bool | None:
    """Ask Shopify about a paused shop: True when it answers again (the pause is lifted), False
    when it does not (the next probe waits twice as long), None when no probe is due yet."""
    now = now or timezone.now()
    if not shop.paused_reason:
        return True
    probe, _ = PauseProbe.objects.get_or_create(shop=shop, defaults={"next_at": now})
    if probe.next_at > now:
        return None
    try:
        with client_factory(shop) as client:
            client.graphql(SHOP_PING, expected_cost=1)
    except ShopifyError as exc:
        probe.attempts += 1
        probe.next_at = now + min(PROBE_MAX_WAIT, PROBE_FIRST_WAIT * 2 ** (probe.attempts - 1))
        probe.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
        probe.save(update_fields=["attempts", "next_at", "last_error"])
        logger.info("shop still paused", extra={"shop": shop.domain, "attempts": probe.attempts})
        return False
    with transaction.atomic():
        Shop.objects.filter(pk=shop.pk).update(paused_reason="", updated_at=now)
        PauseProbe.objects.filter(shop=shop).delete()
    shop.paused_reason = ""
    logger.info("shop answers again: pause lifted", extra={"shop": shop.domain})
    return True


def backfill_needed(*, shop: Shop) -> bool:
    """No backfill of the shop has succeeded (it failed while the shop was paused, say)."""
    return not SyncRun.objects.filter(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.SUCCEEDED).exists()


def installed_shop_ids() -> list[int]:
    return list(Shop.objects.installed().filter(paused_reason="").values_list("pk", flat=True))


def sync_interval() -> timedelta:
    return timedelta(seconds=settings.SYNC_INCREMENTAL_EVERY.total_seconds())
