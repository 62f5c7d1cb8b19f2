from django.contrib import admin

from shops.admin import ReadOnlyAdmin
from sync.models import SyncRun


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "shop", "kind", "status", "objects_written", "object_count", "started_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["shop__domain"]
