"""Changing a password, and recovering an account by email: sessions end, keys work once."""

from __future__ import annotations

import re
from typing import Any

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuthIdentity, User, Wallet
from marqetfi.core.models import AuditEntry

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase 42"


def register(email: str = "owner@example.com", password: str = PASSWORD) -> dict[str, Any]:
    response = APIClient().post(
        "/api/v1/auth/register", {"email": email, "password": password}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def login(email: str = "owner@example.com", password: str = PASSWORD) -> Any:
    return APIClient().post("/api/v1/auth/login", {"email": email, "password": password}, format="json")


def with_access(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def reset_requested(email: str, capture: Any) -> Any:
    with capture(execute=True):
        return APIClient().post("/api/v1/auth/password/reset", {"email": email}, format="json")


def mailed_reset_key() -> str:
    body = str(mail.outbox[-1].body)
    match = re.search(r"paste this key: (\S+)", body)
    assert match, body
    return match.group(1)


def confirm(key: str, new_password: str = NEW_PASSWORD) -> Any:
    return APIClient().post(
        "/api/v1/auth/password/reset/confirm", {"key": key, "new_password": new_password}, format="json"
    )


# --- change ------------------------------------------------------------------------------


def test_change_password_signs_out_other_sessions_and_returns_fresh_tokens():
    phone = register()
    laptop = login().json()
    response = with_access(phone["access"]).post(
        "/api/v1/auth/password/change",
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"access", "refresh", "user"} and body["user"]["email"] == "owner@example.com"
    for session in (phone, laptop):
        refused = with_access(session["access"]).get("/api/v1/me")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    assert with_access(body["access"]).get("/api/v1/me").status_code == 200
    assert login().status_code == 401
    assert login(password=NEW_PASSWORD).status_code == 200


def test_change_password_with_a_wrong_current_password_is_refused_and_changes_nothing():
    tokens = register()
    response = with_access(tokens["access"]).post(
        "/api/v1/auth/password/change",
        {"old_password": "not my password", "new_password": NEW_PASSWORD},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_password"
    assert with_access(tokens["access"]).get("/api/v1/me").status_code == 200
    assert login().status_code == 200


def test_change_password_applies_the_password_validators():
    tokens = register()
    response = with_access(tokens["access"]).post(
        "/api/v1/auth/password/change", {"old_password": PASSWORD, "new_password": "12345678"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["new_password"]


def test_change_password_needs_a_signed_in_user():
    response = APIClient().post(
        "/api/v1/auth/password/change",
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
    )
    assert response.status_code == 401


def test_an_account_without_a_password_is_told_how_to_get_one():
    from conftest import bearer_client

    wallet_user = User.objects.create_user(email=None)
    response = bearer_client(wallet_user).post(
        "/api/v1/auth/password/change",
        {"old_password": "a guess", "new_password": NEW_PASSWORD},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_password"


# --- reset -------------------------------------------------------------------------------


def test_reset_answers_the_same_whether_or_not_the_account_exists(django_capture_on_commit_callbacks):
    register()
    mail.outbox.clear()
    known = reset_requested("Owner@Example.com", django_capture_on_commit_callbacks)
    unknown = reset_requested("nobody@example.com", django_capture_on_commit_callbacks)
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [message.to for message in mail.outbox] == [["owner@example.com"]]
    assert "marqetfi://reset-password?key=" in mail.outbox[0].body


def test_the_reset_key_sets_the_password_and_signs_out_every_session(
    django_capture_on_commit_callbacks, leak_guard
):
    leak_guard.add(PASSWORD)
    leak_guard.add(NEW_PASSWORD)
    old = register()
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    key = mailed_reset_key()
    leak_guard.add(key.partition("-")[2])
    response = confirm(key)
    assert response.status_code == 200, response.content
    assert with_access(response.json()["access"]).get("/api/v1/me").status_code == 200
    refused = with_access(old["access"]).get("/api/v1/me")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    refresh = APIClient().post("/api/v1/auth/token/refresh", {"refresh": old["refresh"]}, format="json")
    assert refresh.status_code == 401
    assert login().status_code == 401
    assert login(password=NEW_PASSWORD).status_code == 200


def test_a_reset_key_works_once(django_capture_on_commit_callbacks):
    register()
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    key = mailed_reset_key()
    assert confirm(key).status_code == 200
    again = confirm(key, new_password="yet another passphrase 7")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_reset_key"
    assert login(password=NEW_PASSWORD).status_code == 200


def test_a_reset_key_expires(django_capture_on_commit_callbacks, settings):
    register()
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    key = mailed_reset_key()
    with time_machine.travel(
        timezone.now() + timezone.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 5)
    ):
        expired = confirm(key)
    assert expired.status_code == 400
    assert expired.json()["error"]["code"] == "invalid_reset_key"
    assert login().status_code == 200


def test_signing_in_elsewhere_does_not_void_the_reset_key(django_capture_on_commit_callbacks):
    register()
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    key = mailed_reset_key()
    assert login().status_code == 200  # e.g. a squatter keeps signing in
    assert confirm(key).status_code == 200


@pytest.mark.parametrize("key", ["", "garbage", "zzzz-abc", "0" * 32 + "-cpp7zb-0123456789abcdef", "-" * 40])
def test_malformed_or_forged_reset_keys_are_refused(key):
    register()
    response = confirm(key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_reset_key", "validation_error"}


def test_reset_confirm_applies_the_password_validators(django_capture_on_commit_callbacks):
    register()
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    response = confirm(mailed_reset_key(), new_password="owner")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["new_password"]
    assert login().status_code == 200


def test_reset_requests_are_strictly_throttled(settings):
    rest = {**settings.REST_FRAMEWORK}
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "password_reset": "2/hour"}
    settings.REST_FRAMEWORK = rest
    client = APIClient()
    statuses = [
        client.post("/api/v1/auth/password/reset", {"email": f"n{i}@example.com"}, format="json").status_code
        for i in range(3)
    ]
    assert statuses == [202, 202, 429]


def test_resetting_a_squatted_account_gives_it_to_the_owner_and_detaches_the_squatters_ways_in(
    django_capture_on_commit_callbacks,
):
    """Someone registered the owner's address first and linked their own wallet and Google
    account; the owner resets the password from the mailbox they control."""
    squatter = register()
    user = User.objects.get(email="owner@example.com")
    AuthIdentity.objects.create(user=user, method="google", subject="squatter-google")
    AuthIdentity.objects.create(
        user=user, method="siwe", subject="0x00000000000000000000000000000000000000aA"
    )
    Wallet.objects.create(
        user=user, kind="external", provider="external", address="0x00000000000000000000000000000000000000aA"
    )
    Wallet.objects.create(
        user=user, kind="mpc", provider="local", address="0x00000000000000000000000000000000000000bB"
    )
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    response = confirm(mailed_reset_key())
    assert response.status_code == 200, response.content
    assert response.json()["user"]["email_verified"] is True
    me = with_access(response.json()["access"]).get("/api/v1/me").json()
    assert [identity["method"] for identity in me["identities"]] == ["email"]
    assert me["identities"][0]["email_verified"] is True
    assert [wallet["kind"] for wallet in me["wallets"]] == ["mpc"]
    assert with_access(squatter["access"]).get("/api/v1/me").status_code == 401
    entry = AuditEntry.objects.get(action="user.password_reset")
    assert entry.changes["email_was_verified"] is False
    assert sorted(entry.changes["detached"]["identities"]) == [
        "google:squatter-google",
        "siwe:0x00000000000000000000000000000000000000aA",
    ]


def test_resetting_a_verified_account_keeps_its_other_sign_in_methods(django_capture_on_commit_callbacks):
    register()
    user = User.objects.get(email="owner@example.com")
    EmailAddress.objects.filter(user=user).update(verified=True)
    AuthIdentity.objects.create(user=user, method="google", subject="owner-google")
    reset_requested("owner@example.com", django_capture_on_commit_callbacks)
    response = confirm(mailed_reset_key())
    assert response.status_code == 200
    me = with_access(response.json()["access"]).get("/api/v1/me").json()
    assert sorted(identity["method"] for identity in me["identities"]) == ["email", "google"]


def test_no_reset_mail_for_a_disabled_account(django_capture_on_commit_callbacks):
    register()
    user = User.objects.get(email="owner@example.com")
    user.is_active = False
    user.save(update_fields=["is_active"])
    mail.outbox.clear()
    assert reset_requested("owner@example.com", django_capture_on_commit_callbacks).status_code == 202
    assert mail.outbox == []
