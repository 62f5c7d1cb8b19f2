"""One-line start-up errors instead of stack traces."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class StartupError(Exception):
    """A problem the operator can fix; its message names the thing and what to do."""


def run_friendly(func: Callable[..., Any], *args: Any) -> Any:
    """Run `func`, turning a StartupError (or one raised while loading settings) into one line."""
    try:
        return func(*args)
    except StartupError as exc:
        print(f"tenure: error: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    except Exception as exc:
        cause = exc
        while cause is not None and not isinstance(cause, StartupError):
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        if isinstance(cause, StartupError):
            print(f"tenure: error: {cause}", file=sys.stderr)  # noqa: T201
            raise SystemExit(1) from None
        raise
