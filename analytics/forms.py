"""Forms of the report pages: the period picker, the shop's settings and the marketing inputs.

The settings and marketing forms only render and carry values: ``analytics.services``
validates and saves (``settings_update``, ``marketing_inputs_update``) and its field errors
are attached back to the form, so a bad value is answered next to its field.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.core.validators import MinValueValidator
from django.forms.utils import ErrorDict

from analytics.models import PERIOD_PRESETS, AnalyticsSettings

PERIOD_CHOICES = [(str(d), label) for d, label in zip(
    PERIOD_PRESETS, ("Last 90 days", "Last 180 days", "Last 365 days", "Last 730 days"), strict=True)]
CUSTOM = "custom"
MIN_PERIOD_DAYS, MAX_PERIOD_DAYS = 7, 3660
# Shopify opened in 2006, so no shop has an order before this; and a report's look-back (two
# periods and the activity window, up to ten years each) from it stays far inside datetime's range.
MIN_AS_OF = date(2000, 1, 1)


class PeriodForm(forms.Form):
    """The period picker on every report page: a preset or a custom length, and the as-of date."""

    period = forms.ChoiceField(label="Period", choices=[*PERIOD_CHOICES, (CUSTOM, "Custom length")], required=False)
    days = forms.IntegerField(label="Days", min_value=MIN_PERIOD_DAYS, max_value=MAX_PERIOD_DAYS, required=False,
                              help_text="Only for a custom period.")
    as_of = forms.DateField(label="As of", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            validators=[MinValueValidator(MIN_AS_OF)],
                            help_text="The period ends at the start of this day (shop time zone).")

    def __init__(self, *args: Any, today: date, default_days: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.default_days = default_days
        self.fields["as_of"].widget.attrs.update(min=MIN_AS_OF.isoformat(), max=(today + timedelta(days=1)).isoformat())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        as_of = data.get("as_of")
        if as_of is not None and as_of > self.today + timedelta(days=1):
            self.add_error("as_of", "Pick a date no later than tomorrow: the future has no orders yet.")
        if data.get("period") == CUSTOM and not data.get("days"):
            self.add_error("days", "Enter the number of days for a custom period.")
        return data

    def resolved(self) -> tuple[date | None, int]:
        """(as_of or None for today, period days) from valid data; defaults for anything invalid."""
        if not self.is_bound or not self.is_valid():
            return None, self.default_days
        period = self.cleaned_data.get("period") or ""
        days = self.cleaned_data.get("days")
        if period == CUSTOM and days:
            n = int(days)
        elif period.isdigit():
            n = int(period)
        else:
            n = self.default_days
        return self.cleaned_data.get("as_of"), n


SETTINGS_HELP = {
    "period_days": "The default report period, in days; every page opens on it, and the period picker can change "
                   "it for one visit.",
    "activity_window_days": "A customer counts as active while their last order is less than this many days old; "
                            "it drives customers at start and end, churn, retention and the lifecycle stages.",
    "order_value_basis": "Subtotal counts what customers paid for products after discounts; total adds shipping and "
                         "taxes, which makes revenue match Shopify's total sales but inflates AOV and CLV.",
    "refund_dating": "On the order's date, a refund lowers the original order's value; on the refund's date, it "
                     "lowers revenue in the period the money went back, as Shopify's finance reports do.",
    "rfm_scale": "Scores of 1 to 3 follow the article's example; 1 to 5 splits customers more finely and adds named "
                 "segments such as Champions and At risk.",
    "rfm_method": "Quantile puts about the same number of customers in each score; range splits the span between "
                  "the smallest and largest value into equal steps, so outliers can crowd one score.",
    "lifespan_override_years": "Leave blank to derive the average customer lifespan from churn (or use 3 years for "
                               "a young shop); a number here replaces it in every CLV figure.",
    "excluded_order_tags": "Orders carrying any of these tags (comma separated, for example wholesale) are left out "
                           "of every figure.",
    "predictive_time_unit": "The unit the purchase model counts time in (its fitted parameters are shown in it); "
                            "the predictions themselves do not change.",
    "predictive_horizon_days": "How many days ahead expected purchases and predicted CLV look (30 to 1,825); the "
                               "backtest checks at most this many days.",
    "predictive_discount_rate_pct": "Future purchases in predicted CLV are discounted at this yearly rate "
                                    "(0 to 100 %); 0 means a purchase next year counts as much as one today.",
}


class SettingsForm(forms.Form):
    period_days = forms.IntegerField(label="Default period (days)", min_value=7, max_value=3660)
    activity_window_days = forms.IntegerField(label="Activity window (days)", min_value=7, max_value=3660)
    order_value_basis = forms.ChoiceField(label="Order value", choices=AnalyticsSettings.OrderValueBasis.choices,
                                          widget=forms.RadioSelect)
    refund_dating = forms.ChoiceField(label="Refunds count", choices=AnalyticsSettings.RefundDating.choices,
                                      widget=forms.RadioSelect)
    rfm_scale = forms.ChoiceField(label="RFM score scale", choices=[("3", "1 to 3"), ("5", "1 to 5")],
                                  widget=forms.RadioSelect)
    rfm_method = forms.ChoiceField(label="RFM binning", choices=AnalyticsSettings.RfmMethod.choices,
                                   widget=forms.RadioSelect)
    lifespan_override_years = forms.DecimalField(label="Customer lifespan override (years)", required=False,
                                                 min_value=0, max_digits=6, decimal_places=2)
    excluded_order_tags = forms.CharField(label="Excluded order tags", required=False, max_length=4000)
    predictive_time_unit = forms.ChoiceField(label="Predictive model time unit",
                                             choices=AnalyticsSettings.TimeUnit.choices, widget=forms.RadioSelect)
    predictive_horizon_days = forms.IntegerField(label="Prediction horizon (days)", min_value=30, max_value=1825)
    predictive_discount_rate_pct = forms.DecimalField(label="Annual discount rate (%)", min_value=0, max_value=100,
                                                      max_digits=5, decimal_places=2)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.help_text = SETTINGS_HELP[name]

    @classmethod
    def from_settings(cls, s: AnalyticsSettings) -> SettingsForm:
        return cls(initial={
            "period_days": s.period_days, "activity_window_days": s.activity_window_days,
            "order_value_basis": s.order_value_basis, "refund_dating": s.refund_dating,
            "rfm_scale": str(s.rfm_scale), "rfm_method": s.rfm_method,
            "lifespan_override_years": s.lifespan_override_years,
            "excluded_order_tags": ", ".join(s.excluded_order_tags or []),
            "predictive_time_unit": s.predictive_time_unit, "predictive_horizon_days": s.predictive_horizon_days,
            "predictive_discount_rate_pct": s.predictive_discount_rate_pct,
        })


class MarketingForm(forms.Form):
    period_start = forms.DateField(label="Period start", widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(label="Period end (exclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    acquisition_spend = forms.CharField(label="Acquisition spend", required=False,
                                        help_text="What you spent winning new customers in the period (ads, "
                                                  "promotions), in the shop's currency.")
    retention_spend = forms.CharField(label="Retention spend", required=False,
                                      help_text="What you spent keeping existing customers (email, loyalty "
                                                "rewards), in the shop's currency.")
    conversion_rate = forms.CharField(label="Campaign conversion rate (%)", required=False,
                                      help_text="The share of ad clicks that become a first order, in percent.")


def errors_attach(form: forms.Form, errors: dict[str, list[str]]) -> None:
    """Put the service's field errors on the bound form (unknown keys become form-wide errors).

    The service is the one validator, so the form's own cleaning is skipped: an empty error
    dict and cleaned data stand in for it.
    """
    form._errors = ErrorDict()  # type: ignore[attr-defined]  # noqa: SLF001 - skip Django's cleaning; the service's messages are the errors
    form.cleaned_data = {}
    for key, messages in errors.items():
        for message in messages:
            form.add_error(key if key in form.fields else None, message)
