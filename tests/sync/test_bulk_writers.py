"""Two writers COPY a result file's chunks at once, but commit them in file order: the resume
point only ever covers committed chunks, and a failure commits nothing past the gap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from shops.models import Shop
from sync import services
from sync.models import Order, SyncRun
from tests.sync.test_store import _order

pytestmark = pytest.mark.django_db(transaction=True)

CHUNKS = [list(range(1 + 10 * c, 11 + 10 * c)) for c in range(4)]  # 4 chunks of 10 orders


class FileClient:
    """The one client method bulk_ingest uses, over a result file held here (the HTTP side has its
    own tests): whole-line chunks with their line counts, the first `skip` lines dropped."""

    def bulk_chunks(self, url: str, *, skip: int = 0, chunk_bytes: int = 0) -> Iterator[tuple[bytes, int]]:
        lines = [orjson.dumps(_order(n)) + b"\n" for chunk in CHUNKS for n in chunk]
        for start in range(skip, len(lines), 10):
            piece = lines[start:start + 10]
            yield b"".join(piece), len(piece)


def _run() -> SyncRun:
    shop = Shop.objects.create(domain="writers.myshopify.com", currency="USD")
    return SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.RUNNING,
                                  state={"phases": {"orders": {"kind": "orders"}}})


def _first_id(chunk: Any) -> int:
    return min(chunk.order_ids)


def test_a_slow_first_chunk_still_commits_first(monkeypatch: pytest.MonkeyPatch) -> None:
    write = services.bulk_write

    def slow_first(**kw: Any) -> Any:
        if _first_id(kw["chunk"]) == 1:
            time.sleep(0.5)  # chunk 1's writer finishes its COPY long before
        return write(**kw)

    monkeypatch.setattr(services, "bulk_write", slow_first)
    run = _run()
    seen: list[tuple[int, set[int]]] = []

    def on_chunk(r: SyncRun) -> None:
        # What the database holds at each commit: the resume point and the rows, always in step.
        stored = SyncRun.objects.get(pk=r.pk).state["phases"]["orders"]["lines"]
        seen.append((stored, set(Order.objects.filter(shop=r.shop).values_list("shopify_id", flat=True))))

    written = services.bulk_ingest(run=run, client=FileClient(), phase="orders", url="file", on_chunk=on_chunk,
                                   writers=2)
    assert written.orders == 40
    assert [lines for lines, _ in seen] == [10, 20, 30, 40]
    # Every line the resume point covers is in the database (a later chunk may be in already).
    every = [n for chunk in CHUNKS for n in chunk]
    for lines, ids in seen:
        assert set(every[:lines]) <= ids, (lines, sorted(ids))
    assert SyncRun.objects.get(pk=run.pk).state["phases"]["orders"]["done"] is True


def test_a_failed_chunk_commits_nothing_after_it_and_resumes_there(monkeypatch: pytest.MonkeyPatch) -> None:
    write = services.bulk_write

    def second_fails(**kw: Any) -> Any:
        if _first_id(kw["chunk"]) == 11:
            time.sleep(0.2)  # chunk 3 is being written by the other writer meanwhile
            raise RuntimeError("connection lost")
        return write(**kw)

    monkeypatch.setattr(services, "bulk_write", second_fails)
    run = _run()
    with pytest.raises(RuntimeError, match="connection lost"):
        services.bulk_ingest(run=run, client=FileClient(), phase="orders", url="file", writers=2)
    stored = SyncRun.objects.get(pk=run.pk)
    assert stored.state["phases"]["orders"]["lines"] == 10
    assert set(Order.objects.filter(shop=run.shop).values_list("shopify_id", flat=True)) == set(CHUNKS[0])

    # The retry starts after the committed chunk and ends with every order once.
    monkeypatch.setattr(services, "bulk_write", write)
    services.bulk_ingest(run=stored, client=FileClient(), phase="orders", url="file", writers=2)
    ids = list(Order.objects.filter(shop=run.shop).values_list("shopify_id", flat=True))
    assert sorted(ids) == [n for chunk in CHUNKS for n in chunk]
    assert SyncRun.objects.get(pk=run.pk).state["phases"]["orders"]["lines"] == 40
