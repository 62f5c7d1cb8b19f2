"""What a sync run tells the merchant when Shopify says no: each answer a live store can give, in words.

A run keeps the sentence (``SyncRun.error``, shown on the Data page) and the technical detail
(``SyncRun.state["error_detail"]``, for support). The codes are Shopify's: top-level GraphQL
``extensions.code``, bulk ``userErrors[].code`` and a bulk operation's ``errorCode``/status.
"""

from __future__ import annotations

from sync.client import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyQueryError,
    ShopifyShopPausedError,
    ShopifyTransientError,
)

RETRY = "Tenure tries again by itself; nothing is lost or counted twice meanwhile."

CODES: dict[str, str] = {
    "ACCESS_DENIED": (
        "Shopify refused Tenure access to part of the store's data: the app is missing a permission. "
        "Open Tenure from the Shopify admin and approve the permissions it asks for."
    ),
    "INVALID": (
        "Shopify refused the export Tenure asked for as invalid. This is a fault in Tenure, not in the "
        "store; it is recorded for the Tenure team, and the data already imported stays as it was."
    ),
    "MAX_COST_EXCEEDED": (
        "Shopify refused a request as too large for one call. Tenure asks for smaller pieces; if this "
        "stays, it is a fault in Tenure, recorded for the Tenure team."
    ),
    "THROTTLED": f"Shopify asked Tenure to slow down for longer than one attempt waits. {RETRY}",
    "OPERATION_IN_PROGRESS": (
        "Shopify is already running as many exports for this store as it allows at once (five, some "
        f"perhaps by other apps). {RETRY}"
    ),
    "LIMIT_REACHED": (
        "Shopify is already running as many exports for this store as it allows at once. " + RETRY
    ),
    "INTERNAL_SERVER_ERROR": f"Shopify had an internal error while answering. {RETRY}",
    "TIMEOUT": f"Shopify stopped an export that ran longer than it allows. {RETRY}",
}

BULK_STATUS: dict[str, str] = {
    "EXPIRED": f"Shopify's export file expired before Tenure had read it all. {RETRY}",
    "CANCELED": f"The export was cancelled on Shopify's side. {RETRY}",
}


class RetryLater(ShopifyTransientError):
    """Shopify said "not now" (every export slot taken, an export that keeps failing): the message is
    the merchant's sentence, and the task is retried like any transient failure."""


def bulk_outcome(status: str | None, error_code: str | None, *, partial: bool = False) -> str:
    """A bulk operation that ended without a usable file (FAILED, EXPIRED, CANCELED), in words."""
    if status == "FAILED":
        said = CODES.get(str(error_code or ""), f"Shopify's export failed ({error_code or 'no reason given'}). {RETRY}")
        if partial:
            said += " Shopify offered part of the file; Tenure reads the whole export again instead."
        return said
    return BULK_STATUS.get(str(status or ""), f"Shopify's export ended {status}. {RETRY}")


def explain(exc: BaseException) -> str:
    """The sentence a merchant reads for a failure (the Data page's "last sync" line)."""
    if isinstance(exc, RetryLater):
        return str(exc)
    if isinstance(exc, ShopifyAuthError):
        return f"Shopify no longer accepts Tenure's access ({exc}). Open Tenure from the Shopify admin."
    if isinstance(exc, ShopifyShopPausedError):
        return f"Syncing is paused: {exc}. It resumes by itself once Shopify answers again."
    if isinstance(exc, ShopifyQueryError):
        for code in ("ACCESS_DENIED", "INVALID", "MAX_COST_EXCEEDED", "OPERATION_IN_PROGRESS", "LIMIT_REACHED",
                     "THROTTLED", "INTERNAL_SERVER_ERROR", "TIMEOUT"):
            if code in exc.codes:
                return CODES[code]
        return f"Shopify refused a request ({exc}). This is recorded for the Tenure team."
    if isinstance(exc, ShopifyTransientError):
        if exc.code in CODES:
            return CODES[exc.code]
        return f"Shopify did not answer in time ({exc}). {RETRY}"
    if isinstance(exc, ShopifyError):
        return f"Shopify answered unexpectedly ({exc}). {RETRY}"
    return f"The sync stopped: {exc}"


def detail(exc: BaseException) -> str:
    """The technical line kept beside the sentence (class, message, Shopify's codes)."""
    codes = sorted(c for c in {*getattr(exc, "codes", set()), getattr(exc, "code", None)} if c)
    return f"{exc.__class__.__name__}: {exc}" + (f" [{', '.join(codes)}]" if codes else "")
