"""One-line start-up errors instead of stack traces."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO


class StartupError(Exception):
    """A problem the operator can fix; its message names the thing and what to do."""


def _describe(exc: BaseException) -> str | None:
    """A one-line explanation for errors an operator can fix, else None."""
    if isinstance(exc, StartupError):
        return str(exc)
    try:
        from django.db.utils import OperationalError as DjangoOperationalError
    except ImportError:  # pragma: no cover
        DjangoOperationalError = ()  # type: ignore[assignment,misc]  # noqa: N806
    if isinstance(exc, DjangoOperationalError) or exc.__class__.__name__ == "OperationalError":
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return f"cannot reach the database ({first}): start PostgreSQL or fix DATABASE_URL"
    try:
        import kombu.exceptions
        import redis

        if isinstance(exc, redis.ConnectionError | kombu.exceptions.OperationalError):
            return f"cannot reach Redis ({exc}): start Redis or fix REDIS_URL"
    except ImportError:  # pragma: no cover
        pass
    return None


def run_friendly(func: Callable[..., Any], *args: Any, exit_code: int = 1, stream: TextIO | None = None) -> Any:
    """Run `func`, turning operator-fixable errors (also when wrapped) into one line on stderr.

    Every entry point goes through here: manage.py, the WSGI module (gunicorn), and the Celery
    app's configuration and worker/beat start-up hooks (which pass the process's real stderr,
    as Celery may have redirected sys.stderr into its logger by then).
    """
    try:
        return func(*args)
    except Exception as exc:
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            message = _describe(cause)
            if message:
                print(f"tenure: error: {message}", file=stream or sys.stderr, flush=True)  # noqa: T201
                raise SystemExit(exit_code) from None
            cause = cause.__cause__ or cause.__context__
        raise
