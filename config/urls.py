"""Top-level routes; each app owns its own urls module."""

from django.contrib import admin
from django.urls import include, path

from config.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("shops.urls")),
    path("", include("analytics.urls")),
]
