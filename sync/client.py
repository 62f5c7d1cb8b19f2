"""The app's only door to Shopify over HTTP.

Everything that talks to Shopify (token exchange and refresh through `shopifyapp`,
Admin GraphQL, bulk-operation result downloads) goes through an `httpx.Client`
made here. Against real Shopify it connects to https://<shop>.myshopify.com; when
``SHOPIFY_API_BASE_URL`` is set (devstore), the transport sends the very same
requests to that base URL instead, keeping the shop in the Host header. Nothing
else in the code differs between the two.

`ShopifyClient` is built per shop (no global session). It paces itself from
``extensions.cost.throttleStatus``, retries what is transient (timeouts, 5xx, 429,
``THROTTLED``) with backoff and jitter, and turns everything else into a typed error.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import orjson
from django.conf import settings

if TYPE_CHECKING:
    from shops.models import Shop

logger = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
# Shopify refuses any single query requesting more than this many points.
MAX_QUERY_COST = 1000
MAX_PAGE_SIZE = 250
# Every request names the app, so Shopify (and devstore's journal, which the conformance guard reads)
# can tell Tenure's requests from anyone else's.
USER_AGENT = "Tenure (Shopify app; customer lifetime analytics)"
# A longer Retry-After than this is waited only this long: a worker does not sleep for an hour,
# and the retry that follows is paced again by what Shopify answers then.
RETRY_AFTER_MAX = 60.0


class BaseUrlTransport(httpx.BaseTransport):
    """Sends requests for *.myshopify.com (and result URLs) to `base_url`, Host header kept."""

    def __init__(self, base_url: str, inner: httpx.BaseTransport | None = None) -> None:
        self.base = httpx.URL(base_url)
        self.inner = inner or httpx.HTTPTransport(retries=0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host.endswith(".myshopify.com") or host == "admin.shopify.com":
            request.headers["Host"] = host
            request.url = request.url.copy_with(
                scheme=self.base.scheme, host=self.base.host, port=self.base.port
            )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def shopify_http_client(*, read_timeout: float = READ_TIMEOUT, **kwargs: Any) -> httpx.Client:
    """An httpx client with connect and read timeouts, pointed at Shopify or at devstore."""
    timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
    base = getattr(settings, "SHOPIFY_API_BASE_URL", None)
    if base:
        kwargs.setdefault("transport", BaseUrlTransport(base))
    kwargs.setdefault("headers", {"User-Agent": USER_AGENT})
    return httpx.Client(timeout=timeout, **kwargs)


# --- Errors ------------------------------------------------------------------------


class ShopifyError(Exception):
    """Base of everything the client raises."""


class ShopifyTransientError(ShopifyError):
    """Timeouts, 5xx, 429 or THROTTLED that outlasted the retries: try again later. `code` is
    Shopify's, where it gave one (THROTTLED, INTERNAL_SERVER_ERROR)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ShopifyAuthError(ShopifyError):
    """401/403 that a token refresh did not cure; the shop is marked as needing reauthorisation."""


class ShopifyShopPausedError(ShopifyError):
    """402 (frozen, unpaid) or 423 (locked): no work until the merchant sorts it out."""


