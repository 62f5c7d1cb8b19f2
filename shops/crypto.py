"""Encryption at rest for Shopify tokens (Fernet, key from TOKEN_ENCRYPTION_KEY)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from config.errors import StartupError


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError as exc:
        raise StartupError("TOKEN_ENCRYPTION_KEY is not a valid Fernet key: generate one with "
                           "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
                           ) from exc


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage; empty stays empty."""
    if not plaintext:
        return ""
    return _fernet(settings.TOKEN_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt a stored secret; raises ValueError when the key does not match."""
    if not ciphertext:
        return ""
    try:
        return _fernet(settings.TOKEN_ENCRYPTION_KEY).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY") from exc
