"""The shop's orders and customers as copied from Shopify, and the sync runs that copy them.

Ids are Shopify's numeric ids (the tail of the GID); every table is unique on
(shop, shopify_id) so a replayed upsert cannot duplicate a row. Money is
Decimal in the shop's currency (Shopify's ``shopMoney``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models

from shops.models import Shop


def shop_field(related_name: str) -> models.ForeignKey[Shop, Shop]:
    """The shop of a synced row, without a database constraint or an index of its own.

    A foreign-key constraint costs a trigger per inserted row (checked at commit): a third of
    PostgreSQL's work in a backfill. Shops are never deleted (uninstall and shop/redact keep the
    row and purge its data through the ORM), and every index of these tables starts with the shop.
    """
    return models.ForeignKey(Shop, on_delete=models.CASCADE, related_name=related_name, db_constraint=False,
                             db_index=False)


def money_field(**kwargs: Any) -> models.DecimalField:
    """Shop-currency money: 4 places hold every ISO currency's minor units exactly."""
    return models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0), **kwargs)


class Customer(models.Model):
    shop = shop_field("customers")
    shopify_id = models.BigIntegerField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Shopify's own figures, kept to show beside ours and reconcile.
    rfm_group = models.CharField(max_length=32, blank=True, default="")
    number_of_orders = models.BigIntegerField(default=0)
    amount_spent = money_field()
    amount_spent_currency = models.CharField(max_length=3, blank=True, default="")
    tags = ArrayField(models.CharField(max_length=255), default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="customer_shop_shopify_id")]

    def __str__(self) -> str:
        return f"customer {self.shopify_id}"


class OrderQuerySet(models.QuerySet["Order"]):
    def for_shop(self, shop: Shop) -> OrderQuerySet:
        return self.filter(shop=shop)

    def counted(self) -> OrderQuerySet:
        """Orders that enter per-customer figures: not test, not cancelled, with a customer."""
        return self.filter(test=False, cancelled_at__isnull=True, customer_shopify_id__isnull=False)

    def in_period(self, start: datetime, end: datetime) -> OrderQuerySet:
        return self.filter(processed_at__gte=start, processed_at__lt=end)


class Order(models.Model):
    shop = shop_field("orders")
    shopify_id = models.BigIntegerField()
    name = models.CharField(max_length=64, blank=True, default="")
    # Shopify's numeric customer id; null for guest checkouts. Not a foreign key:
    # an order can arrive (webhook, bulk line) before its customer does.
    customer_shopify_id = models.BigIntegerField(null=True, blank=True)
    processed_at = models.DateTimeField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    test = models.BooleanField(default=False)
    financial_status = models.CharField(max_length=32, blank=True, default="")
    currency = models.CharField(max_length=3, blank=True, default="", help_text="shop currency")
    presentment_currency = models.CharField(max_length=3, blank=True, default="")
    subtotal = money_field()
    current_subtotal = money_field()
    total = money_field()
    current_total = money_field()
    total_refunded = money_field()
    tags = ArrayField(models.CharField(max_length=255), default=list, blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="order_shop_shopify_id")]
        # Only the indexes reports read by: each one costs every backfilled row (PostgreSQL's
        # largest share of a backfill), so there is none on updated_at or created_at.
        indexes = [
            models.Index(fields=["shop", "processed_at"], name="order_shop_processed"),
            models.Index(fields=["shop", "customer_shopify_id", "processed_at"], name="order_shop_customer"),
        ]

    def __str__(self) -> str:
        return self.name or f"order {self.shopify_id}"


class Refund(models.Model):
    """A refund with its own date, for METRICS' `refund_dating = refund_date`."""

    shop = shop_field("refunds")
    shopify_id = models.BigIntegerField()
    order_shopify_id = models.BigIntegerField()
    created_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    # Total refunded (shipping and taxes included), shop money.
    amount = money_field()
    # Refunded line items' subtotal: what the `subtotal` order-value basis subtracts. NULL until
    # the line items are read: a bulk file carries refunds without them (a connection inside the
    # `refunds` list is refused), so sync.services.refund_lines_fill reads them by id.
    subtotal_amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="refund_shop_shopify_id")]
        indexes = [
            models.Index(fields=["shop", "order_shopify_id"], name="refund_shop_order"),
            models.Index(fields=["shop", "created_at"], name="refund_shop_created"),
            # The refunds whose line items are still to be read: few, looked up after every sync.
            models.Index(fields=["shop", "shopify_id"], name="refund_lines_unread",
                         condition=models.Q(subtotal_amount__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"refund {self.shopify_id}"


class SyncRun(models.Model):
    class Kind(models.TextChoices):
        BACKFILL = "backfill"
        INCREMENTAL = "incremental"
        RECONCILE = "reconcile"
        REFUND_LINES = "refund_lines"  # refund line items a bulk file could not carry, read by id

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    objects_seen = models.BigIntegerField(default=0)
    objects_written = models.BigIntegerField(default=0)
    object_count = models.BigIntegerField(null=True, blank=True, help_text="expected total, from objectCount")
    bulk_operation_id = models.CharField(max_length=100, blank=True, default="")
    high_water_mark = models.DateTimeField(null=True, blank=True)
    history_limited = models.BooleanField(default=False, help_text="no read_all_orders: last 60 days only")
    state = models.JSONField(default=dict, blank=True, help_text="resume point and per-phase progress")
    error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["shop", "kind", "created_at"], name="syncrun_shop_kind_created")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker queue proved it runs tasks (shown by /healthz and the Data page)."""

    queue = models.CharField(max_length=32, unique=True)
    seen_at = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.queue} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"


class Deletion(models.Model):
    """A tombstone: Shopify deleted this order or customer, so no late delivery may bring it back.

    Webhooks arrive out of order: an ``orders/updated`` sent before ``orders/delete``
    can land after it. Upserts skip ids that have a tombstone.
    """

    class Kind(models.TextChoices):
        ORDER = "order"
        CUSTOMER = "customer"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="deletions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    shopify_id = models.BigIntegerField()
    deleted_at = models.DateTimeField()
    # A deleted order's customer: their order count moved, so the next sync re-reads them.
    customer_shopify_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "kind", "shopify_id"], name="deletion_shop_kind_id")]

    def __str__(self) -> str:
        return f"deleted {self.kind} {self.shopify_id}"


class PauseProbe(models.Model):
    """When to ask Shopify again whether a paused shop (402 frozen, 423 locked) answers.

    Created at a paused shop's first probe, deleted when Shopify answers again; `attempts`
    grows the wait between probes (sync.services.shop_pause_probe).
    """

    shop = models.OneToOneField(Shop, on_delete=models.CASCADE, related_name="pause_probe")
    attempts = models.PositiveIntegerField(default=0)
    next_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"probe {self.shop_id} after {self.attempts} attempt(s)"
