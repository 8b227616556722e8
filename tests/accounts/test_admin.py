"""The operators' view of users: identities and wallets inline, search, and the access switches."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuthIdentity, User
from conftest import bearer_client
from marqetfi.core import crypto
from providers.models import LocalWalletKey
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, django_user_model):
    operator = django_user_model.objects.create_superuser(
        email="ops@marqetfi.local", password="ops-Password-1"
    )
    client.force_login(operator)
    return client


@pytest.fixture
def trader_with_wallet(user):
    bearer_client(user).post("/api/v1/wallets/mpc", {}, format="json")
    AuthIdentity.objects.create(user=user, method="google", subject="g-123", email=user.email)
    return user


def test_user_page_shows_identities_and_wallets_but_never_keys(operator_client, trader_with_wallet):
    key = LocalWalletKey.objects.get()
    page = operator_client.get(reverse("admin:accounts_user_change", args=[trader_with_wallet.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "g-123" in html
    assert key.address in html
    assert key.encrypted_private_key not in html
    assert crypto.decrypt(key.encrypted_private_key).removeprefix("0x") not in html
    key_page = operator_client.get(reverse("admin:providers_localwalletkey_change", args=[key.pk]))
    assert key.encrypted_private_key not in key_page.content.decode()


def test_users_are_found_by_email_and_by_wallet_address(operator_client, trader_with_wallet):
    address = trader_with_wallet.wallets.get().address
    changelist = reverse("admin:accounts_user_changelist")
    by_address = operator_client.get(changelist, {"q": address}).content.decode()
    assert trader_with_wallet.email in by_address
    by_email = operator_client.get(changelist, {"q": trader_with_wallet.email}).content.decode()
    assert trader_with_wallet.email in by_email
    assert "0 users" in operator_client.get(changelist, {"q": "nobody@nowhere"}).content.decode()


def test_disabling_sign_in_ends_the_users_sessions(operator_client, api_client):
    tokens = api_client.post(
        "/api/v1/auth/register",
        {"email": "t@example.com", "password": "correct horse battery"},
        format="json",
    ).json()
    user = User.objects.get(email="t@example.com")
    response = operator_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "disable_sign_in", "_selected_action": [str(user.pk)]},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_active is False
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert bearer.get("/api/v1/me").status_code == 401
    refresh = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refresh.status_code == 401


def test_disabling_trading_flips_the_flag_shown_in_the_profile(operator_client, user):
    operator_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "disable_trading", "_selected_action": [str(user.pk)]},
    )
    assert bearer_client(user).get("/api/v1/me").json()["trading_enabled"] is False
    operator_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "enable_trading", "_selected_action": [str(user.pk)]},
    )
    assert bearer_client(user).get("/api/v1/me").json()["trading_enabled"] is True


def test_non_staff_users_cannot_open_the_admin(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_operators_can_not_disable_their_own_sign_in(operator_client):
    operator = User.objects.get(email="ops@marqetfi.local")
    operator_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "disable_sign_in", "_selected_action": [str(operator.pk), str(UserFactory().pk)]},
    )
    operator.refresh_from_db()
    assert operator.is_active is True


@pytest.mark.parametrize("blacklisted", [False, True])
def test_session_token_pages_never_show_a_token(operator_client, user, blacklisted):
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = RefreshToken.for_user(user)
    if blacklisted:
        refresh.blacklist()
    outstanding = OutstandingToken.objects.get(jti=refresh["jti"])
    pages = [
        reverse("admin:token_blacklist_outstandingtoken_changelist"),
        reverse("admin:token_blacklist_outstandingtoken_change", args=[outstanding.pk]),
    ]
    if blacklisted:
        entry = BlacklistedToken.objects.get(token=outstanding)
        pages += [
            reverse("admin:token_blacklist_blacklistedtoken_changelist"),
            reverse("admin:token_blacklist_blacklistedtoken_change", args=[entry.pk]),
        ]
    _header, payload, signature = str(refresh).split(".")
    for url in pages:
        page = operator_client.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        assert refresh["jti"] in html, url  # the token is identified ...
        assert payload not in html, url  # ... but its value is never shown
        assert signature not in html, url
