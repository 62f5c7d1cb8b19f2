from sync import services
from sync.models import Order, SyncRun
from tests.sync.exact import mismatches


def test_backfill_smoke(devshop, transactional_db):
    run = services.backfill_create(shop=devshop.shop)
    assert services.backfill_run(run_id=run.pk) == "succeeded", SyncRun.objects.get(pk=run.pk).error
    assert Order.objects.count() > 100
    problems = mismatches(devshop.shop, devshop.truth())
    assert not problems, "\n".join(problems[:30])
    events = devshop.live(60)
    for topic, payload in events[::2]:
        services.webhook_apply(shop=devshop.shop, topic=topic, payload=payload)
    inc = services.incremental_run(shop=devshop.shop)
    assert inc is not None and inc.status == "succeeded", inc and inc.error
    print(inc.state)
    problems = mismatches(devshop.shop, devshop.truth())
    assert not problems, "\n".join(problems[:30])


def test_webhooks_alone_match_orders(devshop, transactional_db):
    run = services.backfill_create(shop=devshop.shop)
    services.backfill_run(run_id=run.pk)
    events = devshop.live(120)
    topics = {t for t, _ in events}
    for topic, payload in events:
        services.webhook_apply(shop=devshop.shop, topic=topic, payload=payload)
    # duplicates and out-of-order replays change nothing
    for topic, payload in reversed(events):
        services.webhook_apply(shop=devshop.shop, topic=topic, payload=payload)
    problems = [p for p in mismatches(devshop.shop, devshop.truth()) if not p.startswith("customer")]
    assert not problems, (topics, "\n".join(problems[:30]))
