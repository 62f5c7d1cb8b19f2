"""The guard over every Admin GraphQL document the app sends: would a live store accept it?

Each document is checked against Shopify's real Admin schema (validation as graphql-ruby words
it), each bulk query against Shopify's bulk rules, and each against the 1,000-point cap on the
requested cost, with the variables it was sent with. The checks are devstore's reference
modules (``devstore.conformance``, ``devstore.bulk_rules``), run here on the documents
themselves: what devstore answered the app does not enter into it.

The documents come from devstore's journal (``devstore.journal``), which the test session turns
on: every request the app's client sent during the run, from the test process and from every
worker or devstore subprocess, told apart from the tests' own raw requests by the client's
User-Agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from sync.client import MAX_QUERY_COST, USER_AGENT


def refused_http() -> Any:
    """An HTTP client for requests a test sends to see Shopify refuse them: its own User-Agent keeps
    them out of the session guard, which checks what the app sends."""
    from sync.client import shopify_http_client

    return shopify_http_client(headers={"User-Agent": "Tenure tests: a request Shopify must refuse"})


def document_problems(query: str, variables: Mapping[str, Any] | None = None,
                      operation_name: str | None = None) -> list[str]:
    """What a live store would refuse in one request: [] when it would run it."""
    from devstore.bulk_rules import bulk_query_errors
    from devstore.conformance import requested_cost, schema_errors

    problems = [f"schema: {e.get('message')} ({(e.get('extensions') or {}).get('code')})"
                for e in schema_errors(query)]
    if problems:
        return problems
    cost = requested_cost(query, dict(variables or {}), operation_name)
    if cost > MAX_QUERY_COST:
        problems.append(f"cost: requests {cost} points, over Shopify's {MAX_QUERY_COST}-point cap")
    if "bulkOperationRunQuery" in query:
        inner = (variables or {}).get("query")
        if not isinstance(inner, str):
            problems.append("bulk: the bulk query is not passed as the $query variable (the guard cannot read it)")
        else:
            problems += [f"bulk: {e.get('message')} ({e.get('code')})" for e in bulk_query_errors(inner)]
    return problems


def journal_requests(path: Path) -> Iterable[dict[str, Any]]:
    """The app's requests in a devstore journal (other User-Agents are the tests' own raw requests)."""
    if not path.exists():
        return
    with path.open("rb") as lines:
        for line in lines:
            entry = orjson.loads(line)
            if entry.get("ua") != USER_AGENT:
                continue
            try:
                body = orjson.loads(entry["body"])
            except orjson.JSONDecodeError:
                continue
            if isinstance(body, dict) and isinstance(body.get("query"), str):
                yield body


def journal_problems(path: Path) -> tuple[int, dict[str, list[str]]]:
    """(distinct requests checked, {document: problems}) for every app request in the journal."""
    seen: set[bytes] = set()
    found: dict[str, list[str]] = {}
    for body in journal_requests(path):
        key = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        if key in seen:
            continue
        seen.add(key)
        problems = document_problems(body["query"], body.get("variables"), body.get("operationName"))
        if problems:
            found.setdefault(" ".join(body["query"].split())[:300], problems)
    return len(seen), found
