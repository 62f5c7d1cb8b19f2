"""Compare a payload with an example from Shopify's docs: the keys at each level and each value's kind.

``shape_diff(doc, got)`` walks both together and returns every difference as a readable line
(an empty list means the shapes agree). A value's kind is its JSON type (object, array, string,
number, boolean, null), and for strings the format the docs' value shows: a GID of a given type,
a timestamp (fraction digits, ``Z`` or an offset), a decimal with so many fraction digits, digits
only, a UUID, a URL, or plain text. So ``"89.99"`` and ``"45.00"`` agree, ``"89.99"`` and ``89.99``
do not, nor ``"gid://shopify/Order/1"`` and ``1``, nor ``"...-05:00"`` and ``"...Z"``. Plain text
in the docs also matches digits (a postcode or a phone number may be all digits); the reverse not.

What an example cannot say is left open: a ``null`` in the docs matches any scalar (the example
does not show the type), and an empty list matches any list unless ``templates`` gives the item
shape from another example. A ``null`` from devstore where the docs show a value is a difference
unless the key is in ``nullable`` (personal data withheld, a guest order's customer, ...).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

GID = re.compile(r"^gid://shopify/([A-Za-z]+)/[^/\s]+$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
DECIMAL = re.compile(r"^-?\d+\.(\d+)$")
DIGITS = re.compile(r"^\d+$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
URL = re.compile(r"^https?://\S+$")


def string_kind(value: str) -> str:
    """The format of a string as the docs' examples use them (see the module docstring)."""
    if m := GID.match(value):
        return f"gid:{m.group(1)}"
    if m := TIMESTAMP.match(value):
        zone = "Z" if m.group(2) == "Z" else "offset"
        return f"timestamp.{len(m.group(1) or '')}{zone}"
    if UUID.match(value):
        return "uuid"
    if m := DECIMAL.match(value):
        return f"decimal.{len(m.group(1))}"
    if DIGITS.match(value):
        return "digits"
    if URL.match(value):
        return "url"
    return "text"


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return f"string({string_kind(value)})"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _template_key(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def shape_diff(
    doc: Any,
    got: Any,
    *,
    path: str = "$",
    exact: bool = True,
    nullable: Collection[str] = (),
    extra: Collection[str] = (),
    templates: Mapping[str, Any] | None = None,
    whole_currencies: Collection[str] = (),
) -> list[str]:
    """Differences between `got` and the docs' example `doc`.

    exact: every key of the example must be there too (False: `got` may omit keys, for the parts
    devstore serves only in part); keys the example lacks are always differences, except the paths
    in `extra` (``$.tags``), which must then be present. nullable: key names whose value may be
    null. templates: item shapes for arrays by path (``$.refunds[]``), where the example's is empty.
    whole_currencies: currency codes whose ``amount`` next to ``currency_code`` is whole digits
    (the docs' examples are all in USD, so they cannot show one).
    """
    templates = templates or {}
    out: list[str] = []
    if isinstance(doc, Mapping):
        if not isinstance(got, Mapping):
            if got is None and path.rsplit(".", 1)[-1] in nullable:
                return out
            return [f"{path}: docs show an object, got {kind(got)}"]
        for key in doc:
            if key not in got and exact:
                out.append(f"{path}.{key}: in the docs' example, missing")
        for key in got:
            sub = f"{path}.{key}"
            if key not in doc:
                if _template_key(sub) not in extra:
                    out.append(f"{sub}: not in the docs' example ({kind(got[key])})")
                continue
            if key == "amount" and got.get("currency_code") in whole_currencies:
                if kind(got[key]) != "string(digits)":
                    out.append(f"{sub}: {got['currency_code']} amounts are whole, got {kind(got[key])}")
                continue
            out.extend(shape_diff(doc[key], got[key], path=sub, exact=exact, nullable=nullable,
                                  extra=extra, templates=templates, whole_currencies=whole_currencies))
        for allowed in extra:
            parent, _, key = allowed.rpartition(".")
            if parent == _template_key(path) and key not in got:
                out.append(f"{allowed}: the known deviation is gone; drop it from `extra`")
        return out
    if isinstance(doc, list):
        if not isinstance(got, list):
            return [f"{path}: docs show an array, got {kind(got)}"]
        item_path = f"{_template_key(path)}[]"
        template = templates.get(item_path, doc[0] if doc else None)
        if template is None:
            return out
        for i, item in enumerate(got):
            out.extend(shape_diff(template, item, path=f"{path}[{i}]", exact=exact, nullable=nullable,
                                  extra=extra, templates=templates, whole_currencies=whole_currencies))
        return out
    if doc is None:
        if isinstance(got, Mapping | list):
            return [f"{path}: docs show null (type unknown), got {kind(got)}"]
        return out
    if got is None:
        if path.rsplit(".", 1)[-1] in nullable:
            return out
        return [f"{path}: docs show {kind(doc)}, got null"]
    if kind(doc) == "string(text)" and kind(got) == "string(digits)":
        return out  # free text may be all digits (a postcode, a phone number)
    if kind(doc) != kind(got):
        out.append(f"{path}: docs show {kind(doc)} ({doc!r}), got {kind(got)} ({got!r})")
    return out
