"""The operators' view of the catalogue: pairs with each venue's listing inline, read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pricing.models import TradingPair
from tests.pricing.factories import PairListingFactory, TradingPairFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, django_user_model):
    operator = django_user_model.objects.create_superuser(
        email="ops@marqetfi.local", password="ops-Password-1"
    )
    client.force_login(operator)
    return client


def test_a_pair_page_shows_every_venue_listing(operator_client):
    pair = TradingPairFactory(symbol="BTCUSD")
    PairListingFactory(pair=pair, provider="alpha", venue_symbol="1")
    PairListingFactory(pair=pair, provider="beta", venue_symbol="BTC-USD")

    changelist = operator_client.get(reverse("admin:pricing_tradingpair_changelist"))
    page = operator_client.get(reverse("admin:pricing_tradingpair_change", args=[pair.pk]))

    assert changelist.status_code == 200 and "alpha, beta" in changelist.content.decode()
    assert page.status_code == 200
    assert "BTC-USD" in page.content.decode()


def test_operators_switch_a_pair_off(operator_client):
    pair = TradingPairFactory(symbol="BTCUSD")
    url = reverse("admin:pricing_tradingpair_change", args=[pair.pk])
    form = {
        "category": "crypto",
        "base": "BTC",
        "quote": "USD",
        "display_name": "Bitcoin",
        "trading_hours": "24/7",
        "listings-TOTAL_FORMS": "0",
        "listings-INITIAL_FORMS": "0",
    }

    response = operator_client.post(url, form)

    assert response.status_code == 302
    saved = TradingPair.objects.get(pk=pair.pk)
    assert (saved.display_name, saved.active) == ("Bitcoin", False)
