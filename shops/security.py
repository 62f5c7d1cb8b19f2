"""Pure checks on what Shopify (or someone pretending to be it) sends us.

No database, no network: shop-domain validation, the OAuth query HMAC, the webhook
body HMAC and the session-token claims. Everything compares in constant time and
fails closed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl

# One label of letters, digits and hyphens (not starting with a hyphen), then the
# fixed suffix, and nothing else: no scheme, port, path, user-info or extra labels.
_SHOP_DOMAIN = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com\Z")
OAUTH_MAX_AGE_SECONDS = 24 * 60 * 60
# Shopify's clock and ours differ a little; a request from "the future" beyond this is refused.
OAUTH_FUTURE_SKEW_SECONDS = 5 * 60


def shop_domain_clean(value: str | None) -> str | None:
    """The shop's myshopify domain, lower-cased, or None when it is not exactly one.

    Anchored on both ends and applied to the raw value: "evil.com/x.myshopify.com",
    "acme.myshopify.com:443", "https://acme.myshopify.com", "acme.myshopify.com.evil.com",
    "acme.myshopify.com/", "user@acme.myshopify.com" and whitespace all fail.
    """
    if not value or len(value) > 255:
        return None
    candidate = value.lower()
    return candidate if _SHOP_DOMAIN.match(candidate) else None


def _secrets(current: str, previous: str | None) -> list[bytes]:
    return [s.encode() for s in (current, previous) if s]


def webhook_hmac_valid(body: bytes, header: str | None, *, secret: str, previous_secret: str | None = None) -> bool:
    """Base64 HMAC-SHA256 of the raw body, against the current and (during rotation) previous secret."""
    if not header:
        return False
    try:
        received = base64.b64decode(header.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return False
    ok = False
    for key in _secrets(secret, previous_secret):
        # Both secrets are always tried so timing does not reveal which one matched.
        ok |= hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), received)
    return ok


def oauth_query_message(pairs: Iterable[tuple[str, str]]) -> str:
    """The string Shopify signs for a redirect: every parameter but hmac/signature, sorted.

    Repeated ``name[]`` parameters become one ``name=["a", "b"]`` entry, as Shopify
    encodes them; ``%``, ``&`` and ``=`` inside names and values are escaped so one
    parameter cannot be made to look like two.
    """
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in ("hmac", "signature"):
            continue
        grouped.setdefault(key, []).append(value)
    entries = []
    for key, values in grouped.items():
        if key.endswith("[]"):
            name, text = key[:-2], json.dumps(values)
        else:
            # A plain parameter sent twice is ambiguous; the last value is what parsers keep.
            name, text = key, values[-1]
        name = name.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
        text = text.replace("%", "%25").replace("&", "%26")
        entries.append(f"{name}={text}")
    return "&".join(sorted(entries))


def oauth_query_sign(pairs: Iterable[tuple[str, str]], *, secret: str) -> str:
    return hmac.new(secret.encode(), oauth_query_message(pairs).encode(), hashlib.sha256).hexdigest()


def oauth_query_valid(query_string: str, *, secret: str, previous_secret: str | None = None) -> bool:
    """True when the raw query string carries a correct hex ``hmac``."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    received = [v for k, v in pairs if k == "hmac"]
    if len(received) != 1:
        return False
    message = oauth_query_message(pairs).encode()
    ok = False
    for key in _secrets(secret, previous_secret):
        expected = hmac.new(key, message, hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(expected, received[0].lower())
    return ok


def oauth_timestamp_fresh(value: str | None, *, now: float | None = None) -> bool:
    """Shopify's ``timestamp`` (Unix seconds) is at most 24 h old and not from the future."""
    if not value or not value.isdigit():
        return False
    current = time.time() if now is None else now
    age = current - int(value)
    return -OAUTH_FUTURE_SKEW_SECONDS <= age <= OAUTH_MAX_AGE_SECONDS


def scopes_cover(granted: str | Sequence[str], required: Iterable[str]) -> bool:
    """Whether the granted scopes include every required one (``write_x`` implies ``read_x``)."""
    items = granted.split(",") if isinstance(granted, str) else list(granted)
    have = {s.strip() for s in items if s.strip()}
    have |= {"read_" + s[len("write_"):] for s in have if s.startswith("write_")}
    return set(required) <= have


def shop_from_claims(claims: Mapping[str, object]) -> str | None:
    """The shop a session token is for, when ``dest`` and ``iss`` agree on one valid domain."""
    dest = claims.get("dest")
    iss = claims.get("iss")
    if not isinstance(dest, str) or not isinstance(iss, str):
        return None
    if not dest.startswith("https://") or not iss.startswith("https://"):
        return None
    shop = shop_domain_clean(dest[len("https://"):])
    if shop is None or iss != f"https://{shop}/admin":
        return None
    return shop