class ShopifyQueryError(ShopifyError):
    """The query itself was refused (syntax, access denied, cost over the cap, userErrors)."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    @property
    def codes(self) -> set[str]:
        return {str((e.get("extensions") or {}).get("code") or "") for e in self.errors}

    @property
    def requested_cost(self) -> int | None:
        """What a MAX_COST_EXCEEDED answer says the query would have cost."""
        for e in self.errors:
            cost = (e.get("extensions") or {}).get("cost")
            if isinstance(cost, int | float) and not isinstance(cost, bool):
                return int(cost)
        return None


@dataclass
class GraphQLResult:
    data: dict[str, Any]
    # Partial errors (e.g. protected customer fields) that came with usable data.
    errors: list[dict[str, Any]] = field(default_factory=list)
    requested_cost: int | None = None
    actual_cost: int | None = None


@dataclass
class _Bucket:
    """The last throttleStatus seen, projected forward by its restore rate."""

    maximum: float = 1000.0
    available: float = 1000.0
    restore_rate: float = 50.0
    seen_at: float = 0.0

    def now_available(self, now: float) -> float:
        return min(self.maximum, self.available + (now - self.seen_at) * self.restore_rate)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) as seconds to wait, at most
    RETRY_AFTER_MAX; None when absent or unreadable (then the usual backoff applies)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT; a lenient parse may leave it naive
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def _lines_dropped(data: bytes, n: int) -> tuple[bytes, int]:
    """`data` without its first `n` lines (a line ends at its newline), and how many are left to drop."""
    count = data.count(b"\n")
    if count < n:
        return b"", n - count
    pos = -1
    for _ in range(n):
        pos = data.index(b"\n", pos + 1)
    return data[pos + 1:], 0


def _error_codes(errors: Any) -> set[str]:
    if not isinstance(errors, list):
        return set()
    return {str((e.get("extensions") or {}).get("code") or "") for e in errors if isinstance(e, dict)}


class ShopifyClient:
    """Admin GraphQL for one shop: paced, retried, typed.

    `token_refresh` is called once on a 401 (it returns a fresh token); when the
    retry fails too, `on_auth_failed(reason)` marks the shop. `on_paused(reason)`
    records a 402/423 on the shop.
    """

    def __init__(
        self,
        *,
        shop_domain: str,
        access_token: str,
        api_version: str | None = None,
        token_refresh: Callable[[], str] | None = None,
        on_auth_failed: Callable[[str], None] | None = None,
        on_paused: Callable[[str], None] | None = None,
        max_attempts: int = 6,
        max_throttle_waits: int = 50,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        read_timeout: float = READ_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
    ) -> None:
        self.shop_domain = shop_domain
        self.api_version = api_version or settings.SHOPIFY_API_VERSION
        self._token = access_token
        self._token_refresh = token_refresh
        self._on_auth_failed = on_auth_failed
        self._on_paused = on_paused
        self.max_attempts = max_attempts
        self.max_throttle_waits = max_throttle_waits
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._http = http or shopify_http_client(read_timeout=read_timeout)
        self._bucket = _Bucket()
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        # Counters a caller (or a test) can read: how hard did we have to try.
        # request_s: time spent waiting on Shopify's answers (the rest of a sync's time is ours).
        self.stats = {"requests": 0, "retries": 0, "throttled": 0, "throttle_wait_s": 0.0, "refreshes": 0,
                      "request_s": 0.0}

    @classmethod
    def for_shop(cls, shop: Shop, **kwargs: Any) -> ShopifyClient:
        """A client for an installed shop: refresh-aware token, failures recorded on the shop."""
        from django.utils import timezone

        from shops import services as shop_services
        from shops.models import Shop as ShopModel

        def refresh() -> str:
            try:
                return shop_services.credential_refresh(shop=shop, force=True)
            except shop_services.ShopifyTokenError as exc:
                raise ShopifyTransientError(str(exc)) from exc

        def auth_failed(reason: str) -> None:
            shop_services.shop_needs_reauth_mark(shop=shop, reason=reason)

        def paused(reason: str) -> None:
            ShopModel.objects.filter(pk=shop.pk).update(paused_reason=reason, updated_at=timezone.now())
            shop.paused_reason = reason

        try:
            token = shop_services.access_token_get(shop=shop)
        except shop_services.ShopAuthError as exc:
            raise ShopifyAuthError(str(exc)) from exc
        except shop_services.ShopifyTokenError as exc:
            raise ShopifyTransientError(str(exc)) from exc
        return cls(shop_domain=shop.domain, access_token=token, token_refresh=refresh,
                   on_auth_failed=auth_failed, on_paused=paused, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShopifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def graphql_url(self) -> str:
        return f"https://{self.shop_domain}/admin/api/{self.api_version}/graphql.json"

    # --- pacing and retries ---------------------------------------------------------

    def _backoff(self, attempt: int, *, retry_after: float | None = None) -> None:
        if retry_after is not None:
            delay = retry_after  # what the server asked for (429 or 503), capped
        else:
            # Full jitter: spreads the retries of many workers over the window.
            delay = self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))
        self.stats["retries"] += 1
        self._sleep(delay)

    def _pace(self, cost: int) -> None:
        """Wait until the bucket can pay for a query of this cost (no request sent just to be refused)."""
        if self._bucket.seen_at == 0.0:
            return
        now = time.monotonic()
        available = self._bucket.now_available(now)
        # A query larger than the whole bucket can only wait for a full one.
        cost = min(cost, int(self._bucket.maximum))
        if available < cost and self._bucket.restore_rate > 0:
            wait = (cost - available) / self._bucket.restore_rate
            self.stats["throttle_wait_s"] += wait
            self._sleep(wait)

    def _note_cost(self, extensions: Any) -> dict[str, Any]:
        cost = (extensions or {}).get("cost") if isinstance(extensions, dict) else None
        if not isinstance(cost, dict):
            return {}
        status = cost.get("throttleStatus") or {}
        with contextlib.suppress(TypeError, ValueError):
            self._bucket = _Bucket(
                maximum=float(status.get("maximumAvailable", self._bucket.maximum)),
                available=float(status.get("currentlyAvailable", self._bucket.available)),
                restore_rate=float(status.get("restoreRate", self._bucket.restore_rate)),
                seen_at=time.monotonic(),
            )
        return cost

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange with retries on transport errors, 5xx and 429; auth and pause typed."""
        refreshed = False
        attempt = 0
        while True:
            headers = {**kwargs.pop("headers", {}), "X-Shopify-Access-Token": self._token}
            self.stats["requests"] += 1
            sent = time.perf_counter()
            try:
                response = self._http.request(method, url, headers=headers, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self.stats["request_s"] += time.perf_counter() - sent
                attempt += 1
                if attempt >= self.max_attempts:
                    raise ShopifyTransientError(f"{exc.__class__.__name__} after {attempt} attempts") from exc
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "X-Shopify-Access-Token"}
                self._backoff(attempt)
                continue
            self.stats["request_s"] += time.perf_counter() - sent
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "X-Shopify-Access-Token"}
            status = response.status_code
            if status == 401 or (status == 403 and not refreshed and self._token_refresh is not None
                                 and "scope" not in response.text.lower()):
                if not refreshed and self._token_refresh is not None:
                    refreshed = True
                    self.stats["refreshes"] += 1
                    try:
                        self._token = self._token_refresh()
                    except ShopifyTransientError:
                        raise
                    except Exception as exc:  # refresh refused: the merchant must open the app again
                        reason = f"token refresh failed ({exc}); open Tenure in Shopify"
                        if self._on_auth_failed is not None:
                            self._on_auth_failed(reason)
                        raise ShopifyAuthError(reason) from exc
                    continue
                reason = f"Shopify refused the access token ({status}); open Tenure in Shopify"
                if self._on_auth_failed is not None:
                    self._on_auth_failed(reason)
                raise ShopifyAuthError(reason)
            if status == 403:
                raise ShopifyAuthError(f"Shopify denied access (403): {response.text[:200]}")
            if status in (402, 423):
                reason = ("the shop is frozen (unpaid Shopify bill)" if status == 402
                          else "the shop is locked by Shopify")
                if self._on_paused is not None:
                    self._on_paused(reason)
                raise ShopifyShopPausedError(reason)
            if status == 429 or status >= 500:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise ShopifyTransientError(f"HTTP {status} after {attempt} attempts")
                retry_after = None
                if status in (429, 503):
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                self._backoff(attempt, retry_after=retry_after)
                continue
            return response

    # --- GraphQL ----------------------------------------------------------------------

    def request_budget(self) -> float:
        """Points one request may ask for: 90% of the single-query cap, and of the bucket when a
        plan's bucket is smaller (a request over either is refused, not queued)."""
        return 0.9 * min(MAX_QUERY_COST, self._bucket.maximum)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, *,
                expected_cost: int = 50) -> GraphQLResult:
        """One GraphQL operation; waits out THROTTLED; returns data (with any partial errors)."""
        body = orjson.dumps({"query": query, "variables": dict(variables or {})})
        throttles = 0
        transient = 0
        while True:
            self._pace(expected_cost)
            response = self._send("POST", self.graphql_url, content=body,
                                  headers={"Content-Type": "application/json"})
            if response.status_code != 200:
                raise ShopifyQueryError(f"HTTP {response.status_code}: {response.text[:300]}")
            try:
                payload = orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                raise ShopifyTransientError("response is not JSON") from exc
            cost = self._note_cost(payload.get("extensions"))
            errors = payload.get("errors")
            codes = _error_codes(errors)
            requested = cost.get("requestedQueryCost")
            if "THROTTLED" in codes:
                # THROTTLED arrives with HTTP 200: wait exactly what the bucket needs to refill.
                if requested and requested > self._bucket.maximum:
                    # Never payable on this plan's bucket: the caller must ask for less.
                    raise ShopifyQueryError(
                        f"query cost {requested} exceeds the bucket ({self._bucket.maximum:.0f})",
                        [{"message": "cost over bucket", "extensions": {"code": "MAX_COST_EXCEEDED"}}])
                throttles += 1
                self.stats["throttled"] += 1
                if throttles > self.max_throttle_waits:
                    raise ShopifyTransientError("still THROTTLED after waiting", code="THROTTLED")
                need = min(float(requested or expected_cost), self._bucket.maximum)
                available = self._bucket.available
                rate = self._bucket.restore_rate or 50.0
                wait = max(0.05, (need - available) / rate)
                self.stats["throttle_wait_s"] += wait
                self._sleep(wait)
                expected_cost = int(need)
                continue
            if "INTERNAL_SERVER_ERROR" in codes and payload.get("data") is None:
                transient += 1
                if transient >= self.max_attempts:
                    raise ShopifyTransientError("INTERNAL_SERVER_ERROR after retries", code="INTERNAL_SERVER_ERROR")
                self._backoff(transient)
                continue
            data = payload.get("data")
            if errors and not isinstance(errors, list):
                raise ShopifyQueryError(f"request refused: {errors}")
            if not isinstance(data, dict):
                messages = "; ".join(str(e.get("message")) for e in errors or [] if isinstance(e, dict))
                raise ShopifyQueryError(messages or "no data", errors if isinstance(errors, list) else [])
            if errors:
                logger.info("GraphQL partial data: %s", sorted(codes))
            return GraphQLResult(data=data, errors=list(errors or []), requested_cost=requested,
                                 actual_cost=cost.get("actualQueryCost"))

    def batched(self, items: Sequence[T], send: Callable[[Sequence[T], int], GraphQLResult], *,
                per_item: float) -> Iterator[tuple[Sequence[T], GraphQLResult]]:
        """`items` in as few requests as the cost allows: `send(part, expected_cost)` asks for one part.

        The first part is sized from `per_item` (a guess that errs high); every answer's
        `requestedQueryCost` then sets the points per item, so the parts fill a request's budget
        whatever Shopify charges. A MAX_COST_EXCEEDED answer re-sizes from the cost it names.
        """
        start = 0
        while start < len(items):
            size = max(1, int(self.request_budget() // max(per_item, 0.01)))
            part = items[start:start + size]
            try:
                result = send(part, max(1, int(per_item * len(part))))
            except ShopifyQueryError as exc:
                if "MAX_COST_EXCEEDED" not in exc.codes or len(part) == 1:
                    raise
                per_item = max(per_item * 2, (exc.requested_cost or 0) / len(part))
                continue
            if result.requested_cost:
                per_item = result.requested_cost / len(part)
            yield part, result
            start += len(part)

    def paginate(self, query: str, *, variables: Mapping[str, Any] | None = None,
                 connection: str, page_size: int = 100,
                 on_page: Callable[[GraphQLResult], None] | None = None) -> Iterator[dict[str, Any]]:
        """Nodes of the top-level `connection`, page after page.

        The query must take `$first: Int!` and `$after: String` and select
        `nodes` and `pageInfo { hasNextPage endCursor }` on the connection. The page size
        follows the cost: after the first page it is scaled so a page requests at most
        90% of the single-query cap, and a MAX_COST_EXCEEDED answer halves it.
        """
        size = max(1, min(MAX_PAGE_SIZE, page_size))
        after: str | None = None
        expected = 50
        while True:
            try:
                result = self.graphql(query, {**(variables or {}), "first": size, "after": after},
                                      expected_cost=expected)
            except ShopifyQueryError as exc:
                if "MAX_COST_EXCEEDED" in exc.codes and size > 1:
                    size = max(1, size // 2)
                    continue
                raise
            if on_page is not None:
                on_page(result)
            conn = result.data.get(connection) or {}
            yield from conn.get("nodes") or []
            info = conn.get("pageInfo") or {}
            if result.requested_cost:
                per_node = max(1.0, result.requested_cost / size)
                size = max(1, min(MAX_PAGE_SIZE, int(self.request_budget() / per_node)))
                expected = int(per_node * size)
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    # --- bulk operations -----------------------------------------------------------------

    BULK_RUN = """
mutation TenureBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { code field message }
  }
}"""
    BULK_FIELDS = "id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url partialDataUrl"

    def bulk_run(self, query: str) -> str:
        """Start a bulk query; returns its GID. OPERATION_IN_PROGRESS surfaces as ShopifyQueryError."""
        result = self.graphql(self.BULK_RUN, {"query": query}, expected_cost=10)
        payload = result.data.get("bulkOperationRunQuery") or {}
        user_errors = payload.get("userErrors") or []
        if user_errors:
            raise ShopifyQueryError("; ".join(str(e.get("message")) for e in user_errors),
                                    [{"message": e.get("message"), "extensions": {"code": e.get("code")}}
                                     for e in user_errors])
        op = payload.get("bulkOperation") or {}
        return str(op["id"])

    def bulk_get(self, op_id: str) -> dict[str, Any]:
        query = f"query TenureBulkGet($id: ID!) {{ bulkOperation(id: $id) {{ {self.BULK_FIELDS} }} }}"
        result = self.graphql(query, {"id": op_id}, expected_cost=1)
        op = result.data.get("bulkOperation")
        if not isinstance(op, dict):
            raise ShopifyQueryError(f"bulk operation {op_id} not found")
        return op

    def bulk_running(self) -> dict[str, Any] | None:
        """The shop's running (or created) query bulk operation, if any."""
        query = (f"query TenureBulkRunning {{ bulkOperations(first: 1, query: \"status:RUNNING OR status:CREATED\") "
                 f"{{ nodes {{ {self.BULK_FIELDS} query }} }} }}")
        try:
            result = self.graphql(query, expected_cost=3)
        except ShopifyQueryError:
            return None
        nodes = (result.data.get("bulkOperations") or {}).get("nodes") or []
        running = [n for n in nodes if n.get("status") in ("RUNNING", "CREATED")]
        return running[0] if running else None

    def bulk_cancel(self, op_id: str) -> None:
        mutation = ("mutation TenureBulkCancel($id: ID!) { bulkOperationCancel(id: $id) "
                    "{ bulkOperation { id status } userErrors { field message } } }")
        self.graphql(mutation, {"id": op_id}, expected_cost=10)

    def bulk_wait(self, op_id: str, *, poll_every: float = 1.0, max_poll: float = 10.0,
                  on_progress: Callable[[dict[str, Any]], None] | None = None,
                  timeout: float = 6 * 3600) -> dict[str, Any]:
        """Poll until the operation leaves CREATED/RUNNING; returns its final state."""
        deadline = time.monotonic() + timeout
        delay = poll_every
        while True:
            op = self.bulk_get(op_id)
            if on_progress is not None:
                on_progress(op)
            if op.get("status") not in ("CREATED", "RUNNING", "CANCELING"):
                return op
            if time.monotonic() > deadline:
                raise ShopifyTransientError(f"bulk operation {op_id} still {op.get('status')} after {timeout} s")
            self._sleep(delay)
            delay = min(max_poll, delay * 1.5)

    def bulk_chunks(self, url: str, *, skip: int = 0, chunk_bytes: int = 8 << 20) -> Iterator[tuple[bytes, int]]:
        """The result file in pieces of whole lines (about `chunk_bytes` each) with their line counts,
        streamed (never held whole); the first `skip` lines dropped.

        Lines are only counted here (in C), never split one by one: the caller decodes a piece in
        one call. A dropped download restarts past the lines already handed out.
        """
        attempt = 0
        block = max(1 << 12, min(chunk_bytes, 1 << 20))
        while True:
            try:
                with self._http.stream("GET", url) as response:
                    if response.status_code >= 500 or response.status_code == 429:
                        raise httpx.HTTPStatusError("retry", request=response.request, response=response)
                    if response.status_code != 200:
                        raise ShopifyQueryError(f"bulk result download answered {response.status_code}")
                    to_skip = skip
                    buf = bytearray()
                    for data in response.iter_bytes(block):
                        if to_skip:
                            data, to_skip = _lines_dropped(data, to_skip)
                            if not data:
                                continue
                        buf += data
                        if len(buf) >= chunk_bytes:
                            cut = buf.rfind(b"\n") + 1
                            if cut:
                                piece = bytes(buf[:cut])
                                del buf[:cut]
                                n = piece.count(b"\n")
                                skip += n
                                yield piece, n
                    if buf.strip():
                        piece = bytes(buf) if buf.endswith(b"\n") else bytes(buf) + b"\n"
                        n = piece.count(b"\n")
                        skip += n
                        yield piece, n
                    return
            except (httpx.TimeoutException, httpx.TransportError, httpx.HTTPStatusError) as exc:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise ShopifyTransientError(f"bulk result download failed: {exc.__class__.__name__}") from exc
                self._backoff(attempt)

    def bulk_lines(self, url: str, *, skip: int = 0) -> Iterator[bytes]:
        """The result file, line by line, streamed (never held whole); the first `skip` lines dropped.

        The result URL is signed and needs no token; it still goes through our transport.
        """
        attempt = 0
        while True:
            try:
                with self._http.stream("GET", url) as response:
                    if response.status_code >= 500 or response.status_code == 429:
                        raise httpx.HTTPStatusError("retry", request=response.request, response=response)
                    if response.status_code != 200:
                        raise ShopifyQueryError(f"bulk result download answered {response.status_code}")
                    n = 0
                    pending = b""
                    for chunk in response.iter_bytes(1 << 20):
                        pending += chunk
                        lines = pending.split(b"\n")
                        pending = lines.pop()
                        for line in lines:
                            if not line:
                                continue
                            n += 1
                            if n > skip:
                                skip = n
                                yield line
                    if pending.strip():
                        n += 1
                        if n > skip:
                            yield pending
                    return
            except (httpx.TimeoutException, httpx.TransportError, httpx.HTTPStatusError) as exc:
                # A dropped download restarts past the lines already handed out (`skip` tracks them).
                attempt += 1
                if attempt >= self.max_attempts:
                    raise ShopifyTransientError(f"bulk result download failed: {exc.__class__.__name__}") from exc
                self._backoff(attempt)
