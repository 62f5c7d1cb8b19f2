"""Template filters for the report pages: money, percentages and numbers as merchants read them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()
MISSING = "—"


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


@register.filter(name="money")
def fmt_money(value: Any, currency: str = "") -> str:
    """'NZD 1,234.56' (shop currency code, two decimals); a dash when missing."""
    d = _decimal(value)
    if d is None:
        return MISSING
    text = f"{d.quantize(Decimal('0.01')):,.2f}"
    return f"{currency} {text}" if currency else text


def money_compact(value: Any, currency: str = "") -> str:
    """Short money for chart labels: 950, 12.3k, 4.5M."""
    d = _decimal(value)
    if d is None:
        return "–"
    a = abs(d)
    if a >= 1_000_000:
        text = f"{d / 1_000_000:.1f}M"
    elif a >= 10_000:
        text = f"{d / 1000:.0f}k"
    elif a >= 1000:
        text = f"{d / 1000:.1f}k"
    else:
        text = f"{d:.0f}"
    return f"{currency} {text}" if currency else text


@register.filter(name="pct")
def fmt_pct(value: Any) -> str:
    d = _decimal(value)
    return MISSING if d is None else f"{d:.1f}%"


@register.filter(name="rate_pct")
def fmt_rate_pct(value: Any) -> str:
    """A rate given as a fraction (0.085) as a percentage (8.5%)."""
    d = _decimal(value)
    return MISSING if d is None else f"{(d * 100).normalize():f}%"


@register.filter(name="number")
def fmt_number(value: Any, places: int = 2) -> str:
    d = _decimal(value)
    if d is None:
        return MISSING
    return f"{d:,.{int(places)}f}"


@register.filter(name="get")
def get_item(mapping: Any, key: Any) -> Any:
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None
