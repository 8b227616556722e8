"""Revoking tokens: logout ends one session's access token too, signing out everywhere (a new
token version) ends them all, and every way of disabling an account does the same."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django_redis import get_redis_connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from marqetfi.core.authentication import DENIED_ACCESS_KEY_PREFIX
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def sign_in(email: str = "trader@example.com") -> dict[str, Any]:
    response = APIClient().post("/api/v1/auth/login", {"email": email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def with_access(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def refreshed(refresh: str) -> Any:
    return APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")


@pytest.fixture
def trader() -> Any:
    return UserFactory(email="trader@example.com")


def test_tokens_carry_the_users_token_version(trader):
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    trader.token_version = 3
    trader.save(update_fields=["token_version"])
    tokens = sign_in()
    assert AccessToken(tokens["access"])["ver"] == 3
    assert RefreshToken(tokens["refresh"])["ver"] == 3
    rotated = refreshed(tokens["refresh"]).json()
    assert AccessToken(rotated["access"])["ver"] == 3 and RefreshToken(rotated["refresh"])["ver"] == 3


def test_after_logout_the_same_access_token_is_refused(trader):
    tokens = sign_in()
    client = with_access(tokens["access"])
    assert client.get("/api/v1/me").status_code == 200
    logout = client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert logout.status_code == 204
    after = client.get("/api/v1/me")
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "token_revoked"
    assert refreshed(tokens["refresh"]).status_code == 401


def test_logout_ends_only_its_own_session(trader):
    phone, laptop = sign_in(), sign_in()
    with_access(phone["access"]).post("/api/v1/auth/logout", {"refresh": phone["refresh"]}, format="json")
    assert with_access(laptop["access"]).get("/api/v1/me").status_code == 200
    assert refreshed(laptop["refresh"]).status_code == 200


def test_logout_leaves_another_users_access_token_alone(trader):
    other = UserFactory(email="other@example.com")
    theirs = sign_in(str(other.email))
    mine = sign_in()
    response = with_access(theirs["access"]).post(
        "/api/v1/auth/logout", {"refresh": mine["refresh"]}, format="json"
    )
    assert response.status_code == 204
    assert with_access(theirs["access"]).get("/api/v1/me").status_code == 200


def test_logout_works_with_an_expired_or_garbled_access_token(trader):
    tokens = sign_in()
    response = with_access("not-a-jwt").post(
        "/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 204
    assert refreshed(tokens["refresh"]).status_code == 401


def test_the_denial_lasts_as_long_as_the_access_token_is_accepted(trader, settings):
    tokens = sign_in()
    with_access(tokens["access"]).post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    jti = AccessToken(tokens["access"])["jti"]
    ttl = get_redis_connection("default").ttl(f"{DENIED_ACCESS_KEY_PREFIX}{jti}")
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
    # Until the token's expiry plus the leeway tokens are accepted with.
    assert lifetime < ttl <= lifetime + settings.SIMPLE_JWT["LEEWAY"] + 1


def test_sign_out_everywhere_refuses_every_token_minted_before(trader):
    phone, laptop = sign_in(), sign_in()
    response = with_access(phone["access"]).post("/api/v1/auth/logout/all")
    assert response.status_code == 204
    for session in (phone, laptop):
        refused = with_access(session["access"]).get("/api/v1/me")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "token_revoked"
        assert refreshed(session["refresh"]).status_code == 401
    assert with_access(sign_in()["access"]).get("/api/v1/me").status_code == 200


def test_refresh_refuses_a_refresh_token_of_an_older_version(trader):
    """Even one that was never blacklisted (e.g. minted while the blacklist was being written)."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    tokens = sign_in()
    trader.token_version += 1
    trader.save(update_fields=["token_version"])
    assert not BlacklistedToken.objects.exists()
    response = refreshed(tokens["refresh"])
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "token_revoked",
        "message": "This token has been revoked (signed out everywhere); sign in again.",
        "details": {},
    }


def test_an_operator_unticking_active_in_the_admin_ends_the_sessions(client, trader):
    tokens = sign_in()
    operator = User.objects.create_superuser(email="ops@marqetfi.local", password="ops-Password-1")
    client.force_login(operator)
    page = client.get(reverse("admin:accounts_user_change", args=[trader.pk]))
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(
        {
            "email": trader.email,
            "is_active": "",
            "date_joined_0": trader.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": trader.date_joined.strftime("%H:%M:%S"),
            "groups": [],
            "user_permissions": [],
            "identities-TOTAL_FORMS": "0",
            "identities-INITIAL_FORMS": "0",
            "wallets-TOTAL_FORMS": "0",
            "wallets-INITIAL_FORMS": "0",
        }
    )
    data.pop("is_active")
    saved = client.post(reverse("admin:accounts_user_change", args=[trader.pk]), data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    trader.refresh_from_db()
    assert trader.is_active is False and trader.token_version == 1
    assert refreshed(tokens["refresh"]).status_code == 401


def test_an_operator_disabling_sign_in_through_the_api_refuses_the_old_tokens(trader):
    from conftest import bearer_client

    tokens = sign_in()
    operator = User.objects.create_superuser(email="ops@marqetfi.local", password="ops-Password-1")
    response = bearer_client(operator).patch(
        f"/api/v1/admin/users/{trader.pk}", {"is_active": False}, format="json"
    )
    assert response.status_code == 200, response.content
    trader.refresh_from_db()
    assert trader.token_version == 1
    trader.is_active = True  # enabled again: the old tokens stay revoked
    trader.save(update_fields=["is_active"])
    refused = with_access(tokens["access"]).get("/api/v1/me")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"


def test_an_operator_setting_a_password_in_the_admin_ends_the_sessions(client, trader):
    tokens = sign_in()
    operator = User.objects.create_superuser(email="ops@marqetfi.local", password="ops-Password-1")
    client.force_login(operator)
    new_password = "an operator chose this one 9"
    saved = client.post(
        reverse("admin:auth_user_password_change", args=[trader.pk]),
        {"password1": new_password, "password2": new_password, "usable_password": "true"},
    )
    assert saved.status_code == 302
    refused = with_access(tokens["access"]).get("/api/v1/me")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    assert refreshed(tokens["refresh"]).status_code == 401
