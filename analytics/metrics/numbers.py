"""Exact arithmetic for the last step: SQL sums exactly, Python divides as fractions, rounds once."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

# ISO 4217 minor units that are not 2; every other currency shows cents.
MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
RATE_PLACES = 2  # percentages
RATIO_PLACES = 4  # purchase frequency, orders per customer, LTV:CAC
YEARS_PLACES = 2  # lifespan


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), 2)


def round_half_up(value: Fraction, places: int) -> Decimal:
    scale = 10**places
    scaled = value * scale
    sign = -1 if scaled < 0 else 1
    n = (abs(scaled.numerator) * 2 + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(sign * n).scaleb(-places)


def frac(value: Decimal | int | Fraction) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


def ratio(num: Decimal | int | Fraction, den: Decimal | int | Fraction) -> Fraction | None:
    d = frac(den)
    return None if d == 0 else frac(num) / d


def money(value: Fraction | Decimal | int | None, currency: str) -> str | None:
    if value is None:
        return None
    return str(round_half_up(frac(value), minor_units(currency)))


def pct(value: Fraction | None) -> float | None:
    return None if value is None else float(round_half_up(value * 100, RATE_PLACES))


def num(value: Fraction | None, places: int = RATIO_PLACES) -> float | None:
    return None if value is None else float(round_half_up(value, places))


_QUANTUM = {places: Decimal(1).scaleb(-places) for places in (0, 2, 3)}


def decimal_money(value: Decimal | None, currency: str) -> str | None:
    """``money`` for a stored Decimal without going through a Fraction (faster, for per-customer
    columns): the same half-up rounding to the currency's minor units, "0.00" never "-0.00"."""
    if value is None:
        return None
    rounded = value.quantize(_QUANTUM[minor_units(currency)], rounding=ROUND_HALF_UP)
    return str(rounded.copy_abs() if rounded.is_zero() else rounded)
