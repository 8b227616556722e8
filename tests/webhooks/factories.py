"""Webhook rows as the API and the delivery engine leave them."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from marqetfi.core.crypto import encrypt
from marqetfi.core.models import Event
from tests.accounts.factories import UserFactory
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRecovery
from webhooks.signing import secret_new


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEndpoint

    user = factory.SubFactory(UserFactory)
    url = factory.Sequence(lambda n: f"https://93.184.216.34/hooks/{n}")
    secret_encrypted = factory.LazyFunction(lambda: encrypt(secret_new()))


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    user = factory.SubFactory(UserFactory)
    seq = factory.Sequence(lambda n: n + 1)
    type = "order.filled"
    data = factory.LazyFunction(dict)


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    user = factory.LazyAttribute(lambda o: o.endpoint.user)
    event = factory.LazyAttribute(lambda o: EventFactory(user=o.user, type=o.event_type))
    event_type = "order.filled"
    event_seq = factory.LazyAttribute(lambda o: o.event.seq)
    webhook_id = factory.LazyAttribute(lambda o: f"msg_{o.event.pk.hex}")
    body = "{}"


class WebhookAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookAttempt

    delivery = factory.SubFactory(WebhookDeliveryFactory)
    number = factory.Sequence(lambda n: n + 1)
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=1))
    latency_ms = 120
    status_code = 200
    succeeded = True


class WebhookRecoveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookRecovery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    user = factory.LazyAttribute(lambda o: o.endpoint.user)
    since = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
