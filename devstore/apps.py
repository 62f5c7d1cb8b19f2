from django.apps import AppConfig


class DevstoreConfig(AppConfig):
    name = "devstore"
    default_auto_field = "django.db.models.BigAutoField"
