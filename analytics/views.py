"""The embedded report pages: each reads the stored report document and shapes it for a template.

Every page is behind ``shops.auth.embedded_view`` (session token in ``id_token`` on a document
load, ``Authorization: Bearer`` on a fetch). Forms post with the token in the action URL,
never with cookies (third-party cookies are blocked in the admin's iframe), so they are
exempt from Django's cookie-based CSRF check; the session token, signed for this shop and
valid for a minute, is what authenticates them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from analytics import charts, export, selectors, services
from analytics.forms import (
    CUSTOM,
    MAX_PERIOD_DAYS,
    MIN_PERIOD_DAYS,
    PERIOD_CHOICES,
    MarketingForm,
    PeriodForm,
    SettingsForm,
    errors_attach,
)
from analytics.metrics.document import marketing_apply
from analytics.metrics.params import ReportParams
from analytics.models import PERIOD_PRESETS, AnalyticsSettings, AnalyticsSnapshot
from analytics.predictive.service import NOT_IN_RFM
from analytics.templatetags.report import fmt_money, fmt_number, fmt_pct, money_compact
from shops.auth import embedded_view
from shops.models import Shop

PERIOD_FORM_CHOICES = [*PERIOD_CHOICES, (CUSTOM, "Custom length")]
# Query parameters every in-app link keeps: the admin's launch context and the period picker.
EMBED_PARAMS = ("shop", "host", "embedded", "locale", "id_token")
PERIOD_PARAMS = ("period", "days", "as_of")
NAV = (
    ("overview", "Overview"), ("rfm", "RFM"), ("clv", "CLV"), ("retention", "Retention"),
    ("lifecycle", "Lifecycle"), ("marketing", "Marketing"), ("data", "Data"), ("settings", "Settings"),
)
CUSTOMERS_PER_PAGE = 50
SMALL_GROUP = 30  # METRICS.md: a group or stage of fewer customers is marked "small sample"
CUSTOMER_SORTS = {
    "total": ("total", "RFM total"), "recency": ("recency_days", "Recency (days)"),
    "frequency": ("frequency", "Orders"), "monetary": ("monetary", "Spend"),
    "orders_lifetime": ("orders_lifetime", "Lifetime orders"), "predicted_clv": ("predicted_clv", "Predicted CLV"),
    "customer": ("customer_shopify_id", "Customer"),
}
GROUPS = ("top", "middle", "bottom")
GROUP_LABELS = {"top": "Top", "middle": "Middle", "bottom": "Bottom"}
STAGE_LABELS = {"purchase": "Purchase (first-time)", "retention": "Retention (repeat)",
                "advocacy": "Advocacy (loyal)", "at_risk": "At risk", "lapsed": "Lapsed"}
OVERVIEW_CARDS = (
    ("clv.revenue", "Revenue", "money", True), ("clv.orders", "Orders", "int", True),
    ("clv.customers", "Customers", "int", True), ("clv.aov", "Average order value", "money", True),
    ("clv.purchase_frequency", "Purchase frequency", "num", True),
    ("clv.customer_value", "Customer value", "money", True), ("clv.clv", "Customer lifetime value", "money", True),
    ("retention.crr", "Customer retention rate", "pct", True), ("retention.churn_rate", "Churn rate", "pct", False),
    ("retention.repeat_purchase_rate", "Repeat purchase rate", "pct", True),
)


# --- shared page plumbing ---------------------------------------------------------------------------------------

def _shop(request: HttpRequest) -> Shop:
    shop: Shop = request.shop  # type: ignore[attr-defined]
    return shop


def _keep(request: HttpRequest, names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(k, request.GET[k]) for k in names if request.GET.get(k)]


def page_url(request: HttpRequest, name: str, *, with_period: bool = True, **extra: Any) -> str:
    """An in-app URL keeping the launch context (and the period picker's choice)."""
    pairs = _keep(request, EMBED_PARAMS) + (_keep(request, PERIOD_PARAMS) if with_period else [])
    pairs += [(k, str(v)) for k, v in extra.items() if v not in (None, "")]
    return f"{reverse(name)}?{urlencode(pairs)}"


def _get(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _fmt(kind: str, value: Any, currency: str) -> str:
    if kind == "money":
        return fmt_money(value, currency)
    if kind == "pct":
        return fmt_pct(value)
    if kind == "int":
        return fmt_number(value, 0)
    return fmt_number(value, 2)


def _change(kind: str, current: Any, previous: Any, *, higher_is_better: bool) -> dict[str, Any] | None:
    """Change against the previous period: points for rates, percent for everything else."""
    if current is None or previous is None:
        return None
    cur, prev = Decimal(str(current)), Decimal(str(previous))
    delta = cur - prev
    direction = "up" if delta > 0 else "down" if delta < 0 else "flat"
    good = direction == "flat" or (direction == "up") == higher_is_better
    if direction == "flat":
        text = ""
    elif kind == "pct":
        text = f"{abs(delta):.1f} pts"
    elif prev == 0:
        text = "from zero"
    else:
        text = f"{abs(delta / prev * 100):.1f}%"
    return {"direction": direction, "text": text, "good": good,
            "arrow": {"up": "▲", "down": "▼", "flat": "■"}[direction],
            "words": {"up": "up", "down": "down", "flat": "unchanged"}[direction]}


# Settings and marketing inputs change only through this app's forms: each process reuses what it
# read for a few seconds, forgets everything on its own writes, and the page a form redirects to
# (``saved=1``) reads afresh, so the other worker never shows a merchant their old values.
MEMO_SECONDS = 3.0
STATUS_SECONDS = 1.0
SNAPSHOT_SECONDS = 1.0
_MEMO: dict[tuple[Any, ...], tuple[float, Any]] = {}


def memo(request: HttpRequest, key: tuple[Any, ...], load: Callable[[], Any], seconds: float | None = None) -> Any:
    """``load()``, reused for ``seconds`` (default ``MEMO_SECONDS``) per process on plain GETs."""
    seconds = MEMO_SECONDS if seconds is None else seconds
    now = time.monotonic()
    if request.method == "GET" and request.GET.get("saved") != "1":
        with _DOCS_LOCK:
            hit = _MEMO.get(key)
        if hit is not None and now - hit[0] < seconds:
            return hit[1]
    value = load()
    with _DOCS_LOCK:
        if len(_MEMO) > 4096:
            _MEMO.clear()
        _MEMO[key] = (now, value)
    return value


def memo_forget() -> None:
    with _DOCS_LOCK:
        _MEMO.clear()


def shop_settings(request: HttpRequest, shop: Shop) -> AnalyticsSettings:
    """The shop's analytics settings, read once per request (and reused briefly, see ``memo``)."""
    found: AnalyticsSettings | None = getattr(request, "_tenure_settings", None)
    if found is None:
        found = memo(request, ("settings", shop.pk), lambda: selectors.analytics_settings_get(shop=shop))
        request._tenure_settings = found  # type: ignore[attr-defined]
    return found


def report_params(s: AnalyticsSettings, *, shop: Shop, as_of: date | None, period_days: int | None) -> ReportParams:
    """``selectors.report_params_for`` from settings already read."""
    return selectors.report_params_from(s, shop=shop, as_of=as_of, period_days=period_days)


def _period(request: HttpRequest, shop: Shop) -> tuple[PeriodForm, date | None, int]:
    today = selectors.shop_today(shop=shop)
    default_days = int(shop_settings(request, shop).period_days)
    preset = str(default_days) if default_days in PERIOD_PRESETS else "custom"
    data = None
    if any(k in request.GET for k in PERIOD_PARAMS):
        data = request.GET.copy()
        if not data.get("period"):
            data["period"] = "custom" if data.get("days") else preset
            data.setdefault("days", str(default_days))
        if not data.get("as_of"):
            data["as_of"] = today.isoformat()
    form = PeriodForm(data, today=today, default_days=default_days,
                      initial={"period": preset, "days": default_days, "as_of": today})
    as_of, days = form.resolved()
    return form, as_of, days


def _context(request: HttpRequest, page: str, doc: dict[str, Any] | None, form: PeriodForm | None,
             **extra: Any) -> dict[str, Any]:
    shop = _shop(request)
    nav = [{"name": n, "label": label, "url": page_url(request, f"analytics:{n}"), "current": n == page}
           for n, label in NAV]
    hidden = _keep(request, EMBED_PARAMS)
    return {
        "shop": shop, "doc": doc, "page": page, "nav": nav, "period_form": form, "hidden_params": hidden,
        "page_title": dict(NAV)[page], "currency": (doc or {}).get("currency") or shop.currency,
        "api_key": settings.SHOPIFY_API_KEY, "app_bridge_url": settings.SHOPIFY_APP_BRIDGE_URL,
        "self_url": page_url(request, f"analytics:{page}"),
        "period_labels": _period_labels(doc), "period_picker": _picker(form, doc), **extra,
    }


def _picker(form: PeriodForm | None, doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The period picker's values, written out in the template (cheaper than rendering form widgets)."""
    if form is None or doc is None:
        return None
    days = int(doc["period"]["days"])
    chosen = form.data.get("period") if form.is_bound else None
    period = chosen if chosen in {v for v, _ in PERIOD_FORM_CHOICES} else (
        str(days) if days in PERIOD_PRESETS else "custom")
    return {"choices": PERIOD_FORM_CHOICES, "period": period, "days": days, "as_of": doc["as_of"],
            "min_as_of": form.fields["as_of"].widget.attrs.get("min", ""),
            "max_as_of": form.fields["as_of"].widget.attrs.get("max", ""),
            "errors": form.errors if form.is_bound else {},
            "min_days": MIN_PERIOD_DAYS, "max_days": MAX_PERIOD_DAYS}


def _period_labels(doc: dict[str, Any] | None) -> dict[str, str]:
    if not doc:
        return {}
    start = date.fromisoformat(doc["period"]["start"])
    end = date.fromisoformat(doc["period"]["end"])
    return {"start": start.isoformat(), "last_day": (end - timedelta(days=1)).isoformat(),
            "days": str(doc["period"]["days"]), "as_of": doc["as_of"]}


# Report documents by stored snapshot (pk, computed_at): a refresh makes a new key, so an entry is
# never stale; each process keeps the few most recent. Entries are shared, so never mutated.
_DOCS: OrderedDict[tuple[int, float], dict[str, Any]] = OrderedDict()
_DOCS_LOCK = threading.Lock()
_DOCS_MAX = 32


def report_document_cached(*, shop: Shop, as_of: date | None, period_days: int, with_marketing: bool = True,
                           settings_row: AnalyticsSettings | None = None,
                           request: HttpRequest | None = None) -> dict[str, Any]:
    """``services.report_document``, read once per snapshot and process; marketing inputs applied per call.

    Two small queries find the stored snapshot's identity; the document itself (and its JSON
    decoding) is reused until the snapshot is refreshed. A missing snapshot is computed by the
    service as usual.
    """
    params = (report_params(settings_row, shop=shop, as_of=as_of, period_days=period_days) if settings_row
              else selectors.report_params_for(shop=shop, as_of=as_of, period_days=period_days))
    settings_hash = params.settings_hash()
    def identity() -> tuple[Any, ...] | None:
        return (AnalyticsSnapshot.objects.filter(shop=shop, as_of=params.as_of, settings_hash=settings_hash)
                .values_list("pk", "computed_at", "rows_id").first())

    # Read at most once a second per process: a refresh shows up within that second.
    row = identity() if request is None else memo(request, ("snapshot", shop.pk, params.as_of, settings_hash),
                                                   identity, seconds=SNAPSHOT_SECONDS)
    key = (row[0], row[1].timestamp()) if row else None
    base = None
    if key is not None:
        with _DOCS_LOCK:
            base = _DOCS.get(key)
            if base is not None:
                _DOCS.move_to_end(key)
    if base is None:
        base = services.report_document(shop=shop, as_of=params.as_of, period_days=params.period_days)
        if key is not None:
            base.update({"_cache_key": f"{key[0]}:{key[1]}", "_snapshot_pk": key[0],
                         "_settings_hash": settings_hash, "_rows_id": row[2] if row else None})
            with _DOCS_LOCK:
                _DOCS[key] = base
                while len(_DOCS) > _DOCS_MAX:
                    _DOCS.popitem(last=False)
    if not with_marketing:
        return base
    doc = {**base, "explain": dict(base.get("explain") or {})}
    start, end = date.fromisoformat(doc["period"]["start"]), date.fromisoformat(doc["period"]["end"])
    def inputs() -> dict[str, Any] | None:
        return selectors.marketing_inputs_for_period(shop=shop, start=start, end=end)

    found = inputs() if request is None else memo(request, ("marketing", shop.pk, start, end), inputs)
    return marketing_apply(doc, found)


_CHARTS: OrderedDict[tuple[str, str], SafeString] = OrderedDict()
_CHARTS_MAX = 256


def chart_cached(doc: dict[str, Any], name: str, build: Callable[[], SafeString]) -> SafeString:
    """A chart of a stored document, built once per snapshot and process (charts are pure functions of it)."""
    doc_key = doc.get("_cache_key")
    if not doc_key:
        return build()
    key = (str(doc_key), name)
    with _DOCS_LOCK:
        found = _CHARTS.get(key)
    if found is not None:
        return found
    svg = build()
    with _DOCS_LOCK:
        _CHARTS[key] = svg
        while len(_CHARTS) > _CHARTS_MAX:
            _CHARTS.popitem(last=False)
    return svg


# Whole pages by (page, snapshot, query, marketing inputs, extra): the HTML is a pure function of
# them except for the request's session token, which is cut out before storing and put back on
# each answer. This keeps a page to a few small queries under load.
_PAGES: OrderedDict[str, str] = OrderedDict()
_PAGES_MAX = 96
TOKEN_SLOT = "__tenure_id_token__"  # noqa: S105 - a placeholder, not a secret


def page_cached(request: HttpRequest, page: str, doc: dict[str, Any] | None, extra: Any,
                build: Callable[[], HttpResponse]) -> HttpResponse:
    """``build()``'s page, reused while everything it shows is unchanged.

    With a document, the key is its snapshot; without one (Settings), ``extra`` carries all
    the page shows.
    """
    token = request.GET.get("id_token", "")
    doc_key = "none" if doc is None else doc.get("_cache_key")
    if not doc_key or len(token) < 20 or request.method != "GET" or (doc is not None and not doc["clv"]["orders"]):
        return build()  # no stored snapshot, or an empty state that follows the live sync
    shop = _shop(request)
    query = sorted((k, v) for k, values in request.GET.lists() if k != "id_token" for v in values)
    marketing = json.dumps((doc or {}).get("marketing"), sort_keys=True, default=str)
    day = timezone.now().date().isoformat()  # the picker's latest allowed as-of date moves daily
    raw = repr((page, doc_key, query, marketing, extra, shop.pk, shop.name, str(shop.updated_at), day))
    key = hashlib.sha256(raw.encode()).hexdigest()
    with _DOCS_LOCK:
        html = _PAGES.get(key)
        if html is not None:
            _PAGES.move_to_end(key)
    if html is not None:
        return HttpResponse(html.replace(TOKEN_SLOT, token))
    response = build()
    if response.status_code == 200 and not response.streaming:
        stored = response.content.decode().replace(token, TOKEN_SLOT)
        with _DOCS_LOCK:
            _PAGES[key] = stored
            while len(_PAGES) > _PAGES_MAX:
                _PAGES.popitem(last=False)
    return response


def _report(request: HttpRequest) -> tuple[PeriodForm, dict[str, Any]]:
    shop = _shop(request)
    form, as_of, days = _period(request, shop)
    return form, report_document_cached(shop=shop, as_of=as_of, period_days=days,
                                        settings_row=shop_settings(request, shop), request=request)


def _explain(doc: dict[str, Any], key: str) -> dict[str, Any]:
    entry = (doc.get("explain") or {}).get(key) or {}
    inputs = entry.get("inputs") or {}
    return {"formula": entry.get("formula", ""),
            "inputs": [(k.replace("_", " "), _input_text(v)) for k, v in inputs.items()]}


def _input_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if value is None:
        return "not set"
    return str(value)


CHAIN_COLUMNS = (("customers", "int"), ("orders", "int"), ("revenue", "money"), ("aov", "money"),
                 ("purchase_frequency", "num"), ("customer_value", "money"), ("lifespan_years", "num"),
                 ("clv", "money"))


def chain_row(label: str, name: str, node: dict[str, Any], path: str, *,
              customers: tuple[str, Any] | None = None) -> dict[str, Any]:
    """One row of a CLV chain table: each cell names its figure (``path.column``) in the document.

    ``customers`` replaces the customer cell's (key, value) where the row counts customers elsewhere.
    """
    cells = []
    for column, kind in CHAIN_COLUMNS:
        key, value = (customers if column == "customers" and customers else (f"{path}.{column}", node.get(column)))
        cells.append({"column": column, "key": key, "value": value, "shown": _fmt(kind, value, "")})
    count = int((customers[1] if customers else node.get("customers")) or 0)
    return {"label": label, "name": name, "cells": cells, "small": 0 < count < SMALL_GROUP}


def _empty_state(doc: dict[str, Any], shop: Shop) -> dict[str, Any] | None:
    """What to tell the merchant when the period holds no orders (often: the first backfill runs)."""
    if doc["clv"]["orders"]:
        return None
    try:
        from sync.selectors import sync_status
    except ImportError:  # pragma: no cover - sync always ships with the app
        return {"title": "No orders yet", "body": "Tenure has no orders for this period yet."}
    status = sync_status(shop=shop)
    if status.get("backfill"):
        progress = status["backfill"]
        return {"title": "Importing your order history",
                "body": "Tenure is reading your orders from Shopify. The reports fill in when the import finishes; "
                        "the Data page shows its progress.", "progress": progress}
    if not status.get("backfill_done"):
        return {"title": "Waiting for the first import",
                "body": "The first import of your orders has not finished yet. Open the Data page to see its state."}
    return {"title": "No orders in this period",
            "body": "Pick a longer period or an earlier as-of date with the period picker above."}


def _previous(request: HttpRequest, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The previous period's document; none while the shop has no orders yet, so an empty
    snapshot of it is not stored before the first import lands (the refresh task keeps it fresh)."""
    if not doc["clv"]["orders"] and not doc["retention"]["customers_at_start"]:
        return None
    shop = _shop(request)
    return report_document_cached(shop=shop, as_of=date.fromisoformat(doc["period"]["start"]),
                                  period_days=int(doc["period"]["days"]), with_marketing=False,
                                  settings_row=shop_settings(request, shop), request=request)


# --- pages ------------------------------------------------------------------------------------------------------

@require_GET
@embedded_view
def overview(request: HttpRequest) -> HttpResponse:
    form, doc = _report(request)
    previous = _previous(request, doc)
    return page_cached(request, "overview", doc, (previous or {}).get("_cache_key"),
                       lambda: _overview(request, form, doc, previous))


def _overview(request: HttpRequest, form: PeriodForm, doc: dict[str, Any],
              previous: dict[str, Any] | None) -> HttpResponse:
    shop = _shop(request)
    currency = doc["currency"]
    cards = []
    for key, label, kind, higher_better in OVERVIEW_CARDS:
        value, prev = _get(doc, key), (_get(previous, key) if previous else None)
        cards.append({"key": key, "label": label, "value": value, "shown": _fmt(kind, value, currency),
                      "previous": prev, "previous_shown": _fmt(kind, prev, currency),
                      "change": _change(kind, value, prev, higher_is_better=higher_better),
                      "explain": _explain(doc, key)})
    trend = doc.get("trend") or []
    labels = [row["month"] + ("*" if row.get("partial") else "") for row in trend]
    for card, (key, label, kind, _) in zip(cards, OVERVIEW_CARDS, strict=True):
        found = _card_trend_values(doc, key)
        if found is not None:
            card["trend"] = chart_cached(doc, f"spark:{key}", partial(_card_trend, doc, label, kind, found))
    revenue_chart = chart_cached(doc, "revenue_chart", lambda: charts.bar_chart(
        title="Revenue by month", labels=labels, label_name="Month", value_name=f"Revenue ({currency})",
        values=[float(row["revenue"]) if row["revenue"] is not None else None for row in trend],
        fmt=lambda v: money_compact(v, "")))
    orders_chart = chart_cached(doc, "orders_chart", lambda: charts.line_chart(
        title="Orders and customers by month", labels=labels, label_name="Month",
        series=[charts.Series("Orders", [row["orders"] for row in trend]),
                charts.Series("Customers", [row["customers"] for row in trend])]))
    ctx = _context(request, "overview", doc, form, cards=cards, previous=previous,
                   previous_labels=_period_labels(previous), revenue_chart=revenue_chart,
                   orders_chart=orders_chart, empty=_empty_state(doc, shop),
                   partial_month=any(row.get("partial") for row in trend))
    return render(request, "analytics/overview.html", ctx)


def _card_trend_values(doc: dict[str, Any], key: str) -> tuple[str, list[Any], list[Any]] | None:
    """A card's monthly series from the document: (what its points are, labels, values), or None for
    figures that only exist per period (CLV, the repeat purchase rate)."""
    # Whole months only: a month cut at the as-of date would show as a fall in every sum.
    trend = [row for row in doc.get("trend") or [] if not row.get("partial")]
    months = [row["month"] for row in trend]

    def per_customer(row: dict[str, Any], top: Any) -> float | None:
        return float(top) / row["customers"] if row["customers"] and top is not None else None

    monthly = {
        "clv.revenue": lambda r: float(r["revenue"]) if r["revenue"] is not None else None,
        "clv.orders": lambda r: r["orders"],
        "clv.customers": lambda r: r["customers"],
        "clv.aov": lambda r: float(r["aov"]) if r["aov"] is not None else None,
        "clv.purchase_frequency": lambda r: per_customer(r, r["orders"]),
        "clv.customer_value": lambda r: per_customer(r, r["revenue"]),
    }
    if key in monthly:
        return "by whole calendar month", months, [monthly[key](row) for row in trend]
    series = doc["retention"].get("series") or []
    if key in ("retention.crr", "retention.churn_rate"):
        field = "crr" if key == "retention.crr" else "churn_rate"
        return (f"of the {doc['period']['days']} days before each month start",
                [p["end"] for p in series], [p[field] for p in series])
    return None


def _card_trend(doc: dict[str, Any], label: str, kind: str, found: tuple[str, list[Any], list[Any]]) -> SafeString:
    what, points, values = found
    currency = doc["currency"]

    def fmt(v: Any) -> str:
        if v is None:
            return "–"
        if kind == "money":
            return money_compact(v, "")
        if kind == "pct":
            return f"{float(v):.1f}%"
        if kind == "int":
            return f"{int(v):,}"
        return f"{float(v):.2f}"

    name = f"{label} ({currency})" if kind == "money" else label
    return charts.sparkline(title=f"{label}, {what}", labels=points, values=values, fmt=fmt,
                            label_name="Month" if what.startswith("by") else "Period ending", value_name=name)


def _snapshot_for(shop: Shop, doc: dict[str, Any]) -> AnalyticsSnapshot | None:
    if doc.get("_snapshot_pk"):
        return AnalyticsSnapshot(pk=doc["_snapshot_pk"], shop=shop, as_of=date.fromisoformat(doc["as_of"]),
                                 settings_hash=doc["_settings_hash"], rows_id=doc.get("_rows_id"))
    params = selectors.report_params_for(shop=shop, as_of=date.fromisoformat(doc["as_of"]),
                                         period_days=int(doc["period"]["days"]), rfm_scale=int(doc["rfm"]["scale"]),
                                         rfm_method=doc["rfm"]["method"])
    return selectors.snapshot_find(shop=shop, params=params)


def customer_admin_url(shop: Shop, customer_id: int) -> str:
    handle = shop.domain.removesuffix(".myshopify.com")
    return f"https://admin.shopify.com/store/{handle}/customers/{customer_id}"


@require_GET
@embedded_view
def rfm(request: HttpRequest) -> HttpResponse:
    form, doc = _report(request)
    return page_cached(request, "rfm", doc, None, lambda: _rfm(request, form, doc))


def _rfm(request: HttpRequest, form: PeriodForm, doc: dict[str, Any]) -> HttpResponse:
    shop = _shop(request)
    currency = doc["currency"]
    k = int(doc["rfm"]["scale"])
    grid = {(c["r"], c["f"]): c for c in doc["rfm"].get("grid") or []}
    r_labels = [f"R{r}" for r in range(k, 0, -1)]
    f_labels = [f"F{f}" for f in range(1, k + 1)]
    cell = lambda r, f, key: grid.get((r, f), {}).get(key)  # noqa: E731

    def figures(key: str) -> list[list[tuple[str, Any] | None]]:
        return [[(f"rfm.grid.r={r},f={f}.{key}", cell(r, f, key)) if (r, f) in grid else None
                 for f in range(1, k + 1)] for r in range(k, 0, -1)]

    heat_customers = chart_cached(doc, "heat_customers", lambda: charts.heatmap(
        title="Customers by recency (R) and frequency (F) score", row_labels=r_labels, col_labels=f_labels,
        row_name="Recency", col_name="Frequency",
        values=[[cell(r, f, "customers") for f in range(1, k + 1)] for r in range(k, 0, -1)],
        figures=figures("customers")))
    heat_revenue = chart_cached(doc, "heat_revenue", lambda: charts.heatmap(
        title=f"Revenue ({currency}) by recency (R) and frequency (F) score", row_labels=r_labels,
        col_labels=f_labels, row_name="Recency", col_name="Frequency",
        values=[[float(cell(r, f, "revenue") or 0) for f in range(1, k + 1)] for r in range(k, 0, -1)],
        texts=[[money_compact(cell(r, f, "revenue"), "") for f in range(1, k + 1)] for r in range(k, 0, -1)],
        figures=figures("revenue")))
    groups = [chain_row(GROUP_LABELS[g], g, doc["rfm"]["groups"][g]["clv"], f"rfm.groups.{g}.clv",
                        customers=(f"rfm.groups.{g}.customers", doc["rfm"]["groups"][g]["customers"]))
              for g in GROUPS]
    crosstab = (doc.get("shopify") or {}).get("rfm_crosstab") or {}
    shopify_groups = sorted({name for row in crosstab.values() for name in row})
    cross_rows = [{"label": GROUP_LABELS[g],
                   "cells": [{"key": f"shopify.rfm_crosstab.{g}.{s}" if s in crosstab.get(g, {}) else "",
                              "value": crosstab.get(g, {}).get(s, 0)} for s in shopify_groups],
                   "total": sum(crosstab.get(g, {}).values())} for g in GROUPS]

    # The customer list: one page of the snapshot's scored customers, sorted and filtered in SQL.
    group = request.GET.get("group", "")
    group = group if group in GROUPS else ""
    sort_key = request.GET.get("sort", "total")
    sort_key = sort_key if sort_key in CUSTOMER_SORTS else "total"
    direction = "asc" if request.GET.get("dir") == "asc" else "desc"
    snapshot = _snapshot_for(shop, doc)
    rows: list[Any] = []
    total_rows = doc["rfm"]["groups"][group]["customers"] if group else int(doc["clv"]["customers"] or 0)
    # Django's paging over the document's count: junk is page 1, a number past either end the last page.
    paginator = Paginator(range(total_rows), CUSTOMERS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page")).number
    if snapshot is not None:
        column = CUSTOMER_SORTS[sort_key][0]
        # Customers without a prediction sort last either way.
        primary = F(column).desc(nulls_last=True) if direction == "desc" else F(column).asc(nulls_last=True)
        order = (primary, F("customer_shopify_id").asc())
        qs = selectors.customer_scores(snapshot=snapshot)
        if group:
            qs = qs.filter(rfm_group=group)
        start = (page - 1) * CUSTOMERS_PER_PAGE
        rows = list(qs.order_by(*order).values(
            "customer_shopify_id", "recency_days", "frequency", "monetary", "r", "f", "m", "total", "rfm_group",
            "segment", "shopify_rfm_group", "orders_lifetime", "spend_lifetime", "predicted_clv",
        )[start:start + CUSTOMERS_PER_PAGE])
    for row in rows:
        row["admin_url"] = customer_admin_url(shop, row["customer_shopify_id"])
    pages = paginator.num_pages
    list_params: dict[str, Any] = {"group": group, "sort": sort_key, "dir": direction}
    sort_links = []
    for key, (_, label) in CUSTOMER_SORTS.items():
        next_dir = "asc" if key == sort_key and direction == "desc" else "desc"
        sort_links.append({"key": key, "label": label, "url": page_url(request, "analytics:rfm", group=group,
                                                                         sort=key, dir=next_dir) + "#customers",
                           "current": key == sort_key,
                           "aria_sort": ("descending" if direction == "desc" else "ascending")
                           if key == sort_key else "none"})
    predictive = doc.get("predictive") or {}
    ctx = _context(
        request, "rfm", doc, form, heat_customers=heat_customers, heat_revenue=heat_revenue, groups=groups,
        shopify_groups=shopify_groups, cross_rows=cross_rows, customers=rows, group=group, sort_key=sort_key,
        direction=direction, page_number=page, pages=pages, total_rows=total_rows,
        sort_links={s["key"]: s for s in sort_links}, list_params=list_params,
        prev_url=page_url(request, "analytics:rfm", page=page - 1, **list_params) + "#customers"
        if page > 1 else None,
        next_url=page_url(request, "analytics:rfm", page=page + 1, **list_params) + "#customers"
        if page < pages else None,
        csv_url=page_url(request, "analytics:rfm_csv", group=group), show_predicted=bool(predictive.get("available")),
        segments=_segments(doc), explain=_explain(doc, "rfm"), group_labels=GROUP_LABELS,
        empty=_empty_state(doc, shop),
    )
    return render(request, "analytics/rfm.html", ctx)


def _segments(doc: dict[str, Any]) -> list[dict[str, Any]]:
    counts = doc["rfm"].get("segments") or {}
    rules = {r["name"]: r for r in doc["rfm"].get("segment_rules") or []}
    return [{"name": name, "customers": n, "rule": rules.get(name)} for name, n in counts.items()]


@require_GET
@embedded_view  # type: ignore[arg-type]  # a streamed response carries the same frame headers
def rfm_csv(request: HttpRequest) -> HttpResponseBase:
    shop = _shop(request)
    _, as_of, days = _period(request, shop)
    doc_as_of = as_of or selectors.shop_today(shop=shop)
    group = request.GET.get("group", "")
    group = group if group in GROUPS else ""
    params = report_params(shop_settings(request, shop), shop=shop, as_of=doc_as_of, period_days=days)
    lines = export.rfm_csv(shop=shop, params=params, group=group or None)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    handle = shop.domain.removesuffix(".myshopify.com")
    name = f"tenure-rfm-{handle}-{doc_as_of.isoformat()}{f'-{group}' if group else ''}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@embedded_view
def clv(request: HttpRequest) -> HttpResponse:
    form, doc = _report(request)
    return page_cached(request, "clv", doc, None, lambda: _clv(request, form, doc))


def _clv(request: HttpRequest, form: PeriodForm, doc: dict[str, Any]) -> HttpResponse:
    shop = _shop(request)
    currency = doc["currency"]
    chain_rows = [chain_row("All customers", "all", doc["clv"], "clv")]
    chain_rows += [chain_row(f"RFM {GROUP_LABELS[g].lower()} group", g, doc["rfm"]["groups"][g]["clv"],
                             f"rfm.groups.{g}.clv") for g in GROUPS]
    chain_rows += [chain_row(STAGE_LABELS[s], s, doc["lifecycle"][s]["clv"], f"lifecycle.{s}.clv")
                   for s in STAGE_LABELS if s in doc["lifecycle"]]
    cohorts = []
    for row in doc.get("cohorts") or []:
        values = row["revenue_per_customer"]
        cohorts.append({"cohort": row["cohort"], "customers": row["customers"],
                        "small": row.get("small_sample"),
                        "m3": values[3] if len(values) > 3 else None, "m6": values[6] if len(values) > 6 else None,
                        "m12": values[12] if len(values) > 12 else None,
                        "to_date": values[-1] if values and row["customers"] else None})
    cohort_chart = chart_cached(doc, "cohort_chart", lambda: charts.bar_chart(
        title=f"Revenue per customer to date, by first-order month ({currency})",
        labels=[c["cohort"] for c in cohorts], label_name="Cohort", value_name=f"Revenue per customer ({currency})",
        values=[float(c["to_date"]) if c["to_date"] is not None else None for c in cohorts],
        fmt=lambda v: money_compact(v, "")))
    predictive = doc.get("predictive")
    backtest_chart = None
    if predictive and predictive.get("available") and (predictive.get("backtest") or {}).get("available"):
        weekly = predictive["backtest"].get("weekly") or []
        backtest_chart = chart_cached(doc, "backtest_chart", lambda: charts.line_chart(
            title="Backtest: cumulative repeat purchases, actual against predicted",
            labels=[w["week_end"] for w in weekly], label_name="Week ending",
            series=[charts.Series("Actual", [w["actual_cumulative"] for w in weekly]),
                    charts.Series("Predicted", [w["predicted_cumulative"] for w in weekly])]))
    pred_groups: list[dict[str, Any]] = []
    buckets: list[dict[str, Any]] = []
    bucket_chart = None
    if predictive and predictive.get("available"):
        groups = predictive.get("groups") or {}
        pred_groups = [{"name": g, "label": label, "totals": groups[g]}
                       for g, label in [*((g, f"RFM {GROUP_LABELS[g].lower()} group") for g in GROUPS),
                                        (NOT_IN_RFM, "No order in the period (not scored)")]
                       if g in groups]
        backtest = predictive.get("backtest") or {}
        if backtest.get("available"):
            buckets = backtest.get("by_frequency") or []
            bucket_chart = chart_cached(doc, "backtest_buckets", lambda: charts.line_chart(
                title="Backtest: repeat purchases per customer in the holdout, by purchases in calibration",
                labels=[b["frequency"] for b in buckets], label_name="Repeat purchases in calibration",
                series=[charts.Series("Actual", [b["actual_mean"] for b in buckets]),
                        charts.Series("Predicted", [b["predicted_mean"] for b in buckets])],
                fmt=lambda v: "–" if v is None else f"{float(v):.2f}"))
    ctx = _context(request, "clv", doc, form, chain_rows=chain_rows, cohorts=cohorts, cohort_chart=cohort_chart,
                   predictive=predictive, backtest_chart=backtest_chart, pred_groups=pred_groups,
                   buckets=buckets, bucket_chart=bucket_chart, explain_clv=_explain(doc, "clv.clv"),
                   explain_lifespan=_explain(doc, "clv.lifespan_years"), empty=_empty_state(doc, shop))
    return render(request, "analytics/clv.html", ctx)


def _retention_series(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """CRR and churn of the periods ending at each of the last 24 month starts (from the order history)."""
    return [{"as_of": p["end"], "crr": p["crr"], "churn": p["churn_rate"]}
            for p in doc["retention"].get("series") or []]


def _gap_label(lo: int, hi: int | None) -> str:
    return f"{lo}+ days" if hi is None else f"{lo}–{hi} days"


@require_GET
@embedded_view
def retention(request: HttpRequest) -> HttpResponse:
    form, doc = _report(request)
    series = _retention_series(doc)
    return page_cached(request, "retention", doc, None, lambda: _retention(request, form, doc, series))


def _retention(request: HttpRequest, form: PeriodForm, doc: dict[str, Any],
               series: list[dict[str, Any]]) -> HttpResponse:
    shop = _shop(request)
    currency = doc["currency"]
    over_time = charts.line_chart(
        title="Customer retention rate and churn rate of the period ending each month",
        labels=[s["as_of"] for s in series], label_name="Period ending",
        series=[charts.Series("CRR %", [s["crr"] for s in series]),
                charts.Series("Churn %", [s["churn"] for s in series])],
        fmt=lambda v: "–" if v is None else f"{float(v):.1f}")
    cohorts = [c for c in doc.get("cohorts") or []]
    width = max((len(c["retention"]) for c in cohorts), default=0)
    months = [f"M{m}" for m in range(width)]
    cohort_labels = [f"{c['cohort']} (n={c['customers']}{', small' if c.get('small_sample') else ''})"
                     for c in cohorts]
    retention_heat = chart_cached(doc, "retention_heat", lambda: charts.heatmap(
        title="Cohort retention: share of each first-order month's customers ordering in month M (%)",
        row_labels=cohort_labels, col_labels=months, row_name="Cohort", col_name="Month",
        values=[[v for v in c["retention"]] for c in cohorts],
        texts=[["–" if v is None else f"{v:.0f}" for v in c["retention"]] for c in cohorts],
        cell_w=34, cell_h=22, label_w=150))
    revenue_heat = chart_cached(doc, "revenue_heat", lambda: charts.heatmap(
        title=f"Cumulative revenue per cohort customer ({currency})", row_labels=cohort_labels, col_labels=months,
        row_name="Cohort", col_name="Month",
        values=[[None if v is None else float(v) for v in c["revenue_per_customer"]] for c in cohorts],
        texts=[[money_compact(v, "") for v in c["revenue_per_customer"]] for c in cohorts],
        cell_w=40, cell_h=22, label_w=150))
    hist = doc["retention"].get("gap_histogram") or []
    gap_chart = chart_cached(doc, "gap_chart", lambda: charts.histogram(
        title="Time between orders", bins=[_gap_label(b["min_days"], b["max_days"]) for b in hist],
        counts=[b["gaps"] for b in hist], value_name="Gaps between consecutive orders", bin_name="Days apart"))
    keys = ("retention.customers_at_start", "retention.customers_at_end", "retention.new_customers",
            "retention.lost_customers", "retention.crr", "retention.churn_rate", "retention.repeat_purchase_rate",
            "retention.repeat_purchase_rate_lifetime", "retention.median_days_between_orders")
    figures = [{"key": key, "value": _get(doc, key), "explain": _explain(doc, key)} for key in keys]
    ctx = _context(request, "retention", doc, form, over_time=over_time, retention_heat=retention_heat,
                   revenue_heat=revenue_heat, gap_chart=gap_chart, figures=figures, series=series,
                   empty=_empty_state(doc, shop))
    return render(request, "analytics/retention.html", ctx)


@require_GET
@embedded_view
def lifecycle(request: HttpRequest) -> HttpResponse:
    form, doc = _report(request)
    return page_cached(request, "lifecycle", doc, None, lambda: _lifecycle(request, form, doc))


def _lifecycle(request: HttpRequest, form: PeriodForm, doc: dict[str, Any]) -> HttpResponse:
    shop = _shop(request)
    currency = doc["currency"]
    stages = [{"name": s, "label": STAGE_LABELS[s], **doc["lifecycle"][s],
               "small": 0 < int(doc["lifecycle"][s]["customers"] or 0) < SMALL_GROUP}
              for s in STAGE_LABELS if s in doc["lifecycle"]]
    years = sorted({row["year"] for s in stages for row in s.get("by_year") or []})
    by_year = {s["name"]: {row["year"]: row for row in s.get("by_year") or []} for s in stages}

    def series(key: str) -> list[charts.Series]:
        out = []
        for s in stages:
            values: list[charts.Number] = []
            for y in years:
                v = by_year[s["name"]].get(y, {}).get(key)
                values.append(None if v is None else float(v))
            out.append(charts.Series(s["label"], values))
        return out

    labels = [str(y) for y in years]
    aov_chart = chart_cached(doc, "aov_chart", lambda: charts.line_chart(
        title=f"Exchange value (average order value, {currency}) by year and stage", labels=labels,
        label_name="Year", series=series("aov"), fmt=lambda v: money_compact(v, "")))
    volume_chart = chart_cached(doc, "volume_chart", lambda: charts.line_chart(
        title="Transaction volume (orders per customer) by year and stage", labels=labels, label_name="Year",
        series=series("orders_per_customer"), fmt=lambda v: "–" if v is None else f"{float(v):.2f}"))
    customers_chart = chart_cached(doc, "customers_chart", lambda: charts.bar_chart(
        title="Customers per lifecycle stage", labels=[s["label"] for s in stages],
        values=[s["customers"] for s in stages], value_name="Customers", label_name="Stage"))
    ctx = _context(request, "lifecycle", doc, form, stages=stages, aov_chart=aov_chart, volume_chart=volume_chart,
                   customers_chart=customers_chart, unobservable=doc.get("lifecycle_unobservable") or {},
                   explain=_explain(doc, "lifecycle"), empty=_empty_state(doc, shop))
    return render(request, "analytics/lifecycle.html", ctx)


@csrf_exempt  # authenticated by the session token in the action URL; no cookies reach the admin iframe
@require_http_methods(["GET", "POST"])
@embedded_view
def marketing(request: HttpRequest) -> HttpResponse:
    shop = _shop(request)
    form, doc = _report(request)
    if request.method == "GET":
        return page_cached(request, "marketing", doc, None, lambda: _marketing(request, form, doc, None))
    mform = MarketingForm(request.POST)
    _, errors = services.marketing_inputs_update(shop=shop, data=request.POST.dict())
    memo_forget()
    if not errors:
        return HttpResponseRedirect(page_url(request, "analytics:marketing", saved=1))
    errors_attach(mform, errors)
    return _marketing(request, form, doc, mform)


def _marketing(request: HttpRequest, form: PeriodForm, doc: dict[str, Any],
               invalid: MarketingForm | None) -> HttpResponse:
    if invalid is not None:
        mform = invalid
    else:
        entered = doc["marketing"].get("inputs_period") or {}
        mform = MarketingForm(initial={
            "period_start": entered.get("start") or doc["period"]["start"],
            "period_end": entered.get("end") or doc["period"]["end"],
            "acquisition_spend": doc["marketing"].get("acquisition_spend") or "",
            "retention_spend": doc["marketing"].get("retention_spend") or "",
            "conversion_rate": "" if doc["marketing"].get("conversion_rate") is None
            else doc["marketing"]["conversion_rate"],
        })
    keys = ("marketing.cac", "marketing.ltv_to_cac", "marketing.return_per_customer", "marketing.max_cost_per_click",
            "marketing.retention_cost_per_customer")
    figures = {key.split(".")[1]: {"key": key, "value": _get(doc, key), "explain": _explain(doc, key)}
               for key in keys}
    ctx = _context(request, "marketing", doc, form, mform=mform, figures=figures, mk=doc["marketing"],
                   saved=request.GET.get("saved") == "1", form_action=page_url(request, "analytics:marketing"),
                   empty=_empty_state(doc, _shop(request)))
    # Invalid input is re-rendered with field errors as a 200: a 4xx would log the URL, session token included.
    return render(request, "analytics/marketing.html", ctx)


def shop_time(value: datetime | None, zone: ZoneInfo) -> str | None:
    """A moment as the merchant reads it: in the shop's zone, to the minute, with the zone's abbreviation."""
    if value is None:
        return None
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _status(shop: Shop) -> dict[str, Any]:
    from sync.selectors import sync_status

    return sync_status(shop=shop)


def _status_json(status: dict[str, Any]) -> dict[str, Any]:
    backfill = status.get("backfill")

    def iso(v: Any) -> Any:
        return v.isoformat() if hasattr(v, "isoformat") else v

    return {
        "backfill": None if not backfill else {k: iso(v) for k, v in backfill.items()},
        "backfill_done": status.get("backfill_done"),
        "last_sync_at": iso(status.get("last_sync_at")),
        "next_sync_at": iso(status.get("next_sync_at")),
        "history_limited": status.get("history_limited"),
    }


@require_GET
@embedded_view
def data(request: HttpRequest) -> HttpResponse:
    shop = _shop(request)
    _, doc = _report(request)
    # Read at most once a second per process; the progress bar's JSON endpoint is always live.
    status = memo(request, ("status", shop.pk), lambda: _status(shop), seconds=STATUS_SECONDS)
    rec = (doc.get("shopify") or {}).get("reconciliation") or {}

    zone = ZoneInfo(selectors.shop_zone(shop=shop))
    hooks = status.get("webhooks_24h") or {}
    times = {"last_sync": shop_time(status.get("last_sync_at"), zone),
             "next_sync": shop_time(status.get("next_sync_at"), zone),
             "last_webhook": shop_time(hooks.get("last_received_at"), zone)}

    def build() -> HttpResponse:
        ctx = _context(request, "data", doc, None, status=status, times=times, rec=rec,
                       causes=rec.get("causes") or {},
                       status_url=page_url(request, "analytics:data_status", with_period=False),
                       scopes=sorted(shop.granted_scopes))
        return render(request, "analytics/data.html", ctx)

    # The live sync status is part of the key (its read time is not), so the page follows it.
    live = repr(sorted((k, repr(v)) for k, v in status.items() if k != "as_of"))
    return page_cached(request, "data", doc, (live, shop.scopes), build)


@require_GET
@embedded_view
def data_status(request: HttpRequest) -> HttpResponse:
    """JSON for the Data page's progress bar (fetched with the Bearer session token)."""
    response = JsonResponse(_status_json(_status(_shop(request))))
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt  # authenticated by the session token in the action URL; no cookies reach the admin iframe
@require_http_methods(["GET", "POST"])
@embedded_view
def settings_page(request: HttpRequest) -> HttpResponse:
    shop = _shop(request)
    if request.method == "POST":
        sform = SettingsForm(request.POST)
        data = request.POST.dict()
        if "lifespan_override_years" in data and not data["lifespan_override_years"].strip():
            data["lifespan_override_years"] = ""
        _, errors = services.settings_update(shop=shop, data=data)
        memo_forget()
        if not errors:
            _refresh_later(shop)
            return HttpResponseRedirect(page_url(request, "analytics:settings", with_period=False, saved=1))
        errors_attach(sform, errors)
        return _settings_render(request, sform)
    current = shop_settings(request, shop)
    shown = [(name, repr(getattr(current, name))) for name in SettingsForm.base_fields] + [
        ("updated_at", str(current.updated_at))]
    return page_cached(request, "settings", None, shown,
                       lambda: _settings_render(request, SettingsForm.from_settings(current)))


def _settings_render(request: HttpRequest, sform: SettingsForm) -> HttpResponse:
    # Invalid input is re-rendered with field errors as a 200: a 4xx would log the URL, session token included.
    ctx = _context(request, "settings", None, None, sform=sform, saved=request.GET.get("saved") == "1",
                   form_action=page_url(request, "analytics:settings", with_period=False))
    return render(request, "analytics/settings.html", ctx)


def _refresh_later(shop: Shop) -> None:
    """New settings mean a new snapshot: have the worker compute it soon (after this commit)."""
    from analytics.tasks import refresh_shop_later

    def enqueue() -> None:
        try:
            refresh_shop_later.delay(shop.pk)
        except Exception:  # noqa: BLE001 - the broker being down only delays the refresh to the page load
            return

    transaction.on_commit(enqueue)
