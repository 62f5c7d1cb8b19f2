from django.contrib import admin
from django.http import HttpRequest

from shops.models import CustomerDataReport, Shop, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff may look; changing synced or received data by hand would break it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Shop)
class ShopAdmin(admin.ModelAdmin):
    list_display = ["domain", "name", "state", "currency", "iana_timezone", "plan", "installed_at",
                    "needs_reauth_reason"]
    list_filter = ["state"]
    search_fields = ["domain", "name"]
    # Credentials are deliberately absent: tokens are never shown, even encrypted.
    # Everything Shopify owns or the install flow sets is read-only: a hand-edited currency or
    # time zone would silently re-bucket every figure, a hand-set state would skip uninstall's
    # clean-up. Only the two "why is this shop stuck" notes stay editable; the app sets them
    # again if the problem persists.
    readonly_fields = ["domain", "shopify_gid", "name", "currency", "iana_timezone", "plan", "scopes", "state",
                       "installed_at", "uninstalled_at", "redacted_at", "created_at", "updated_at"]
    fields = [*readonly_fields, "needs_reauth_reason", "paused_reason"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # shops come from installs, with a credential


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["webhook_id", "topic", "shop_domain", "status", "outcome", "received_at", "processed_at"]
    list_filter = ["status", "topic"]
    search_fields = ["webhook_id", "shop_domain"]
    exclude = ["payload"]


@admin.register(CustomerDataReport)
class CustomerDataReportAdmin(ReadOnlyAdmin):
    """customers/data_request answers: staff send `report` to the merchant."""

    list_display = ["shop", "customer_shopify_id", "data_request_id", "created_at"]
    search_fields = ["shop__domain", "customer_shopify_id", "data_request_id"]
    readonly_fields = ["shop", "customer_shopify_id", "data_request_id", "webhook_event", "created_at", "report"]
