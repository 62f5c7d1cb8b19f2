"""Compare a devstore response with a live-store recording: the replay tests' one comparator.

``differences(expected, actual)`` compares two responses (``{"status"?, "body"?}`` or a bare
GraphQL body) on what a client can rely on, and returns human-readable differences (empty when
they agree):

- the HTTP status, when both sides give one;
- the errors, in order: ``message``, ``extensions.code``, ``path`` and ``field`` (userErrors
  style) compared exactly; ``locations`` ignored (they depend on the document's layout);
- ``data``: the *shape* only: the same keys, the same JSON kinds, null where null; lists are
  compared element by element against the recording's first element (lengths may differ,
  since devstore's shop is generated) unless ``exact_lists`` names the path;
- ``extensions.cost``: the same keys and kinds; ``requestedQueryCost`` equal (it depends on the
  document only), ``actualQueryCost`` and ``throttleStatus`` values only when ``exact_cost``.

``load_capture(relative)`` reads a recording under ``devstore/reference/captures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

CAPTURES = Path(__file__).resolve().parents[2] / "devstore" / "reference" / "captures"


def load_capture(relative: str) -> dict[str, Any]:
    """One recording, e.g. ``load_capture("2025-01/customers/customers-count.json")``."""
    data: dict[str, Any] = orjson.loads((CAPTURES / relative).read_bytes())
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _split(response: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    if "body" in response and isinstance(response["body"], dict):
        return response.get("status"), response["body"]
    return None, response


def _shape(expected: Any, actual: Any, path: str, exact_lists: frozenset[str], out: list[str]) -> None:
    ek, ak = _kind(expected), _kind(actual)
    if ek != ak:
        out.append(f"{path or 'data'}: recorded {ek}, devstore {ak}")
        return
    if ek == "object":
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        if missing:
            out.append(f"{path or 'data'}: keys missing from devstore: {', '.join(missing)}")
        if extra:
            out.append(f"{path or 'data'}: keys devstore adds: {', '.join(extra)}")
        for key in expected:
            if key in actual:
                _shape(expected[key], actual[key], f"{path}.{key}" if path else key, exact_lists, out)
    elif ek == "list":
        if path in exact_lists and len(expected) != len(actual):
            out.append(f"{path}: recorded {len(expected)} items, devstore {len(actual)}")
        if expected:
            for i, item in enumerate(actual):
                _shape(expected[min(i, len(expected) - 1)], item, f"{path}[{i}]", exact_lists, out)


def _error_key(error: dict[str, Any]) -> dict[str, Any]:
    ext = error.get("extensions") or {}
    return {
        "message": error.get("message"),
        "code": ext.get("code") if isinstance(ext, dict) else None,
        "path": error.get("path"),
        "field": error.get("field"),
    }


def differences(
    expected: dict[str, Any],
    actual: dict[str, Any],
    *,
    exact_cost: bool = False,
    exact_lists: frozenset[str] = frozenset(),
) -> list[str]:
    """What differs between a recorded response and devstore's; an empty list when they agree."""
    out: list[str] = []
    e_status, e_body = _split(expected)
    a_status, a_body = _split(actual)
    if e_status is not None and a_status is not None and e_status != a_status:
        out.append(f"status: recorded {e_status}, devstore {a_status}")

    e_errors = [_error_key(e) for e in e_body.get("errors") or []]
    a_errors = [_error_key(e) for e in a_body.get("errors") or []]
    if len(e_errors) != len(a_errors):
        out.append(f"errors: recorded {len(e_errors)}, devstore {len(a_errors)}: {a_errors}")
    for i, (e, a) in enumerate(zip(e_errors, a_errors, strict=False)):
        for key in ("message", "code", "path", "field"):
            if e[key] != a[key]:
                out.append(f"errors[{i}].{key}: recorded {e[key]!r}, devstore {a[key]!r}")

    if ("data" in e_body) != ("data" in a_body):
        out.append(f"data: recorded {'present' if 'data' in e_body else 'absent'}, devstore "
                   f"{'present' if 'data' in a_body else 'absent'}")
    elif "data" in e_body:
        _shape(e_body["data"], a_body["data"], "", exact_lists, out)

    e_cost = (e_body.get("extensions") or {}).get("cost")
    a_cost = (a_body.get("extensions") or {}).get("cost")
    if e_cost is not None:
        if a_cost is None:
            out.append("extensions.cost: missing from devstore")
        else:
            _shape(e_cost, a_cost, "extensions.cost", frozenset(), out)
            if e_cost.get("requestedQueryCost") != a_cost.get("requestedQueryCost"):
                out.append(f"extensions.cost.requestedQueryCost: recorded {e_cost.get('requestedQueryCost')}, "
                           f"devstore {a_cost.get('requestedQueryCost')}")
            if exact_cost:
                for key in ("actualQueryCost", "throttleStatus"):
                    if e_cost.get(key) != a_cost.get(key):
                        out.append(f"extensions.cost.{key}: recorded {e_cost.get(key)!r}, devstore {a_cost.get(key)!r}")
    return out
