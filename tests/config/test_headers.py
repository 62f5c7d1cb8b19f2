"""Pages that are not embedded cannot be framed: X-Frame-Options DENY and CSP frame-ancestors 'none'."""

from __future__ import annotations

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from config.urls import urlpatterns as app_urlpatterns


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


# The app's routes plus one that fails, for the 500 page (pytest.mark.urls points here).
urlpatterns = [path("test-boom", _boom), path("", include(app_urlpatterns))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.config.test_headers")]


def assert_unframeable(response: HttpResponse) -> None:
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_staff_admin_cannot_be_framed(client: Client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert_unframeable(response)


def test_healthz_cannot_be_framed(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert_unframeable(response)


def test_404_page_cannot_be_framed(client: Client) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert_unframeable(response)


def test_500_page_cannot_be_framed() -> None:
    response = Client(raise_request_exception=False).get("/test-boom")
    assert response.status_code == 500
    assert_unframeable(response)
