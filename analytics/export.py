"""CSV export of the RFM customer table, streamed row by row from the stored snapshot."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date

from analytics import selectors, services
from analytics.metrics.numbers import decimal_money, money
from analytics.metrics.params import ReportParams
from shops.models import Shop

HEADER = ["customer_id", "recency_days", "frequency", "monetary", "r", "f", "m", "rfm_total", "rfm_group",
          "segment", "lifecycle_stage", "shopify_rfm_group", "orders_lifetime", "spend_lifetime",
          # Predictive CLV (docs/PREDICTIVE.md): always in the header, empty cells when a model is not fitted.
          "p_alive", "expected_purchases", "expected_aov", "predicted_clv"]


def rfm_csv(*, shop: Shop, as_of: date | None = None, period_days: int | None = None,
            rfm_scale: int | None = None, rfm_method: str | None = None,
            group: str | None = None, params: ReportParams | None = None) -> Iterator[str]:
    """Yield CSV lines (header first); pass to StreamingHttpResponse. A missing snapshot is computed first.

    ``group`` (top, middle, bottom) keeps only that RFM group's customers. ``params``, when the
    caller already has them (the page read the settings), replace the other arguments.
    """
    if params is None:
        params = selectors.report_params_for(shop=shop, as_of=as_of, period_days=period_days, rfm_scale=rfm_scale,
                                             rfm_method=rfm_method)
    snapshot = selectors.snapshot_find(shop=shop, params=params)
    if snapshot is None or not selectors.snapshot_rows_present(snapshot=snapshot, predictions=False):
        snapshot = services.snapshot_refresh(shop=shop, as_of=params.as_of, period_days=params.period_days,
                                             rfm_scale=params.rfm_scale, rfm_method=params.rfm_method)
    currency = snapshot.document.get("currency", "")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(HEADER)
    yield flush()
    rows = selectors.customer_scores(snapshot=snapshot).order_by("-total", "customer_shopify_id")
    if group:
        rows = rows.filter(rfm_group=group)
    for row in rows.iterator(chunk_size=5000):
        writer.writerow([
            row.customer_shopify_id, row.recency_days, row.frequency, money(row.monetary, currency), row.r,
            row.f, row.m, row.total, row.rfm_group, row.segment, row.lifecycle_stage, row.shopify_rfm_group,
            row.orders_lifetime, money(row.spend_lifetime, currency),
            "" if row.p_alive is None else f"{row.p_alive:.4f}",
            "" if row.expected_purchases is None else f"{row.expected_purchases:.4f}",
            decimal_money(row.expected_aov, currency) or "", decimal_money(row.predicted_clv, currency) or "",
        ])
        yield flush()
