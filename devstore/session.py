"""Session tokens (``id_token``) as the Shopify admin mints them for an embedded app.

An HS256 JWT signed with the app's client secret, one minute of life. The claims follow
https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens (the
"Anatomy of a session token" payload):

    {"iss": "https://<shop>/admin", "dest": "https://<shop>", "aud": "<client id>",
     "sub": "<user id>", "exp": ..., "nbf": ..., "iat": ..., "jti": "<uuid>", "sid": "<session id>",
     "sig": "<signature>"}
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

# Test and dev secrets are short; Shopify's real ones are long enough. Not devstore's concern.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

SESSION_TOKEN_TTL_S = 60
# Shopify tolerates a little clock skew when it checks the tokens it issued.
LEEWAY_S = 5
# The staff member "using" the admin: devstore has one merchant user per shop.
DEFAULT_USER_ID = 42_424_242


@dataclass(frozen=True)
class IdTokenError(Exception):
    reason: str  # "malformed", "signature", "expired", "not_yet_valid", "audience", "shop"

    def __str__(self) -> str:
        return self.reason


def user_id_for(shop_domain: str) -> int:
    """A stable merchant user id per shop (so `sub` is the same across reloads)."""
    return DEFAULT_USER_ID + int(hashlib.sha256(shop_domain.encode()).hexdigest()[:6], 16) % 1000


def id_token_mint(
    *, shop_domain: str, api_key: str, api_secret: str, now: float | None = None,
    ttl_s: int = SESSION_TOKEN_TTL_S, user_id: int | None = None, session_id: str | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": f"https://{shop_domain}/admin",
        "dest": f"https://{shop_domain}",
        "aud": api_key,
        "sub": str(user_id if user_id is not None else user_id_for(shop_domain)),
        "exp": issued + ttl_s,
        "nbf": issued,
        "iat": issued,
        "jti": str(uuid.uuid4()),
        "sid": session_id or secrets.token_hex(32),  # 64 hex digits, as in the docs' example
        "sig": secrets.token_hex(32),
    }
    return jwt.encode(claims, api_secret, algorithm="HS256")


def id_token_verify(token: str, *, api_key: str, api_secret: str, now: float | None = None) -> dict[str, Any]:
    """The claims of a token devstore (or Shopify) issued for this app; raises IdTokenError."""
    current = time.time() if now is None else now
    try:
        claims: dict[str, Any] = jwt.decode(
            token, api_secret, algorithms=["HS256"],
            options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise IdTokenError("signature") from exc
    except jwt.PyJWTError as exc:
        raise IdTokenError("malformed") from exc
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int) or current > exp + LEEWAY_S:
        raise IdTokenError("expired")
    if isinstance(nbf, int) and current + LEEWAY_S < nbf:
        raise IdTokenError("not_yet_valid")
    if claims.get("aud") != api_key:
        raise IdTokenError("audience")
    dest, iss = claims.get("dest"), claims.get("iss")
    if not isinstance(dest, str) or not dest.startswith("https://") or iss != f"{dest}/admin":
        raise IdTokenError("shop")
    return claims


def shop_of_claims(claims: dict[str, Any]) -> str:
    return str(claims["dest"]).removeprefix("https://")
