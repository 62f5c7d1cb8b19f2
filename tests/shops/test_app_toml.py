"""shopify.app.toml, the template an operator deploys with, points at routes the app serves."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlparse

from django.urls import resolve

from shops import views, webhooks

TOML = Path(__file__).resolve().parents[2] / "shopify.app.toml"


def _config() -> dict:
    return tomllib.loads(TOML.read_text())


def test_application_url_is_the_app_home() -> None:
    # APP_URL is set to application_url (README): the install's callback is built from it.
    path = urlparse(_config()["application_url"]).path or "/"
    assert resolve(path).func is views.app_home


def test_redirect_urls_are_the_oauth_callback() -> None:
    config = _config()
    base = urlparse(config["application_url"])
    for url in config["auth"]["redirect_urls"]:
        parsed = urlparse(url)
        assert parsed.netloc == base.netloc
        assert resolve(parsed.path).func is views.auth_callback


def test_every_webhook_subscription_goes_to_the_receiver() -> None:
    subscriptions = _config()["webhooks"]["subscriptions"]
    assert subscriptions
    for sub in subscriptions:
        assert resolve(sub["uri"]).func is webhooks.webhook_receive
