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
