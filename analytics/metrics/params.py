"""What one computation depends on: the period, the settings, and the shop's time zone."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

# Bump when a formula changes, so stored snapshots computed the old way are not reused.
FORMULA_VERSION = 4
COHORT_MONTHS = 24


@dataclass(frozen=True)
class ReportParams:
    as_of: date
    period_days: int = 365
    activity_window_days: int = 365
    order_value_basis: str = "subtotal"
    refund_dating: str = "order_date"
    rfm_scale: int = 3
    rfm_method: str = "quantile"
    lifespan_override_years: Decimal | None = None
    excluded_order_tags: tuple[str, ...] = field(default_factory=tuple)
    # Not settings, but the figures depend on them: a shop that changes its zone or currency
    # must not be served snapshots bucketed or rounded the old way.
    time_zone: str = "UTC"
    currency: str = ""
    # The predictive block's settings (analytics.predictive): part of the key like the others.
    predictive_time_unit: str = "days"
    predictive_horizon_days: int = 365
    predictive_discount_rate_pct: Decimal = Decimal(10)

    def settings_dict(self) -> dict[str, object]:
        d = asdict(self)
        for key in ("as_of", "time_zone", "currency"):
            d.pop(key)
        d["lifespan_override_years"] = (None if self.lifespan_override_years is None
                                        else str(self.lifespan_override_years))
        # "10" and "10.00" are one setting: the hash must not tell them apart.
        d["predictive_discount_rate_pct"] = str(Decimal(self.predictive_discount_rate_pct).quantize(Decimal("0.01")))
        d["excluded_order_tags"] = sorted({t.strip().lower() for t in self.excluded_order_tags if t.strip()})
        return d

    def settings_hash(self) -> str:
        payload = json.dumps({"v": FORMULA_VERSION, "time_zone": self.time_zone, "currency": self.currency,
                              **self.settings_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Bounds:
    """Every boundary is a local midnight in the shop's zone, turned into an aware instant."""

    tz: str
    start: datetime
    end: datetime
    start_date: date
    end_date: date
    active_from_at_start: datetime  # start - A
    active_from_at_end: datetime  # end - A
    half_window_at_end: datetime  # end - floor(A / 2)
    history_needed_before: datetime  # end - 2 P: lifespan from churn needs history up to here
    last_month: date  # first day of the month holding the period's last day
    first_cohort_month: date


def local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))


def month_add(month: date, n: int) -> date:
    idx = month.year * 12 + month.month - 1 + n
    return date(idx // 12, idx % 12 + 1, 1)


def bounds_for(params: ReportParams, tz: str) -> Bounds:
    end_date = params.as_of
    start_date = end_date - timedelta(days=params.period_days)
    a = params.activity_window_days
    last_day = end_date - timedelta(days=1)
    last_month = date(last_day.year, last_day.month, 1)
    return Bounds(
        tz=tz,
        start=local_midnight(start_date, tz),
        end=local_midnight(end_date, tz),
        start_date=start_date,
        end_date=end_date,
        active_from_at_start=local_midnight(start_date - timedelta(days=a), tz),
        active_from_at_end=local_midnight(end_date - timedelta(days=a), tz),
        half_window_at_end=local_midnight(end_date - timedelta(days=a // 2), tz),
        history_needed_before=local_midnight(end_date - timedelta(days=2 * params.period_days), tz),
        last_month=last_month,
        first_cohort_month=month_add(last_month, -(COHORT_MONTHS - 1)),
    )
