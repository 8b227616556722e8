from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import AuthIdentity, User
from conftest import bearer_client

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def register(client: APIClient, email: str = "Trader@Example.com", password: str = PASSWORD, **extra):
    return client.post(
        "/api/v1/auth/register", {"email": email, "password": password, **extra}, format="json"
    )


def mailed_key() -> str:
    body = str(mail.outbox[-1].body)
    match = re.search(r"paste this key: (\S+)", body)
    assert match, body
    return match.group(1)


def test_register_creates_the_user_an_email_identity_and_returns_tokens(
    api_client, django_capture_on_commit_callbacks, leak_guard
):
    leak_guard.add(PASSWORD)
    with django_capture_on_commit_callbacks(execute=True):
        response = register(api_client, display_name="Ada")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"access", "refresh", "user", "email_verification"}
    assert body["email_verification"] == "sent"
    assert body["user"]["email"] == "trader@example.com"
    assert body["user"]["email_verified"] is False
    assert body["user"]["display_name"] == "Ada"
    assert PASSWORD not in response.content.decode()
    user = User.objects.get(email="trader@example.com")
    assert user.check_password(PASSWORD)
    assert list(user.identities.values_list("method", "subject")) == [("email", "trader@example.com")]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["trader@example.com"]
    assert "marqetfi://verify-email?key=" in mail.outbox[0].body
    me = bearer_client(user).get("/api/v1/me").json()
    assert me["identities"][0]["method"] == "email"


def test_the_mailed_key_verifies_the_address_once(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(api_client)
    key = mailed_key()
    response = api_client.post("/api/v1/auth/email/verify", {"key": key}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["email_verified"] is True
    assert AuthIdentity.objects.get(method="email").email_verified is True
    again = api_client.post("/api/v1/auth/email/verify", {"key": key}, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_verification_key"


def test_a_forged_verification_key_is_refused(api_client):
    response = api_client.post("/api/v1/auth/email/verify", {"key": "MQ:1tampered:abc"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_verification_key"


@override_settings(ACCOUNT_EMAIL_VERIFICATION="mandatory")
def test_mandatory_verification_gives_no_tokens_until_the_address_is_verified(
    api_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(api_client)
    assert response.status_code == 201
    assert "access" not in response.json()
    assert response.json()["email_verification"] == "required"
    login = {"email": "trader@example.com", "password": PASSWORD}
    refused = api_client.post("/api/v1/auth/login", login, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "email_not_verified"
    api_client.post("/api/v1/auth/email/verify", {"key": mailed_key()}, format="json")
    assert api_client.post("/api/v1/auth/login", login, format="json").status_code == 200


@override_settings(ACCOUNT_EMAIL_VERIFICATION="none")
def test_no_mail_when_verification_is_off(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(api_client)
    assert response.json()["email_verification"] == "not_required"
    assert mail.outbox == []


def test_register_refuses_a_taken_email_and_weak_passwords(api_client):
    register(api_client)
    taken = register(api_client, email="TRADER@example.com")
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "email_in_use"
    weak = register(api_client, email="new@example.com", password="123")
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "validation_error"
    assert "password" in weak.json()["error"]["details"]
    assert not User.objects.filter(email="new@example.com").exists()


def test_login_returns_tokens_and_the_user(api_client, leak_guard):
    leak_guard.add(PASSWORD)
    register(api_client)
    response = api_client.post(
        "/api/v1/auth/login", {"email": "TRADER@example.com", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "user"}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.get("/api/v1/me").json()["email"] == "trader@example.com"


@pytest.mark.parametrize(
    ("email", "password"), [("trader@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)]
)
def test_login_gives_one_error_for_a_wrong_password_or_an_unknown_email(api_client, email, password):
    register(api_client)
    response = api_client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_refresh_rotates_and_a_used_refresh_token_is_refused(api_client):
    tokens = register(api_client).json()
    rotated = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != tokens["refresh"]
    replay = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "token_not_valid"


def test_logout_blacklists_the_refresh_token(api_client):
    tokens = register(api_client).json()
    assert (
        api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code
        == 204
    )
    after = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "token_not_valid"
    again = api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401


def test_a_disabled_user_cannot_log_in_or_use_a_token(api_client):
    tokens = register(api_client).json()
    User.objects.filter(email="trader@example.com").update(is_active=False)
    login = api_client.post(
        "/api/v1/auth/login", {"email": "trader@example.com", "password": PASSWORD}, format="json"
    )
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "account_disabled"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get("/api/v1/me").status_code == 401


def test_login_has_a_stricter_rate_limit(api_client, settings):
    rest = {**settings.REST_FRAMEWORK}
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    settings.REST_FRAMEWORK = rest
    body = {"email": "x@example.com", "password": "wrong password"}
    statuses = [api_client.post("/api/v1/auth/login", body, format="json").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_resend_verification_mail(user, django_capture_on_commit_callbacks):
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    response = bearer_client(user).post("/api/v1/auth/email/resend")
    assert response.status_code == 202
    assert response.json() == {"sent": True}
    assert mail.outbox[-1].to == [user.email]
