"""Production refuses secrets anyone can read: the repository's own dev and test values, a short
Django key, a Fernet key that cannot encrypt. Each refusal is one line naming the variable."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

from config.errors import StartupError

BASE_DIR = Path(__file__).resolve().parent.parent
# Every value written in these files is public: the dev and demo defaults, the test settings, the
# placeholders operators copy. Read as text, never imported (local settings start servers).
PUBLISHED_IN = ("config/settings/local.py", "config/settings/test.py", ".env.example")
SECRETS = ("DJANGO_SECRET_KEY", "SHOPIFY_API_SECRET", "SHOPIFY_API_SECRET_PREVIOUS", "TOKEN_ENCRYPTION_KEY")
# Django's own guidance (check --deploy, security.W009): at least 50 characters.
SECRET_KEY_MIN_LENGTH = 50
_FERNET_HOWTO = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


def published_values(*, base_dir: Path = BASE_DIR) -> frozenset[str]:
    """Every string literal of the settings modules in PUBLISHED_IN and every value of .env.example."""
    values: set[str] = set()
    for name in PUBLISHED_IN:
        path = base_dir / name
        if not path.exists():
            continue
        text = path.read_text()
        if path.suffix == ".py":
            values.update(node.value for node in ast.walk(ast.parse(text))
                          if isinstance(node, ast.Constant) and isinstance(node.value, str))
        else:
            values.update(line.split("=", 1)[1].split("#", 1)[0].strip()
                          for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return frozenset(value for value in values if value)


def production_secrets_check(environ: Mapping[str, str]) -> None:
    """Raise StartupError for the first weak secret in `environ` (the process environment)."""
    published = published_values()
    for name in SECRETS:
        if environ.get(name) and environ[name] in published:
            raise StartupError(f"{name} is a value published in this repository (dev, test or example "
                               "settings): set a secret of your own")
    secret_key = environ.get("DJANGO_SECRET_KEY") or ""
    if len(secret_key) < SECRET_KEY_MIN_LENGTH:
        raise StartupError(f"DJANGO_SECRET_KEY is {len(secret_key)} characters long: set a random one of at "
                           f"least {SECRET_KEY_MIN_LENGTH}")
    from cryptography.fernet import Fernet

    try:
        Fernet(environ.get("TOKEN_ENCRYPTION_KEY", "").encode())
    except ValueError:
        raise StartupError(f"TOKEN_ENCRYPTION_KEY is not a valid Fernet key: generate one with `{_FERNET_HOWTO}`"
                           ) from None
