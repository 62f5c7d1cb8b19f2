"""Shops that installed Tenure, their credentials, and the webhooks they send."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from shops import crypto


class ShopQuerySet(models.QuerySet["Shop"]):
    def installed(self) -> ShopQuerySet:
        return self.filter(state=Shop.State.INSTALLED)


class Shop(models.Model):
    class State(models.TextChoices):
        INSTALLED = "installed"
        UNINSTALLED = "uninstalled"
        REDACTED = "redacted"

    domain = models.CharField(max_length=255, unique=True, help_text="the-shop.myshopify.com")
    shopify_gid = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3, blank=True, default="")
    iana_timezone = models.CharField(max_length=64, default="UTC")
    plan = models.CharField(max_length=64, blank=True, default="")
    scopes = models.TextField(blank=True, default="", help_text="granted scopes, comma separated")
    state = models.CharField(max_length=16, choices=State.choices, default=State.INSTALLED)
    installed_at = models.DateTimeField(null=True, blank=True)
    uninstalled_at = models.DateTimeField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    # Set when the merchant must open the app again (refresh failed, token revoked).
    needs_reauth_reason = models.TextField(blank=True, default="")
    # Set when Shopify says the shop is frozen or locked (402/423).
    paused_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ShopQuerySet.as_manager()

    def __str__(self) -> str:
        return self.domain

    @property
    def granted_scopes(self) -> set[str]:
        return {s.strip() for s in self.scopes.split(",") if s.strip()}


class ShopCredential(models.Model):
    """The offline access token pair. Stored encrypted; never logged, never shown."""

    shop = models.OneToOneField(Shop, on_delete=models.CASCADE, related_name="credential")
    access_token_encrypted = models.TextField(blank=True, default="")
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_encrypted = models.TextField(blank=True, default="")
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    # Kept for one retry if a refresh response is lost (Shopify accepts it briefly).
    previous_refresh_token_encrypted = models.TextField(blank=True, default="")
    scopes = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"credential for {self.shop_id}"

    def __repr__(self) -> str:
        return f"<ShopCredential shop={self.shop_id}>"

    @property
    def access_token(self) -> str:
        return crypto.decrypt(self.access_token_encrypted)

    @access_token.setter
    def access_token(self, value: str) -> None:
        self.access_token_encrypted = crypto.encrypt(value)

    @property
    def refresh_token(self) -> str:
        return crypto.decrypt(self.refresh_token_encrypted)

    @refresh_token.setter
    def refresh_token(self, value: str) -> None:
        self.refresh_token_encrypted = crypto.encrypt(value)

    def expires_within(self, seconds: int, *, now: datetime) -> bool:
        if self.access_token_expires_at is None:
            return False
        return (self.access_token_expires_at - now).total_seconds() < seconds


class WebhookEvent(models.Model):
    """Every verified delivery, recorded before any work so nothing is lost."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        REJECTED = "rejected"
        DROPPED = "dropped"
        FAILED = "failed"

    webhook_id = models.CharField(max_length=255, unique=True)
    shop = models.ForeignKey(Shop, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events")
    shop_domain = models.CharField(max_length=255)
    topic = models.CharField(max_length=100)
    api_version = models.CharField(max_length=20, blank=True, default="")
    triggered_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    payload = models.JSONField(null=True, blank=True)
    outcome = models.TextField(blank=True, default="", help_text="what the handler did, or why it failed")

    class Meta:
        indexes = [
            models.Index(fields=["status", "received_at"], name="webhook_status_received"),
            models.Index(fields=["shop", "received_at"], name="webhook_shop_received"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.webhook_id}"


class CustomerDataReport(models.Model):
    """What Tenure held on one customer when their shop forwarded a data request.

    Written by the customers/data_request handler; staff read it in the Django admin
    and send it to the merchant. Holds ids, dates and money only (Tenure keeps no PII).
    """

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="customer_data_reports")
    customer_shopify_id = models.BigIntegerField()
    data_request_id = models.CharField(max_length=64, blank=True, default="")
    webhook_event = models.OneToOneField(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="customer_data_report")
    created_at = models.DateTimeField(auto_now_add=True)
    report = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"data request {self.data_request_id or self.pk} for customer {self.customer_shopify_id}"
