"""`manage.py report <shop-domain> --as-of YYYY-MM-DD ...`: the METRICS.md document as JSON."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.services import report_document
from shops.models import Shop


class Command(BaseCommand):
    help = "Print the analytics report document (docs/METRICS.md) for one shop as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shop", help="the shop's myshopify domain")
        parser.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD (default: today in the shop's zone)")
        parser.add_argument("--period-days", dest="period_days", type=int)
        parser.add_argument("--rfm-scale", dest="rfm_scale", type=int, choices=[3, 5])
        parser.add_argument("--rfm-method", dest="rfm_method", choices=["quantile", "range"])
        parser.add_argument("--customers", action="store_true",
                            help="include the per-customer rows: RFM scores and, under predictive, predictions")
        parser.add_argument("--indent", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        domain = options["shop"].strip().lower()
        if "." not in domain:
            domain = f"{domain}.myshopify.com"
        shop = Shop.objects.filter(domain=domain).first()
        if shop is None:
            raise CommandError(f"no shop {domain}")
        as_of = None
        if options["as_of"]:
            try:
                as_of = date.fromisoformat(options["as_of"])
            except ValueError as exc:
                raise CommandError("--as-of must be YYYY-MM-DD") from exc
        period_days = options["period_days"]
        if period_days is not None and not 7 <= period_days <= 3660:
            raise CommandError("--period-days must be from 7 to 3660")
        doc = report_document(shop=shop, as_of=as_of, period_days=period_days, rfm_scale=options["rfm_scale"],
                              rfm_method=options["rfm_method"], include_customers=options["customers"])
        self.stdout.write(json.dumps(doc, indent=options["indent"], ensure_ascii=False))
