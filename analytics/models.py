"""Per-shop analytics settings, the merchant's marketing inputs, and precomputed snapshots.

The figures themselves are defined in docs/METRICS.md and computed set-based in
PostgreSQL by ``analytics.metrics``; these tables only hold what the merchant chose and
what a refresh produced, so pages and the report command read without recomputing.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models

from shops.models import Shop

PERIOD_PRESETS = (90, 180, 365, 730)


class AnalyticsSettings(models.Model):
    class OrderValueBasis(models.TextChoices):
        SUBTOTAL = "subtotal", "Subtotal (after discounts, no shipping or taxes)"
        TOTAL = "total", "Total (shipping and taxes included)"

    class RefundDating(models.TextChoices):
        ORDER_DATE = "order_date", "On the order's date"
        REFUND_DATE = "refund_date", "On the refund's date"

    class RfmMethod(models.TextChoices):
        QUANTILE = "quantile", "Quantile (equal-count bins, ties kept together)"
        RANGE = "range", "Range (equal-width bins between min and max)"

    class TimeUnit(models.TextChoices):
        DAYS = "days", "Days"
        WEEKS = "weeks", "Weeks"

    shop = models.OneToOneField(Shop, on_delete=models.CASCADE, related_name="analytics_settings")
    period_days = models.PositiveIntegerField(default=365)
    activity_window_days = models.PositiveIntegerField(default=365)
    order_value_basis = models.CharField(max_length=16, choices=OrderValueBasis.choices,
                                         default=OrderValueBasis.SUBTOTAL)
    refund_dating = models.CharField(max_length=16, choices=RefundDating.choices, default=RefundDating.ORDER_DATE)
    rfm_scale = models.PositiveSmallIntegerField(choices=[(3, "1 to 3"), (5, "1 to 5")], default=3)
    rfm_method = models.CharField(max_length=16, choices=RfmMethod.choices, default=RfmMethod.QUANTILE)
    lifespan_override_years = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    excluded_order_tags = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    # Predictive CLV (docs/PREDICTIVE.md): the unit of t_x, T and the fitted alpha, the horizon H
    # and the annual discount rate (percent) of the predicted CLV.
    predictive_time_unit = models.CharField(max_length=8, choices=TimeUnit.choices, default=TimeUnit.DAYS)
    predictive_horizon_days = models.PositiveIntegerField(default=365)
    predictive_discount_rate_pct = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal(10))
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"analytics settings for {self.shop_id}"


class MarketingInput(models.Model):
    """Spend and conversion the merchant enters for one period (Shopify's order data has none)."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="marketing_inputs")
    period_start = models.DateField()
    period_end = models.DateField(help_text="exclusive, like the report period's end")
    acquisition_spend = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    retention_spend = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    conversion_rate = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True,
                                          help_text="campaign conversion rate, percent")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "period_start", "period_end"],
                                               name="marketinginput_shop_period")]

    def __str__(self) -> str:
        return f"marketing {self.period_start}..{self.period_end} for {self.shop_id}"


class AnalyticsSnapshot(models.Model):
    """One computed report document for a shop, an as-of date and a set of settings."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="analytics_snapshots")
    as_of = models.DateField()
    settings_hash = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    document = models.JSONField(default=dict)
    computed_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    # The snapshot's customer table. A refresh writes a new set and swaps it in when done, so
    # readers never see a half-written one; older snapshots lose theirs (the document stays).
    rows = models.ForeignKey("CustomerRows", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The per-customer predictions of the predictive block; kept across refreshes that reuse it.
    predictions = models.ForeignKey("CustomerRows", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "as_of", "settings_hash"],
                                               name="snapshot_shop_asof_settings")]
        indexes = [models.Index(fields=["shop", "computed_at"], name="snapshot_shop_computed")]

    def __str__(self) -> str:
        return f"snapshot {self.shop_id} as of {self.as_of}"

    @property
    def has_customers(self) -> bool:
        return self.rows_id is not None


class CustomerRows(models.Model):
    """One refresh's set of customer score rows (see AnalyticsSnapshot.rows)."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"customer rows {self.pk} of {self.shop_id}"


class CustomerScore(models.Model):
    """One row of the RFM customer table of a snapshot (customers with an order in the period)."""

    # No database constraint or single-column index: a refresh writes 250k rows in one statement,
    # and a per-row foreign key check costs more than the rest of the insert. Rows are only
    # written by snapshot_refresh for its own row set; Django still cascades deletes.
    rows = models.ForeignKey(CustomerRows, on_delete=models.CASCADE, related_name="scores",
                             db_constraint=False, db_index=False)
    customer_shopify_id = models.BigIntegerField()
    recency_days = models.IntegerField()
    frequency = models.IntegerField()
    monetary = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    r = models.SmallIntegerField()
    f = models.SmallIntegerField()
    m = models.SmallIntegerField()
    total = models.SmallIntegerField()
    rfm_group = models.CharField(max_length=8)
    segment = models.CharField(max_length=32, blank=True, default="")
    lifecycle_stage = models.CharField(max_length=16, blank=True, default="")
    shopify_rfm_group = models.CharField(max_length=32, blank=True, default="")
    orders_lifetime = models.IntegerField(default=0)
    spend_lifetime = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    shopify_number_of_orders = models.BigIntegerField(null=True, blank=True)
    shopify_amount_spent = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    reconcile_cause = models.CharField(max_length=32, blank=True, default="")
    # Copied from the snapshot's CustomerPrediction row (null without a fitted model), so the
    # customer list and the CSV read one table.
    p_alive = models.FloatField(null=True, blank=True)
    expected_purchases = models.FloatField(null=True, blank=True)
    expected_aov = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    predicted_clv = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["rows", "customer_shopify_id"], name="score_rows_customer")]

    def __str__(self) -> str:
        return f"score {self.customer_shopify_id} in rows {self.rows_id}"



class CustomerPrediction(models.Model):
    """One customer's BG/NBD and Gamma-Gamma figures in a snapshot (docs/PREDICTIVE.md).

    Every customer the models score has a row, lapsed ones outside the period's RFM table too.
    Like CustomerScore: derived data in an unlogged table, written by one COPY per refresh,
    pruned with the score rows, no foreign key check.
    """

    rows = models.ForeignKey(CustomerRows, on_delete=models.CASCADE, related_name="predictions",
                             db_constraint=False, db_index=False)
    customer_shopify_id = models.BigIntegerField()
    x = models.IntegerField(help_text="repeat purchase days")
    t_x = models.FloatField(help_text="first to last purchase day, in the block's time unit")
    T = models.FloatField(db_column="t_observed", help_text="first purchase day to the last day observed")
    p_alive = models.FloatField()
    expected_purchases = models.FloatField(help_text="in the next horizon_days")
    # Null when the spend model could not be fitted.
    expected_aov = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    predicted_clv = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["rows", "customer_shopify_id"], name="prediction_rows_customer")]

    def __str__(self) -> str:
        return f"prediction {self.customer_shopify_id} in rows {self.rows_id}"
