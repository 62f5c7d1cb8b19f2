"""Property-based fuzzing of POST /webhooks: a correctly signed delivery, whatever its body or
headers, is answered 200 or 400 and recorded accordingly; never a 500."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shops import webhooks
from shops.models import WebhookEvent
from shops.services import HANDLERS
from tests.shops.conftest import WsgiClient, post_webhook

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """An object holding arrays and objects nested 1 to 1,100 levels deep (orjson reads 1,024)."""
    depth = draw(st.integers(min_value=1, max_value=1100))
    opens = draw(st.lists(st.booleans(), min_size=depth, max_size=depth))
    head = "".join('{"k": ' if is_object else "[" for is_object in opens)
    tail = "".join("}" if is_object else "]" for is_object in reversed(opens))
    return ('{"id": 1, "a": ' + head + "0" + tail + "}").encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=10), json_values, max_size=6).map(
        lambda v: json.dumps(v, ensure_ascii=False).encode()),
    nested(),
)
# What an HTTP server hands on as a header value: latin-1 text without control characters.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_categories=["Cc"]),
                      max_size=120)


@pytest.fixture(params=["django", "wsgi"])
def client(request: pytest.FixtureRequest, client):
    return client if request.param == "django" else WsgiClient()


@pytest.fixture(autouse=True)
def broker_down(monkeypatch: pytest.MonkeyPatch):
    webhooks.publisher.flush()
    monkeypatch.setattr(webhooks.publisher, "url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(webhooks.publisher, "_connection", None)
    yield
    webhooks.publisher.flush()
    webhooks.publisher._connection = None
    webhooks.publisher._paused_until = 0.0


@FUZZ
@given(body=bodies, topic=st.sampled_from([*HANDLERS, "products/create"]) | header_text, id_prefix=header_text)
def test_any_signed_delivery_is_answered_and_recorded(client, shop_a, body: bytes, topic: str,
                                                      id_prefix: str) -> None:
    webhook_id = f"{id_prefix}{uuid.uuid4()}"
    response = post_webhook(client, None, raw=body, topic=topic, shop=shop_a.domain, webhook_id=webhook_id)
    assert response.status_code in (200, 400)
    event = WebhookEvent.objects.filter(webhook_id=webhook_id).first()
    if event is None:  # headers refused before anything is recorded
        assert response.status_code == 400
        assert len(webhook_id) > 255 or not topic or len(topic) > 100
    elif response.status_code == 400:
        assert (event.status, event.payload) == ("rejected", None)
        assert event.outcome
    else:
        assert event.status in ("received", "dropped")
        assert isinstance(event.payload, dict)
