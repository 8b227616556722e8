"""Venue entries for tests of routing and the admin API: real catalogue entries whose
adapter is the smallest honest Venue (it lists nothing); routing never builds adapters."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from providers.base import (
    Market,
    Quote,
    Venue,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)


class ListingNothingVenue(Venue):
    name = "test-venue"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def health_check(self) -> None:
        return None

    def markets(self) -> list[Market]:
        return []

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        return {}

    def account_ref(self, *, user_id: str, wallet_addresses: Iterable[str]) -> str:
        return ""

    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        return VenueOrder(
            venue_order_id="", client_order_id=order.client_order_id, status=VenueOrderStatus.REJECTED
        )

    def cancel_order(self, *, account_ref: str, venue_order_id: str) -> VenueOrder:
        return VenueOrder(
            venue_order_id=venue_order_id, client_order_id="", status=VenueOrderStatus.CANCELLED
        )

    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        return None

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        return []

    def open_orders(self, *, account_ref: str) -> list[VenueOrder]:
        return []

    def close_position(
        self, *, account_ref: str, venue_position_id: str, size: Any = None, client_order_id: str = ""
    ) -> VenueOrder:
        return VenueOrder(venue_order_id="", client_order_id="", status=VenueOrderStatus.REJECTED)


def providers_with_venues(**options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    catalogue = copy.deepcopy(settings.PROVIDERS)
    for name in ("lighter", "ostium", "paper"):
        catalogue[name] = {
            "kind": "venue",
            "class": "tests.providers.venues.ListingNothingVenue",
            "options": options.get(name, {"base_url": f"https://{name}.example"}),
            "secret_fields": ["api_key"] if name != "paper" else [],
        }
    return catalogue
