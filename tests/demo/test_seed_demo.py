"""seed_demo funds the demo trader once, whatever the number of runs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import User
from demo.localchain.devstack import DEVELOPER_ADDRESS, DEVELOPER_KEY, DevStack, DevToken
from demo.services import demo_deposits_configure
from deposits.app_settings import DEPOSIT_POLICY
from ledger.checks import ledger_check
from ledger.models import LedgerTransaction
from ledger.selectors import user_balances
from marqetfi.core.app_settings.cache import app_setting, app_settings_cache
from providers import registry
from providers.models import ProviderConfig

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


def test_deposits_are_pointed_at_the_local_chain_once(settings):

    stack = DevStack(
        rpc_url="http://127.0.0.1:8545",
        chain_id=131277322940537,
        tokens={
            "USDC": DevToken(address="0xF2E246BB76DF876Cef8b38ae84130F4F55De395b", decimals=6),
            "USDT": DevToken(address="0x2946259E0334f33A064106302415aD3391BeD384", decimals=6),
        },
        router="0xDe09E74d4888Bc4e65F589e8c13Bce9F71DdF4c7",
        developer_address=DEVELOPER_ADDRESS,
        developer_key=DEVELOPER_KEY,
        lifi_url="http://127.0.0.1:8546/v1",
        gas_station_key="0x" + "11" * 32,
        collection_address="0x" + "22" * 20,
    )
    try:
        assert demo_deposits_configure(stack=stack) == ["chains", "lifi", "deposit_policy"]
        app_settings_cache.clear()
        assert demo_deposits_configure(stack=stack) == []  # a restart writes nothing new
        spec = registry.chain_spec(stack.chain_id)
        assert [t.symbol for t in spec.tokens] == ["USDC", "USDT"] and spec.deposits_enabled
        assert registry.provider_options("lifi")["base_url"] == stack.lifi_url
        assert registry.provider_options("chains")["gas_station_keys"] == {
            str(stack.chain_id): "0x" + "11" * 32
        }
        policy = app_setting(DEPOSIT_POLICY)
        assert (policy.settlement_chain_id, policy.settlement_token) == (
            stack.chain_id,
            stack.tokens["USDC"].address,
        )
        # The gas station's key is a secret: stored encrypted, not among the plain options.
        config = ProviderConfig.objects.get(provider__name="chains", is_active=True)
        assert "gas_station_keys" not in config.settings and "11" * 32 not in config.secrets_encrypted
    finally:
        registry.reset_cache()
        app_settings_cache.clear()
