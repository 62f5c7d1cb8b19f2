"""The app's routes plus one embedded page that shows a shop's own data (tests only)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.urls import urlpatterns as app_urlpatterns
from shops.auth import embedded_view
from sync.models import Order


@embedded_view
def orders_view(request: HttpRequest) -> JsonResponse:
    shop = request.shop  # type: ignore[attr-defined]
    return JsonResponse({"shop": shop.domain,
                         "orders": list(Order.objects.filter(shop=shop).values_list("shopify_id", flat=True))})


urlpatterns = [path("t/orders", orders_view), *app_urlpatterns]
