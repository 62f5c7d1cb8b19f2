from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sync.models import SyncRun
from tests.sync.exact import mismatches


def test_sync_command_backfills_with_a_progress_bar_then_syncs_incrementally(devshop, transactional_db):
    out = StringIO()
    call_command("sync", "acme", stdout=out)
    text = out.getvalue()
    assert "backfill [" in text
    assert "100.0%" in text
    assert "backfill done" in text
    assert not mismatches(devshop.shop, devshop.truth())
    devshop.live(30)
    out = StringIO()
    call_command("sync", "acme.myshopify.com", stdout=out)
    assert "incremental done" in out.getvalue()
    assert not mismatches(devshop.shop, devshop.truth())
    assert SyncRun.objects.filter(kind="incremental", status="succeeded").count() == 1


def test_sync_command_refuses_unknown_shop(transactional_db):
    with pytest.raises(CommandError, match="no shop"):
        call_command("sync", "nobody")
