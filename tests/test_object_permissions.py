"""Object-level permissions, generated from the URL patterns of /api/v1/.

Every route with an object id in its path (a ``uuid`` or ``int`` converter) outside
/api/v1/admin/ addresses a user's object. For each such route and every method its view
allows, a second user acting on the first user's object gets 404 in the error shape, the
same answer as for an id that exists nowhere (no existence oracle), and nothing changes:
the object's row is the same, and no table gains or loses a row (no event, order,
delivery or recovery written). A route nobody taught this module to build an object for
fails ``test_every_owned_route_has_an_object_builder``, so coverage stays complete.

Every route under /api/v1/admin/, every method, answers a trader 403 and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.db.models import Model
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, reverse
from django.urls.converters import IntConverter, UUIDConverter
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuthIdentity, AuthMethod, Wallet, WalletKind
from conftest import bearer_client
from marqetfi.urls import api_v1
from tests.accounts.factories import UserFactory
from tests.deposits.factories import DepositFactory
from tests.trading.conftest import (  # noqa: F401 - the paper market, answering synchronously
    drive,
    paper_answer_mode,
    paper_market,
    paper_options,
    staff,
    trader,
)
from tests.webhooks.factories import WebhookDeliveryFactory, WebhookEndpointFactory, WebhookRecoveryFactory
from trading.models import Order, Position

pytestmark = pytest.mark.django_db

OBJECT_ID_CONVERTERS = (UUIDConverter, IntConverter)
ADMIN_PREFIX = "admin/"
# The apps whose tables the "nothing changed" check counts: this project's, and the
# refresh-token blacklist.
COUNTED_APP_LABELS = frozenset(
    {"accounts", "backoffice", "core", "deposits", "ledger", "pricing", "providers", "trading", "webhooks"}
    | {"token_blacklist"}
)


@dataclass(frozen=True)
class Route:
    name: str  # without the v1 namespace
    pattern: str  # the path under /api/v1/, as written in urls.py
    converters: dict[str, Any]
    view_class: type

    @property
    def is_admin(self) -> bool:
        return self.pattern.startswith(ADMIN_PREFIX)

    @property
    def object_kwargs(self) -> list[str]:
        return [
            name for name, converter in self.converters.items() if isinstance(converter, OBJECT_ID_CONVERTERS)
        ]

    def allowed_methods(self) -> list[str]:
        """The methods the view answers, as Django and DRF compute them (HEAD from GET included)."""
        view = self.view_class()
        view.setup(RequestFactory().get("/"))
        return [*sorted(method for method in view.allowed_methods if method != "OPTIONS"), "OPTIONS"]

    def __str__(self) -> str:
        return self.name


def _walk(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
            continue
        view_class = getattr(entry.callback, "view_class", None) or getattr(entry.callback, "cls", None)
        assert view_class is not None, f"{prefix}{entry.pattern}: not a class-based view"
        assert entry.name, f"{prefix}{entry.pattern}: a route needs a name"
        yield Route(
            name=entry.name,
            pattern=prefix + str(entry.pattern),
            converters=dict(getattr(entry.pattern, "converters", {})),
            view_class=view_class,
        )


API_ROUTES = list(_walk(api_v1))
OWNED_ROUTES = [route for route in API_ROUTES if route.object_kwargs and not route.is_admin]
ADMIN_ROUTES = [route for route in API_ROUTES if route.is_admin]


@dataclass
class OwnedObject:
    """A real object of the owner's, the path kwargs that address it and, per method, a body
    that would succeed for the owner (so a missing ownership check would show)."""

    instance: Any  # a model instance with a ``user`` foreign key
    kwargs: dict[str, Any]
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)


Builder = Callable[[Any, pytest.FixtureRequest], OwnedObject]


def _identity(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    # Two identities: unlinking one of two would succeed for the owner.
    AuthIdentity.objects.create(user=owner, method=AuthMethod.EMAIL, subject=owner.email, email=owner.email)
    identity = AuthIdentity.objects.create(user=owner, method=AuthMethod.GOOGLE, subject=f"g-{owner.pk}")
    return OwnedObject(identity, {"identity_id": identity.pk})


def _wallet(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    wallet = Wallet.objects.create(
        user=owner,
        kind=WalletKind.EXTERNAL,
        provider="external",
        address="0x" + uuid.uuid4().hex + "00000000",
    )
    return OwnedObject(wallet, {"wallet_id": wallet.pk})


def _owner_client(owner: Any, request: pytest.FixtureRequest) -> APIClient:
    request.getfixturevalue("drive")(BTCUSD="64000")
    return bearer_client(owner)


ORDER = {"symbol": "BTCUSD", "side": "long", "collateral": "1000", "leverage": "10"}


def _resting_order(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    placed = _owner_client(owner, request).post(
        "/api/v1/orders", {**ORDER, "type": "limit", "price": "60000"}, format="json"
    )
    assert placed.status_code == 201, placed.json()
    order = Order.objects.get(pk=placed.json()["id"], status="open")
    return OwnedObject(order, {"order_id": order.pk})


def _open_position(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    placed = _owner_client(owner, request).post("/api/v1/orders", {**ORDER, "type": "market"}, format="json")
    assert placed.status_code == 201, placed.json()
    position = Position.objects.get(pk=placed.json()["position_id"], status="open")
    return OwnedObject(
        position,
        {"position_id": position.pk},
        bodies={"PATCH": {"stop_loss": "50000"}, "POST": {"type": "market"}},
    )


def _endpoint(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    endpoint = WebhookEndpointFactory(user=owner)
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    return OwnedObject(
        endpoint,
        {"endpoint_id": endpoint.pk},
        bodies={"PATCH": {"description": "taken over"}, "POST": {"since": since}},
    )


def _delivery(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    delivery = WebhookDeliveryFactory(endpoint=WebhookEndpointFactory(user=owner), status="failed")
    return OwnedObject(delivery, {"delivery_id": delivery.pk})


def _recovery(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    recovery = WebhookRecoveryFactory(endpoint=WebhookEndpointFactory(user=owner))
    return OwnedObject(recovery, {"recovery_id": recovery.pk})


def _deposit(owner: Any, request: pytest.FixtureRequest) -> OwnedObject:
    deposit = DepositFactory(user=owner)
    return OwnedObject(deposit, {"deposit_id": deposit.pk})


# URL name -> how to make the owner's object it addresses.
OBJECT_BUILDERS: dict[str, Builder] = {
    "me-identity": _identity,
    "wallet": _wallet,
    "wallet-balances": _wallet,
    "order": _resting_order,
    "position": _open_position,
    "position-close": _open_position,
    "webhook-endpoint": _endpoint,
    "webhook-endpoint-rotate-secret": _endpoint,
    "webhook-endpoint-test": _endpoint,
    "webhook-endpoint-recover": _endpoint,
    "webhook-delivery": _delivery,
    "webhook-delivery-redeliver": _delivery,
    "webhook-recovery": _recovery,
    "deposit": _deposit,
}


def _row(instance: Model) -> dict[str, Any] | None:
    return type(instance)._default_manager.filter(pk=instance.pk).values().first()


def _table_counts() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.app_label in COUNTED_APP_LABELS and not model._meta.proxy
    }


def _send(client: APIClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return getattr(client, method.lower())(path, body or None, format="json" if body else None)


def _error_code(response: Any) -> str | None:
    if not response.content:
        return None
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    return str(error["code"])


def test_the_walk_finds_the_owned_and_the_staff_routes() -> None:
    names = {route.name for route in OWNED_ROUTES}
    assert {"order", "position-close", "wallet", "webhook-delivery", "deposit"} <= names
    assert "price" not in names  # prices/<str:symbol> is public data, not an object of a user's
    assert {"admin-users", "admin-user", "admin-routing-rule"} <= {route.name for route in ADMIN_ROUTES}


def test_every_owned_route_has_an_object_builder() -> None:
    unknown = sorted(
        f"/api/v1/{route.pattern} ({route.name})"
        for route in OWNED_ROUTES
        if route.name not in OBJECT_BUILDERS
    )
    assert unknown == [], f"teach OBJECT_BUILDERS to make an owned object for: {unknown}"
    stale = sorted(set(OBJECT_BUILDERS) - {route.name for route in OWNED_ROUTES})
    assert stale == [], f"OBJECT_BUILDERS names routes that no longer exist: {stale}"


@pytest.mark.parametrize("route", OWNED_ROUTES, ids=str)
def test_another_user_gets_404_on_every_method_and_nothing_changes(
    route: Route, request: pytest.FixtureRequest
) -> None:
    owner = request.getfixturevalue("trader")  # funded: the owner's orders and positions are real
    owned = OBJECT_BUILDERS[route.name](owner, request)
    assert owned.instance.user_id == owner.pk
    intruder = bearer_client(UserFactory())
    path = reverse(f"v1:{route.name}", kwargs=owned.kwargs)
    nowhere = reverse(
        f"v1:{route.name}",
        kwargs={
            name: uuid.uuid4() if name in route.object_kwargs else value
            for name, value in owned.kwargs.items()
        },
    )
    row_before, counts_before = _row(owned.instance), _table_counts()

    for method in route.allowed_methods():
        body = owned.bodies.get(method)
        answer = _send(intruder, method, path, body)
        answer_for_nowhere = _send(intruder, method, nowhere, body)

        if method == "OPTIONS":  # a description of the view, the same for every id
            assert answer.status_code == answer_for_nowhere.status_code, method
            assert answer.json() == answer_for_nowhere.json(), method
        else:
            assert answer.status_code == 404, (method, path, answer.content)
            code = _error_code(answer)
            assert method == "HEAD" or (code is not None and code.endswith("not_found")), (method, code)
            assert (answer_for_nowhere.status_code, _error_code(answer_for_nowhere)) == (404, code), method
        assert _row(owned.instance) == row_before, f"{method} {path} changed the owner's row"
        assert _table_counts() == counts_before, f"{method} {path} wrote rows"

    if "GET" in route.allowed_methods():  # the builder made an object the owner can reach
        assert bearer_client(owner).get(path).status_code == 200, path


ADMIN_KWARG_VALUES: dict[type, Any] = {UUIDConverter: uuid.uuid4(), IntConverter: 1}


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=str)
def test_a_trader_gets_403_on_every_staff_route_and_method(route: Route, user: Any) -> None:
    kwargs = {
        name: ADMIN_KWARG_VALUES.get(type(converter), "paper") for name, converter in route.converters.items()
    }
    path = reverse(f"v1:{route.name}", kwargs=kwargs)
    trader_client = bearer_client(user)
    counts_before = _table_counts()

    for method in route.allowed_methods():
        answer = _send(trader_client, method, path, {})
        assert answer.status_code == 403, (method, path, answer.content)
        assert method == "HEAD" or _error_code(answer) == "permission_denied", (method, answer.content)
        assert _table_counts() == counts_before, f"{method} {path} wrote rows"
