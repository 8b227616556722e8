from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_user_primary_key_is_a_uuid_and_email_is_the_login_name():
    user = User.objects.create_user(email="Alice@Example.COM", password="s3cret-Pa55word")
    assert len(str(user.pk)) == 36
    assert user.email == "alice@example.com"
    assert User.USERNAME_FIELD == "email"
    assert User.objects.get_by_natural_key("ALICE@example.com") == user
    assert user.check_password("s3cret-Pa55word")


def test_email_is_unique_whatever_its_case():
    User.objects.create_user(email="bob@example.com")
    with pytest.raises(ValidationError):
        User.objects.create_user(email="BOB@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="BOB@EXAMPLE.COM")])


def test_seed_demo_creates_the_admin_once_and_prints_its_credentials(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-Password-123")
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "admin@marqetfi.local / demo-Password-123" in out
    admins = User.objects.filter(email="admin@marqetfi.local")
    assert admins.count() == 1
    admin = admins.get()
    assert admin.is_superuser and admin.is_staff and admin.check_password("demo-Password-123")


def test_admin_login_accepts_the_seeded_credentials(client, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-Password-123")
    call_command("seed_demo")
    page = client.get("/admin/login/")
    assert page.status_code == 200
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "admin@marqetfi.local", "password": "demo-Password-123", "next": "/admin/"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
