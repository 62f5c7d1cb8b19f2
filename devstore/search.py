"""Shopify's search syntax (the ``query:`` argument) turned into SQL over a shop's tables.

https://shopify.dev/docs/api/usage/search-syntax : ``field:value``, comparators ``:>``,
``:>=``, ``:<``, ``:<=``, quoted values (``updated_at:>='2026-01-01T00:00:00Z'``), ``-field``
or ``NOT`` to negate, implicit ``AND``, ``OR`` between groups. Dates without a time are
midnight in the shop's time zone, as in the admin. Unknown fields are ignored and reported
as warnings in ``extensions.search``, like Shopify does, instead of failing the query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

DAY = 86_400


@dataclass(frozen=True)
class Term:
    field: str | None
    op: str  # one of = > >= < <=
    value: str
    negated: bool = False


def search_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch.isspace() or ch in "()":
            if buf:
                tokens.append("".join(buf))
                buf = []
        else:
            buf.append(ch)
    if buf:
        tokens.append("".join(buf))
    return tokens


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def search_parse(text: str | None) -> list[list[Term]]:
    """``a:1 b:2 OR c:3`` -> [[a, b], [c]] (OR of AND-groups)."""
    groups: list[list[Term]] = [[]]
    negate_next = False
    for token in search_tokens(text or ""):
        if token == "OR":  # noqa: S105 - a search keyword
            groups.append([])
            continue
        if token == "AND":  # noqa: S105
            continue
        if token == "NOT":  # noqa: S105
            negate_next = True
            continue
        negated = negate_next
        negate_next = False
        if token.startswith("-") and len(token) > 1:
            negated = not negated
            token = token[1:]
        field: str | None = None
        rest = token
        if ":" in token and token[0] not in "'\"":
            field, rest = token.split(":", 1)
            field = field.lower()
        op = "="
        for candidate in (">=", "<=", ">", "<"):
            if rest.startswith(candidate):
                op, rest = candidate, rest[len(candidate) :]
                break
        groups[-1].append(Term(field=field, op=op, value=_unquote(rest), negated=negated))
    return [g for g in groups if g]


class SearchValueError(ValueError):
    pass


def parse_search_time(value: str, tz: ZoneInfo) -> tuple[int, bool]:
    """-> (epoch seconds, is_date_only). Naive values are in the shop's zone."""
    text = value.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=tz)
        except ValueError as exc:
            raise SearchValueError(value) from exc
        return int(day.timestamp()), True
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise SearchValueError(value) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp()), False


def _int_value(value: str) -> int:
    text = value.strip().lstrip("#")
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1]
    if not text.lstrip("-").isdigit():
        raise SearchValueError(value)
    return int(text)


def _bool_value(value: str) -> int:
    text = value.strip().lower()
    if text in {"true", "1", "yes"}:
        return 1
    if text in {"false", "0", "no"}:
        return 0
    raise SearchValueError(value)


@dataclass
class Compiled:
    sql: str
    params: list[Any]
    warnings: list[dict[str, str]]


FieldCompiler = Callable[[Term, ZoneInfo, int], tuple[str, list[Any]]]


