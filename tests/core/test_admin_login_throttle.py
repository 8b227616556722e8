"""The Django admin's sign-in form is rate limited like the API's sign-in."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "ops-Password-1"


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser(email="ops@marqetfi.local", password=PASSWORD)


@pytest.fixture
def auth_rate(settings):
    rest = {**settings.REST_FRAMEWORK}
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    settings.REST_FRAMEWORK = rest


def attempt(
    client: Client, password: str, username: str = "ops@marqetfi.local", address: str = "127.0.0.1"
) -> Any:
    body = {"username": username, "password": password, "next": "/admin/"}
    return client.post(LOGIN, body, REMOTE_ADDR=address)


def test_repeated_sign_in_attempts_from_one_address_get_429(operator, auth_rate):
    client = Client()
    statuses = [attempt(client, "guess").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # the form again, with its error

    refused = attempt(client, "guess")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0


def test_the_right_password_is_not_let_through_once_limited(operator, auth_rate):
    client = Client()
    for _ in range(3):
        attempt(client, "guess")

    response = attempt(client, PASSWORD)

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_guesses_at_one_account_from_many_addresses_are_limited(operator, auth_rate):
    statuses = [attempt(Client(), "guess", address=f"203.0.113.{n}").status_code for n in range(1, 5)]
    assert statuses == [200, 200, 200, 429]


def test_other_accounts_and_addresses_are_not_limited_by_them(operator, auth_rate):
    for _ in range(3):
        attempt(Client(), "guess", username="someone@example.com")

    elsewhere = attempt(Client(), PASSWORD, address="198.51.100.7")

    assert elsewhere.status_code == 302
    assert elsewhere["Location"] == "/admin/"


def test_showing_the_form_is_not_counted(operator, auth_rate):
    client = Client()
    for _ in range(5):
        assert client.get(LOGIN).status_code == 200
    assert attempt(client, PASSWORD).status_code == 302
