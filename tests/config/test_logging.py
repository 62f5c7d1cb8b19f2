"""Logs are JSON, carry shop and sync-run ids, and never a credential."""

import io
import json
import logging

from config.logging import ContextFilter, JsonFormatter, log_context


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
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
