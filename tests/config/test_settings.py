"""Production settings refuse to start without secrets, naming the missing one in one line."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
# Secrets of this run only: a value written here would be published, and production refuses those.
FULL = {
    "DJANGO_SECRET_KEY": Fernet.generate_key().decode() * 2,
    "SHOPIFY_API_KEY": "key",
    "SHOPIFY_API_SECRET": Fernet.generate_key().decode(),
    # `check` connects to neither, so these need not exist (the entry-point tests use real ones).
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "APP_URL": "https://tenure.example.com",
    "ALLOWED_HOSTS": "tenure.example.com",
}
# Written out here, not only read from the module, so that dropping one there fails a test here.
REQUIRED = ["DJANGO_SECRET_KEY", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "DATABASE_URL", "REDIS_URL",
            "TOKEN_ENCRYPTION_KEY", "APP_URL", "ALLOWED_HOSTS"]


def module_required() -> list[str]:
    """`REQUIRED` of config/settings/production.py, read without importing it (importing raises
    when the environment lacks a setting)."""
    tree = ast.parse((ROOT / "config" / "settings" / "production.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "REQUIRED" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError("config/settings/production.py has no REQUIRED list")


ALL_REQUIRED = list(dict.fromkeys(REQUIRED + module_required()))


def run_check(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # None of the required settings is inherited: a variable a test removes must really be unset.
    env = {k: v for k, v in os.environ.items() if k not in FULL and k not in ALL_REQUIRED}
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    return subprocess.run([sys.executable, "manage.py", "check", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_required_list_matches_production_settings() -> None:
    assert module_required() == REQUIRED
    assert set(FULL) == set(REQUIRED)


@pytest.mark.parametrize("missing", ALL_REQUIRED)
def test_production_names_the_missing_setting_in_one_line(missing: str) -> None:
    env = dict(FULL)
    env.pop(missing, None)
    result = run_check(env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"missing required setting {missing}:" in lines[0]
    assert "Traceback" not in result.stderr


def test_production_starts_with_every_setting() -> None:
    result = run_check(FULL)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("name", "value", "says"), [
    # The repository's own values, written out (not read from the settings) so the test cannot
    # agree with a broken reader: dev/demo defaults, test settings, .env.example placeholders.
    ("TOKEN_ENCRYPTION_KEY", "o9t1xQhcUgqIzYjpxYZorffFHNicmlsd0itNRsalSZ4=", "is a value published in this repository"),
    ("TOKEN_ENCRYPTION_KEY", "lg8sqq89PcDx46fCsOmPM1FWprUit3ZDB-QtuOdJp7U=", "is a value published in this repository"),
    ("SHOPIFY_API_SECRET", "tenure-dev-api-secret-not-for-production", "is a value published in this repository"),
    ("SHOPIFY_API_SECRET", "tenure-test-api-secret-not-for-production", "is a value published in this repository"),
    ("SHOPIFY_API_SECRET", "your-app-client-secret", "is a value published in this repository"),
    ("SHOPIFY_API_SECRET_PREVIOUS", "tenure-test-api-secret-old-not-for-production",
     "is a value published in this repository"),
    ("DJANGO_SECRET_KEY", "local-dev-only-not-secret", "is a value published in this repository"),
    ("DJANGO_SECRET_KEY", "x", "is 1 characters long: set a random one of at least 50"),
    ("DJANGO_SECRET_KEY", "k" * 49, "is 49 characters long"),
    ("TOKEN_ENCRYPTION_KEY", "not-a-fernet-key", "is not a valid Fernet key"),
    ("TOKEN_ENCRYPTION_KEY", FULL["TOKEN_ENCRYPTION_KEY"][:-4], "is not a valid Fernet key"),
])
def test_production_refuses_a_weak_secret_in_one_line_naming_it(name: str, value: str, says: str) -> None:
    result = run_check({**FULL, name: value})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tenure: error: {name} {says}"), lines[0]
    assert value not in lines[0]


def test_deploy_check_has_no_clickjacking_warning() -> None:
    result = run_check(FULL, "--deploy")
    assert result.returncode == 0, result.stderr
    assert "security.W002" not in result.stdout + result.stderr
