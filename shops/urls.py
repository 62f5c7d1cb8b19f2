from django.urls import path

from shops import views, webhooks

app_name = "shops"

urlpatterns = [
    path("", views.app_home, name="home"),
    path("auth/install", views.auth_install, name="auth_install"),
    path("auth/callback", views.auth_callback, name="auth_callback"),
    path("auth/session-token", views.session_token_bounce, name="session_token"),
    path("webhooks", webhooks.webhook_receive, name="webhooks"),
]
