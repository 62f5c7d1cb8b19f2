"""The staff admin: shops, sync runs and webhook events render, are read-only where editing
would break data, and never show a credential."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from shops.models import Shop, WebhookEvent
from sync.models import SyncRun
from tests.shops.conftest import shop_create

ACCESS = "shpat_admin_never_shown"
REFRESH = "shprt_admin_never_shown"


@pytest.fixture
def staff(client: Client, db: None) -> Client:
    # A superuser holds every permission, so anything refused below is refused by the admin classes.
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def shop(db: None) -> Shop:
    return shop_create("adminshop.myshopify.com", token=ACCESS, refresh_token=REFRESH)


@pytest.fixture
def run(shop: Shop) -> SyncRun:
    return SyncRun.objects.create(shop=shop, kind=SyncRun.Kind.BACKFILL, status=SyncRun.Status.RUNNING,
                                  objects_written=1234, state={"phase": "orders"})


@pytest.fixture
def event(shop: Shop) -> WebhookEvent:
    return WebhookEvent.objects.create(webhook_id="wh-admin-1", shop=shop, shop_domain=shop.domain,
                                       topic="orders/create", status=WebhookEvent.Status.PROCESSED,
                                       payload={"id": 1, "email": "buyer@example.com", "phone": "+6421000000"})


def assert_no_secret(html: str, shop: Shop) -> None:
    credential = shop.credential
    for secret in (ACCESS, REFRESH, credential.access_token_encrypted, credential.refresh_token_encrypted):
        assert secret not in html
    assert "access_token" not in html
    assert "refresh_token" not in html


def test_pages_render_for_staff_without_credentials(staff: Client, shop: Shop, run: SyncRun,
                                                    event: WebhookEvent) -> None:
    pages = [
        (reverse("admin:shops_shop_changelist"), shop.domain),
        (reverse("admin:shops_shop_change", args=[shop.pk]), shop.domain),
        (reverse("admin:sync_syncrun_changelist"), "1234"),
        (reverse("admin:sync_syncrun_change", args=[run.pk]), "orders"),
        (reverse("admin:shops_webhookevent_changelist"), "wh-admin-1"),
        (reverse("admin:shops_webhookevent_change", args=[event.pk]), "orders/create"),
    ]
    for url, expected in pages:
        response = staff.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert expected in html, url
        assert_no_secret(html, shop)
        # A delivery's body can hold a buyer's personal data: the admin never shows it.
        assert "buyer@example.com" not in html, url
        assert "+6421000000" not in html, url


def test_shop_fields_from_shopify_cannot_be_edited(staff: Client, shop: Shop) -> None:
    url = reverse("admin:shops_shop_change", args=[shop.pk])
    form = staff.get(url).content.decode()
    for field in ("name", "currency", "iana_timezone", "plan", "state", "scopes", "domain"):
        assert f'name="{field}"' not in form, field
    assert 'name="paused_reason"' in form
    response = staff.post(url, {"currency": "USD", "iana_timezone": "UTC", "plan": "hacked", "state": "uninstalled",
                                "name": "Renamed", "needs_reauth_reason": "", "paused_reason": "frozen by staff"})
    assert response.status_code == 302
    shop.refresh_from_db()
    assert (shop.currency, shop.iana_timezone, shop.plan, shop.state, shop.name) == (
        "NZD", "Pacific/Auckland", "", Shop.State.INSTALLED, "Adminshop")
    assert shop.paused_reason == "frozen by staff"
    assert staff.get(reverse("admin:shops_shop_add")).status_code == 403


def test_sync_runs_and_webhook_events_are_read_only(staff: Client, run: SyncRun, event: WebhookEvent) -> None:
    run_url = reverse("admin:sync_syncrun_change", args=[run.pk])
    assert 'name="status"' not in staff.get(run_url).content.decode()
    assert staff.post(run_url, {"status": "succeeded", "objects_written": "0"}).status_code == 403
    run.refresh_from_db()
    assert (run.status, run.objects_written) == (SyncRun.Status.RUNNING, 1234)

    event_url = reverse("admin:shops_webhookevent_change", args=[event.pk])
    assert staff.post(event_url, {"status": "received", "topic": "app/uninstalled"}).status_code == 403
    event.refresh_from_db()
    assert (event.status, event.topic) == (WebhookEvent.Status.PROCESSED, "orders/create")
    assert staff.get(reverse("admin:sync_syncrun_add")).status_code == 403
    assert staff.get(reverse("admin:shops_webhookevent_add")).status_code == 403


def test_no_admin_page_for_credentials(staff: Client) -> None:
    from django.contrib import admin

    from shops.models import ShopCredential

    assert ShopCredential not in admin.site._registry
    assert staff.get("/admin/shops/shopcredential/").status_code == 404
