"""Logs are JSON, carry shop and sync-run ids, and never a credential."""

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.test import Client

from config.logging import ContextFilter, JsonFormatter, SecretsFilter, log_context, secrets_filter_install
from tests.shops.conftest import session_token


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretsFilter())
    logger = logging.getLogger("tenure.test.logging")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_context_ids_are_on_every_record_inside_the_block() -> None:
    logger, stream = capture()
    with log_context(shop="acme.myshopify.com", sync_run=42):
        logger.info("backfill started")
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "backfill started"
    assert first["shop"] == "acme.myshopify.com"
    assert first["sync_run"] == 42
    assert first["level"] == "INFO"
    assert "shop" not in second


def test_credential_looking_extras_are_redacted() -> None:
    logger, stream = capture()
    logger.info("token refreshed", extra={"access_token": "shpat_secret", "refresh_token": "shprt_x", "shop_id": 7})
    record = json.loads(stream.getvalue())
    assert record["access_token"] == "[redacted]"
    assert record["refresh_token"] == "[redacted]"
    assert record["shop_id"] == 7
    assert "shpat_secret" not in stream.getvalue()


def test_lines_logged_inside_a_celery_task_carry_its_id_and_name() -> None:
    from config.celery import app

    logger, stream = capture()

    @app.task(name="tests.config.log_inside_task")
    def log_inside_task() -> None:
        logger.info("inside the task")

    result = log_inside_task.apply()  # Celery's own tracer: a real request with a task id
    logger.info("after the task")
    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["task_id"] == result.id
    assert inside["task"] == "tests.config.log_inside_task"
    assert "task_id" not in after


@contextmanager
def console_output() -> Iterator[io.StringIO]:
    """What the handler LOGGING configures on the root logger writes, filters and formatter as set."""
    handler = next(h for h in logging.getLogger().handlers
                   if isinstance(h, logging.StreamHandler) and isinstance(h.formatter, JsonFormatter))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


@pytest.mark.django_db
def test_a_4xx_on_an_embedded_page_logs_no_session_token(client: Client) -> None:
    token = session_token("acme.myshopify.com")
    with console_output() as out:
        # The token names acme, the shop parameter bravo: 401, which django.request logs as a warning.
        response = client.get("/app/overview", {"shop": "bravo.myshopify.com", "id_token": token,
                                                "hmac": "f00dfeed", "session": "s3ss10n"})
    assert response.status_code == 401
    (line,) = [json.loads(row) for row in out.getvalue().splitlines() if '"django.request"' in row]
    assert line["message"] == "Unauthorized: /app/overview"
    assert line["status_code"] == 401
    # Django passes the request along; the formatter renders it with its full query string.
    assert "id_token=[redacted]" in line["request"]
    assert "shop=bravo.myshopify.com" in line["request"]
    for secret in (token, token.split(".")[1], "f00dfeed", "s3ss10n"):
        assert secret not in out.getvalue()


def test_an_exception_message_with_a_url_is_scrubbed() -> None:
    logger = logging.getLogger("tenure.test.exception")
    url = "https://acme.myshopify.com/admin/oauth?code=c0de1&hmac=abc123&id_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.sig"
    with console_output() as out:
        try:
            raise ValueError(f"GET {url} failed")
        except ValueError:
            logger.exception("Shopify call failed for %s", url)
    record = json.loads(out.getvalue())
    assert record["message"] == ("Shopify call failed for https://acme.myshopify.com/admin/oauth?code=[redacted]"
                                 "&hmac=[redacted]&id_token=[redacted]")
    assert ("ValueError: GET https://acme.myshopify.com/admin/oauth?code=[redacted]&hmac=[redacted]"
            in record["exc_info"])
    for secret in ("c0de1", "abc123", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in out.getvalue()


def test_headers_with_credentials_are_scrubbed_in_messages_and_extras() -> None:
    logger = logging.getLogger("tenure.test.headers")
    headers = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.sig",
               "X-Shopify-Access-Token": "shpat_abc123", "Content-Type": "application/json"}
    with console_output() as out:
        logger.warning("request headers: %s", headers, extra={"headers": headers, "status_code": 429})
    record = json.loads(out.getvalue())
    assert record["message"] == ("request headers: {'Authorization': '[redacted]', 'X-Shopify-Access-Token': "
                                 "'[redacted]', 'Content-Type': 'application/json'}")
    assert record["headers"] == {"Authorization": "[redacted]", "X-Shopify-Access-Token": "[redacted]",
                                 "Content-Type": "application/json"}
    assert record["status_code"] == 429
    assert "shpat_abc123" not in out.getvalue()
    assert "eyJ" not in out.getvalue()


def test_handlers_installed_outside_logging_settings_get_the_filter() -> None:
    """Celery replaces the root's handlers with its own; config.celery installs the filter on them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tenure.test.celery_like")
    logger.handlers = [handler]
    logger.propagate = False
    secrets_filter_install(logger)
    secrets_filter_install(logger)  # once is enough: no second copy
    logging.getLogger("tenure.test.celery_like.child").warning(
        "token exchange failed: /admin/oauth/access_token?client_id=k&code=c0de1 (%s)", "shpua_9f8e")
    assert stream.getvalue() == ("token exchange failed: /admin/oauth/access_token?client_id=k&code=[redacted] "
                                 "([redacted])\n")
    assert len(handler.filters) == 1
