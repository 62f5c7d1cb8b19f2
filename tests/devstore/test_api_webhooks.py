"""webhookSubscriptionCreate / webhookSubscriptionDelete over HTTP.

https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/webhookSubscriptionCreate
https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/webhookSubscriptionDelete
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.devstore.gql import Api, api_shop

CREATE = """
mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri format includeFields }
    userErrors { field message }
  }
}
"""
DELETE = """
mutation($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}
"""


@pytest.fixture
def shop() -> Iterator[Api]:
    with api_shop("hooks", customers=10, months=3) as api:
        yield api


def test_create_list_and_delete(shop: Api) -> None:
    status, body = shop.gql(CREATE, {"topic": "ORDERS_CREATE",
                                     "sub": {"uri": "https://app.example.com/webhooks", "format": "JSON"}})
    assert status == 200
    created = body["data"]["webhookSubscriptionCreate"]
    assert created["userErrors"] == []
    sub = created["webhookSubscription"]
    assert sub["id"].startswith("gid://shopify/WebhookSubscription/")
    assert sub == {"id": sub["id"], "topic": "ORDERS_CREATE", "uri": "https://app.example.com/webhooks",
                   "format": "JSON", "includeFields": []}
    # What the platform delivers to: the REST topic name next to the subscription.
    (stored,) = shop.store.webhook_subscriptions
    assert stored["topic_rest"] == "orders/create"
    assert stored["uri"] == "https://app.example.com/webhooks"

    status, body = shop.gql("{ webhookSubscriptions(first: 10) { nodes { id topic } } }")
    assert body["data"]["webhookSubscriptions"]["nodes"] == [{"id": sub["id"], "topic": "ORDERS_CREATE"}]

    status, body = shop.gql(CREATE, {"topic": "ORDERS_CREATE", "sub": {"uri": "https://app.example.com/webhooks"}})
    assert body["data"]["webhookSubscriptionCreate"]["userErrors"] == [
        {"field": ["webhookSubscription", "uri"], "message": "Address for this topic has already been taken"}
    ]

    status, body = shop.gql(DELETE, {"id": sub["id"]})
    assert body["data"]["webhookSubscriptionDelete"] == {"deletedWebhookSubscriptionId": sub["id"], "userErrors": []}
    assert shop.store.webhook_subscriptions == []
    status, body = shop.gql(DELETE, {"id": sub["id"]})
    assert body["data"]["webhookSubscriptionDelete"]["deletedWebhookSubscriptionId"] is None
    assert body["data"]["webhookSubscriptionDelete"]["userErrors"][0]["field"] == ["id"]


def test_invalid_address_and_topic(shop: Api) -> None:
    status, body = shop.gql(CREATE, {"topic": "REFUNDS_CREATE", "sub": {"uri": "not a url"}})
    assert body["data"]["webhookSubscriptionCreate"] == {
        "webhookSubscription": None,
        "userErrors": [{"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}],
    }
    status, body = shop.gql(CREATE, {"topic": "ORDERS_EXPLODED", "sub": {"uri": "https://x.example"}})
    assert status == 200
    # graphql-ruby names the variable in the message and the bad value in the problem.
    assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert body["errors"][0]["extensions"]["problems"][0]["explanation"].startswith(
        'Expected "ORDERS_EXPLODED" to be one of: '
    )