def _compare(column: str, op: str, value: Any) -> tuple[str, list[Any]]:
    sql_op = {"=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[op]
    return f"{column} {sql_op} ?", [value]


def _time_field(column: str) -> FieldCompiler:
    def compile_(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
        ts, date_only = parse_search_time(term.value, tz)
        if term.op == "=" and date_only:
            # A bare date matches the whole local day.
            end = int((datetime.fromtimestamp(ts, tz) + timedelta(days=1)).timestamp())
            return f"({column} >= ? AND {column} < ?)", [ts, end]
        if date_only and term.op in (">", "<="):
            # "after 2026-01-01" means after that local day, not after its first second.
            end = int((datetime.fromtimestamp(ts, tz) + timedelta(days=1)).timestamp())
            return _compare(column, ">=" if term.op == ">" else "<", end)
        return _compare(column, term.op, ts)

    return compile_


def _int_field(column: str) -> FieldCompiler:
    def compile_(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
        return _compare(column, term.op, _int_value(term.value))

    return compile_


def _money_field(column: str) -> FieldCompiler:
    def compile_(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
        try:
            amount = Decimal(term.value.strip())
        except InvalidOperation as exc:
            raise SearchValueError(term.value) from exc
        return _compare(column, term.op, int(amount * scale))

    return compile_


def _bool_field(column: str) -> FieldCompiler:
    def compile_(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
        return f"{column} = ?", [_bool_value(term.value)]

    return compile_


def _text_field(column: str, *, lower: bool = True) -> FieldCompiler:
    def compile_(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
        value = term.value.strip()
        if value.endswith("*"):
            return f"lower({column}) LIKE ?", [value[:-1].lower() + "%"]
        return (f"lower({column}) = ?", [value.lower()]) if lower else (f"{column} = ?", [value])

    return compile_


def _tag_field(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
    value = term.value.strip().lower()
    return "(',' || replace(lower(tags), ', ', ',') || ',') LIKE ?", [f"%,{value},%"]


def _order_status(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
    value = term.value.strip().lower()
    if value in {"open", "not_closed"}:
        return "cancelled_at IS NULL", []
    if value == "cancelled":
        return "cancelled_at IS NOT NULL", []
    if value == "closed":
        # devstore orders are never archived.
        return "0", []
    if value == "any":
        return "1", []
    raise SearchValueError(term.value)


def _order_name(term: Term, tz: ZoneInfo, scale: int) -> tuple[str, list[Any]]:
    return _compare("number", term.op, _int_value(term.value))


ORDER_FIELDS: dict[str, FieldCompiler] = {
    "id": _int_field("id"),
    "created_at": _time_field("created_at"),
    "updated_at": _time_field("updated_at"),
    "processed_at": _time_field("processed_at"),
    "cancelled_at": _time_field("cancelled_at"),
    "test": _bool_field("test"),
    "status": _order_status,
    "financial_status": _text_field("financial_status"),
    "customer_id": _int_field("customer_id"),
    "name": _order_name,
    "tag": _tag_field,
    "email": _text_field("email"),
    "currency": _text_field("presentment_currency"),
}

CUSTOMER_FIELDS: dict[str, FieldCompiler] = {
    "id": _int_field("id"),
    "created_at": _time_field("created_at"),
    "updated_at": _time_field("updated_at"),
    "tag": _tag_field,
    "orders_count": _int_field("number_of_orders"),
    "number_of_orders": _int_field("number_of_orders"),
    "amount_spent": _money_field("amount_spent"),
    "total_spent": _money_field("amount_spent"),
    "email": _text_field("email"),
    "country": _text_field("country_code"),
}

BULK_FIELDS: dict[str, FieldCompiler] = {
    "id": _int_field("id"),
    "created_at": _time_field("created_at"),
    "status": _text_field("status"),
    "operation_type": _text_field("type"),
}


def search_compile(text: str | None, fields: dict[str, FieldCompiler], *, tz: ZoneInfo, scale: int = 100) -> Compiled:
    """The query string -> a WHERE fragment (``1`` when empty), its parameters and warnings."""
    warnings: list[dict[str, str]] = []
    or_parts: list[str] = []
    params: list[Any] = []
    for group in search_parse(text):
        and_parts: list[str] = []
        for term in group:
            if term.field is None:
                # Free text: Shopify searches default fields; devstore matches names and emails.
                compiled = ("(lower(coalesce(email, '')) LIKE ?)", [f"%{term.value.lower()}%"])
            elif term.field not in fields:
                warnings.append({"field": term.field, "message": "Invalid search field for this query."})
                continue
            else:
                try:
                    compiled = fields[term.field](term, tz, scale)
                except SearchValueError:
                    warnings.append({"field": term.field, "message": f"Invalid search value '{term.value}'."})
                    continue
            sql, p = compiled
            and_parts.append(f"NOT ({sql})" if term.negated else sql)
            params.extend(p)
        or_parts.append("(" + " AND ".join(and_parts) + ")" if and_parts else "1")
    if not or_parts:
        return Compiled("1", [], warnings)
    return Compiled("(" + " OR ".join(or_parts) + ")", params, warnings)
