"""seed_demo funds the demo trader once, whatever the number of runs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import User
from ledger.checks import ledger_check
from ledger.models import LedgerTransaction
from ledger.selectors import user_balances

pytestmark = pytest.mark.django_db


def test_seed_demo_twice_funds_the_trader_once_and_prints_the_credentials(capsys, monkeypatch, api_client):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-Password-123")
    monkeypatch.setenv("DEMO_TRADER_PASSWORD", "trader-Password-123")
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "Demo trader created, funded with 10,000 USDC: trader@marqetfi.local / trader-Password-123" in out
    assert "Demo trader ready: trader@marqetfi.local / trader-Password-123" in out
    trader = User.objects.get(email="trader@marqetfi.local")
    assert user_balances(user=trader).available == Decimal("10000")
    assert LedgerTransaction.objects.filter(kind="adjustment").count() == 1
    assert ledger_check() == []
    login = api_client.post(
        "/api/v1/auth/login",
        {"email": "trader@marqetfi.local", "password": "trader-Password-123"},
        format="json",
    )
    assert login.status_code == 200, login.content


def test_the_trader_email_comes_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-Password-123")
    monkeypatch.setenv("DEMO_TRADER_EMAIL", "Demo.Trader@Example.com")
    monkeypatch.setenv("DEMO_TRADER_PASSWORD", "trader-Password-123")
    call_command("seed_demo")
    trader = User.objects.get(email="demo.trader@example.com")
    assert user_balances(user=trader).available == Decimal("10000")
