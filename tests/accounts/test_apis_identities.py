"""Linking and unlinking sign-in methods; the unified profile."""

from __future__ import annotations

import pytest

from accounts.models import AuthIdentity, User, Wallet
from conftest import bearer_client
from marqetfi.core.models import Event
from tests.accounts.conftest import EthWallet, siwe_body
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def email_user(api_client):
    response = api_client.post(
        "/api/v1/auth/register", {"email": "ada@example.com", "password": PASSWORD}, format="json"
    )
    return User.objects.get(pk=response.json()["user"]["id"])


def test_a_signed_in_user_links_google_then_signs_in_with_it(api_client, idp, email_user):
    client = bearer_client(email_user)
    token = idp.token("google", sub="g-ada", email="ada@gmail.com")
    response = client.post("/api/v1/me/identities/google", {"id_token": token}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["method"] == "google"
    again = client.post("/api/v1/me/identities/google", {"id_token": token}, format="json")
    assert again.status_code == 200, "linking the same identity twice changes nothing"
    signed_in = api_client.post(
        "/api/v1/auth/oauth/google", {"id_token": idp.token("google", sub="g-ada")}, format="json"
    )
    assert signed_in.json()["user"]["id"] == str(email_user.pk)
    assert Event.objects.filter(user=email_user, type="account.auth_method_linked").count() == 1


def test_linking_a_wallet_by_siwe_adds_the_identity_and_the_wallet(api_client, email_user, eth_wallet):
    client = bearer_client(email_user)
    response = client.post("/api/v1/me/identities/siwe", siwe_body(api_client, eth_wallet), format="json")
    assert response.status_code == 201, response.content
    assert Wallet.objects.get().user == email_user
    signed_in = api_client.post("/api/v1/auth/siwe/verify", siwe_body(api_client, eth_wallet), format="json")
    assert signed_in.json()["user"]["id"] == str(email_user.pk)


def test_an_identity_owned_by_someone_else_is_refused_and_nothing_changes(api_client, idp, email_user):
    owner_token = idp.token("google", sub="g-shared")
    api_client.post("/api/v1/auth/oauth/google", {"id_token": owner_token}, format="json")
    before = list(AuthIdentity.objects.order_by("created_at").values_list("user_id", "method", "subject"))
    response = bearer_client(email_user).post(
        "/api/v1/me/identities/google", {"id_token": idp.token("google", sub="g-shared")}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_in_use"
    assert (
        list(AuthIdentity.objects.order_by("created_at").values_list("user_id", "method", "subject"))
        == before
    )


def test_a_wallet_signed_in_elsewhere_cannot_be_linked(api_client, email_user, eth_wallet):
    api_client.post("/api/v1/auth/siwe/verify", siwe_body(api_client, eth_wallet), format="json")
    response = bearer_client(email_user).post(
        "/api/v1/me/identities/siwe", siwe_body(api_client, eth_wallet), format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_in_use"
    assert not email_user.wallets.exists()


def test_a_wallet_user_adds_email_and_password(api_client, eth_wallet):
    created = api_client.post(
        "/api/v1/auth/siwe/verify", siwe_body(api_client, eth_wallet), format="json"
    ).json()
    user = User.objects.get(pk=created["user"]["id"])
    response = bearer_client(user).post(
        "/api/v1/me/identities/email", {"email": "Wallet@Example.com", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 201, response.content
    login = api_client.post(
        "/api/v1/auth/login", {"email": "wallet@example.com", "password": PASSWORD}, format="json"
    )
    assert login.status_code == 200
    assert login.json()["user"]["id"] == str(user.pk)


def test_an_email_owned_by_someone_else_cannot_be_linked(api_client, email_user, eth_wallet):
    created = api_client.post(
        "/api/v1/auth/siwe/verify", siwe_body(api_client, eth_wallet), format="json"
    ).json()
    user = User.objects.get(pk=created["user"]["id"])
    response = bearer_client(user).post(
        "/api/v1/me/identities/email", {"email": "ada@example.com", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_in_use"
    assert not user.has_usable_password()


def test_unlinking_the_last_method_is_refused(email_user):
    client = bearer_client(email_user)
    identity = email_user.identities.get()
    response = client.delete(f"/api/v1/me/identities/{identity.pk}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_identity"
    assert email_user.identities.count() == 1


def test_unlinking_email_removes_password_sign_in(api_client, idp, email_user):
    client = bearer_client(email_user)
    client.post("/api/v1/me/identities/google", {"id_token": idp.token("google")}, format="json")
    email_identity = email_user.identities.get(method="email")
    assert client.delete(f"/api/v1/me/identities/{email_identity.pk}").status_code == 204
    login = api_client.post(
        "/api/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD}, format="json"
    )
    assert login.status_code == 401
    assert list(email_user.identities.values_list("method", flat=True)) == ["google"]


def test_me_shows_the_profile_with_methods_and_wallets(api_client, email_user, eth_wallet, leak_guard):
    client = bearer_client(email_user)
    client.post("/api/v1/me/identities/siwe", siwe_body(api_client, eth_wallet), format="json")
    body = client.get("/api/v1/me").json()
    assert body["email"] == "ada@example.com"
    assert sorted(i["method"] for i in body["identities"]) == ["email", "siwe"]
    assert [w["address"] for w in body["wallets"]] == [eth_wallet.address]
    assert set(body["wallets"][0]) == {"id", "kind", "provider", "chain_type", "address", "created_at"}
    updated = client.patch("/api/v1/me", {"display_name": "Ada L."}, format="json")
    assert updated.json()["display_name"] == "Ada L."


def test_nobody_can_unlink_another_users_identity(email_user):
    other = UserFactory()
    other_identity = AuthIdentity.objects.create(user=other, method="google", subject="g-other")
    AuthIdentity.objects.create(user=other, method="apple", subject="a-other")
    response = bearer_client(email_user).delete(f"/api/v1/me/identities/{other_identity.pk}")
    assert response.status_code == 404
    assert AuthIdentity.objects.filter(pk=other_identity.pk).exists()


def test_profile_endpoints_need_a_token(api_client):
    assert api_client.get("/api/v1/me").status_code == 401
    assert (
        api_client.post("/api/v1/me/identities/google", {"id_token": "x"}, format="json").status_code == 401
    )


def test_unknown_link_method_is_404(email_user):
    assert (
        bearer_client(email_user).post("/api/v1/me/identities/myspace", {}, format="json").status_code == 404
    )


def test_siwe_sign_in_with_an_address_linked_as_external_wallet_lands_in_its_owner(api_client, email_user):
    wallet = EthWallet()
    bearer_client(email_user).post("/api/v1/wallets/external", siwe_body(api_client, wallet), format="json")
    response = api_client.post("/api/v1/auth/siwe/verify", siwe_body(api_client, wallet), format="json")
    assert response.status_code == 200
    assert response.json()["user"]["id"] == str(email_user.pk)
