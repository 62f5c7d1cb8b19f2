import json
import time

import pytest
from django.test import Client

from config import health


@pytest.mark.django_db
def test_healthz_ok_when_database_and_redis_answer(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_healthz_503_when_redis_is_down(client: Client, settings) -> None:
    # A port nothing listens on: a real connection failure, not a mock.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["redis"].startswith("error: ")


@pytest.mark.django_db
def test_database_status_reports_unreachable_server() -> None:
    import psycopg
    from django.db.backends.postgresql.base import DatabaseWrapper

    wrapper = DatabaseWrapper({
        "ENGINE": "django.db.backends.postgresql", "NAME": "x", "USER": "postgres", "PASSWORD": "",
        "HOST": "127.0.0.1", "PORT": "1", "OPTIONS": {"connect_timeout": 1}, "TIME_ZONE": None,
        "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False,
    })
    assert psycopg  # the driver is the real one
    assert health.database_status(connection=wrapper).startswith("error: ")


@pytest.mark.django_db(transaction=True)
def test_healthz_503_when_the_database_is_down(client: Client) -> None:
    from django.db import connection

    saved = dict(connection.settings_dict)
    connection.close()
    # Point the app's own connection at a port nothing listens on: a real refused connection.
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": "1"})
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "error: OperationalError"
    assert body["redis"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_request_after_the_server_dropped_the_connection_gets_200() -> None:
    """What a PostgreSQL restart does to the connections web workers keep open (CONN_MAX_AGE 60)."""
    import psycopg
    from django.db import connection

    from tests.conftest import test_database_url
    from tests.shops.conftest import WsgiClient

    # Through the callable gunicorn serves, with Django's request signals (Django's test client
    # turns off the per-request connection check this is about).
    client = WsgiClient(recycle_connections=True)
    saved = dict(connection.settings_dict)
    connection.close()
    # The tests close connections after each request; keep them as local and production settings do.
    connection.settings_dict["CONN_MAX_AGE"] = 60
    try:
        assert client.get("/healthz").status_code == 200
        backend = connection.connection.info.backend_pid  # kept open for the next request
        with psycopg.connect(test_database_url(), autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone() == (True,)
            for _ in range(100):  # termination is asynchronous: wait until the backend is gone
                if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone():
                    break
                time.sleep(0.05)
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert json.loads(response.content) == {"status": "ok", "database": "ok", "redis": "ok"}
    assert response.status_code == 200
