from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("app/overview", views.overview, name="overview"),
    path("app/rfm", views.rfm, name="rfm"),
    path("app/rfm.csv", views.rfm_csv, name="rfm_csv"),
    path("app/clv", views.clv, name="clv"),
    path("app/retention", views.retention, name="retention"),
    path("app/lifecycle", views.lifecycle, name="lifecycle"),
    path("app/marketing", views.marketing, name="marketing"),
    path("app/data", views.data, name="data"),
    path("app/data/status.json", views.data_status, name="data_status"),
    path("app/settings", views.settings_page, name="settings"),
]
