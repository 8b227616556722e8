"""A database built by the migrations before the ledger and ``AppSetting`` moved migrates forward intact.

The previous layout (``OLD_LEAVES``) had the ledger under trading and ``AppSetting`` in the
providers app. The tests migrate the test database back to it, write representative rows
with the historical models of that state, migrate forward to the latest migrations, and read
every row back with today's models: ``AppSetting`` keeps its table and its content type (and
the permissions on it) while its model state moves to the kernel, and the books still pass
``check_ledger``. The database is left fully migrated whatever happens, for the tests after.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.apps.registry import Apps
from django.contrib.auth.hashers import make_password
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

OLD_LEAVES: list[tuple[str, str]] = [
    ("accounts", "0002_user_trading_enabled_authidentity_wallet"),
    ("core", "0002_auditentry"),
    ("ledger", "0001_initial"),
    ("pricing", "0001_initial"),
    ("providers", "0003_paper_venue_book"),
    ("trading", "0001_initial"),
]

PASSWORD = "correct horse battery staple"
WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FEE_RATE = "0.0007"
DEPOSIT = Decimal("1000.000001")
LOCKED = Decimal("100.5")

pytestmark = pytest.mark.django_db(transaction=True)


def migrate_to(targets: Sequence[tuple[str, str]]) -> Apps:
    """Migrate the test database to ``targets``; the historical models of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    executor.loader.build_graph()
    ContentType.objects.clear_cache()
    return executor.loader.project_state(list(targets)).apps


def latest_leaves() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def migrate_to_latest() -> Apps:
    return migrate_to(latest_leaves())


@pytest.fixture
def old_apps() -> Iterator[Apps]:
    """The historical models at ``OLD_LEAVES``; the database is migrated back to the latest afterwards."""
    try:
        yield migrate_to(OLD_LEAVES)
    finally:
        migrate_to_latest()


@dataclass
class Seeded:
    trader: Any
    operator: Any
    identity: Any
    wallet: Any
    available: Any
    margin: Any
    clearing: Any
    deposit: Any
    lock: Any
    pair: Any
    listing: Any
    position: Any
    order: Any
    fill: Any
    provider: Any
    config: Any
    rule: Any
    setting_type: Any
    permission: Any
    audit: Any


def seed(apps: Apps) -> Seeded:
    """Representative rows, written with the historical models: no custom managers, every field set."""

    def model(label: str) -> Any:
        return apps.get_model(label)

    user_model = model("accounts.User")
    trader = user_model.objects.create(
        email="trader@example.com",
        password=make_password(PASSWORD),
        display_name="Trader",
        is_active=True,
        is_staff=False,
        is_superuser=False,
        trading_enabled=True,
        date_joined=WHEN,
        last_login=None,
    )
    operator = user_model.objects.create(
        email="ops@marqetfi.local",
        password=make_password("ops password"),
        display_name="Operator",
        is_active=True,
        is_staff=True,
        is_superuser=False,
        trading_enabled=False,
        date_joined=WHEN,
        last_login=WHEN,
    )
    identity = model("accounts.AuthIdentity").objects.create(
        user=trader,
        created_at=WHEN,
        method="email",
        subject="trader@example.com",
        email="trader@example.com",
        email_verified=True,
        last_used_at=WHEN,
    )
    wallet = model("accounts.Wallet").objects.create(
        user=trader,
        created_at=WHEN,
        kind="mpc",
        provider="local",
        chain_type="ethereum",
        address="0x52908400098527886E0F7030069857D2E4169EE7",
        provider_wallet_id="local-1",
    )

    account_model = model("ledger.LedgerAccount")
    available = account_model.objects.create(
        user=trader, created_at=WHEN, kind="available", name="", currency="USDC", balance=DEPOSIT - LOCKED
    )
    margin = account_model.objects.create(
        user=trader, created_at=WHEN, kind="margin", name="", currency="USDC", balance=LOCKED
    )
    clearing = account_model.objects.create(
        user=None, created_at=WHEN, kind="deposits_clearing", name="", currency="USDC", balance=-DEPOSIT
    )
    transaction_model = model("ledger.LedgerTransaction")
    entry_model = model("ledger.LedgerEntry")
    deposit = transaction_model.objects.create(
        kind="deposit", reference="deposit:0xabc", memo="", actor=None, created_at=WHEN
    )
    entry_model.objects.create(transaction=deposit, account=available, amount=DEPOSIT)
    entry_model.objects.create(transaction=deposit, account=clearing, amount=-DEPOSIT)

    pair = model("pricing.TradingPair").objects.create(
        created_at=WHEN,
        symbol="BTCUSD",
        category="crypto",
        base="BTC",
        quote="USD",
        display_name="Bitcoin",
        trading_hours="24/7",
        active=True,
    )
    listing = model("pricing.PairListing").objects.create(
        pair=pair,
        created_at=WHEN,
        provider="paper",
        venue_symbol="BTC-USD",
        tick_size=Decimal("0.1"),
        size_step=Decimal("0.0001"),
        min_collateral=Decimal("1"),
        max_leverage=Decimal("50"),
        active=True,
    )

    position = model("trading.Position").objects.create(
        user=trader,
        created_at=WHEN,
        symbol="BTCUSD",
        category="crypto",
        side="long",
        provider="paper",
        account_ref="paper:trader",
        venue_position_id="pp-1",
        status="open",
        size=Decimal("0.0154"),
        entry_price=Decimal("65000.5"),
        collateral=Decimal("100"),
        leverage=Decimal("10"),
        liquidation_price=Decimal("59150.455"),
        liquidation_level=Decimal("0.1"),
        margin_call_level=Decimal("0.5"),
        margin_called_at=None,
        realized_pnl=Decimal("0"),
        fees_paid=Decimal("0.5"),
        closed_at=None,
        resource_version=2,
    )
    order = model("trading.Order").objects.create(
        user=trader,
        position=position,
        created_at=WHEN,
        client_order_id="client-1",
        symbol="BTCUSD",
        category="crypto",
        side="long",
        type="market",
        purpose="open",
        status="filled",
        collateral=Decimal("100"),
        leverage=Decimal("10"),
        price=None,
        size=None,
        stop_loss=Decimal("60000"),
        take_profit=None,
        trailing_stop={"percent": "2"},
        rounding="",
        fee_reserved=Decimal("0.5"),
        provider="paper",
        routing={"venues": ["paper"]},
        venue_order_id="po-1",
        reject_code="",
        reject_reason="",
        filled_size=Decimal("0.0154"),
        avg_fill_price=Decimal("65000.5"),
        fee=Decimal("0.5"),
        closed_by="",
        resource_version=3,
    )
    fill = model("trading.Fill").objects.create(
        user=trader,
        order=order,
        position=position,
        created_at=WHEN,
        kind="open",
        symbol="BTCUSD",
        side="long",
        provider="paper",
        size=Decimal("0.0154"),
        price=Decimal("65000.5"),
        fee=Decimal("0.5"),
        realized_pnl=Decimal("0"),
    )
    lock = transaction_model.objects.create(
        kind="order_collateral_lock", reference=f"order:{order.pk}", memo="", actor=None, created_at=WHEN
    )
    entry_model.objects.create(transaction=lock, account=available, amount=-LOCKED)
    entry_model.objects.create(transaction=lock, account=margin, amount=LOCKED)

    provider = model("providers.Provider").objects.create(
        created_at=WHEN, name="paper", kind="paper", enabled=True
    )
    config = model("providers.ProviderConfig").objects.create(
        provider=provider,
        version=1,
        settings={"fill_latency_ms": 0},
        secrets_encrypted="",
        is_active=True,
        comment="initial",
        created_by=operator,
        activated_at=WHEN,
    )
    rule = model("providers.RoutingRule").objects.create(
        created_at=WHEN,
        match="symbol",
        value="BTCUSD",
        venues=["paper"],
        enabled=True,
        updated_by=operator,
    )
    model("providers.AppSetting").objects.create(key="trading_fee_rate", value=FEE_RATE, updated_by=operator)

    setting_type, _ = model("contenttypes.ContentType").objects.get_or_create(
        app_label="providers", model="appsetting"
    )
    permission, _ = model("auth.Permission").objects.get_or_create(
        content_type=setting_type, codename="change_appsetting", defaults={"name": "Can change app setting"}
    )
    audit = model("core.AuditEntry").objects.create(
        actor=operator,
        action="app_setting.update",
        target_type="app_setting",
        target_id="trading_fee_rate",
        changes={"value": {"from": "0.0005", "to": FEE_RATE}},
        request_id="req-1",
        created_at=WHEN,
    )
    return Seeded(
        trader=trader,
        operator=operator,
        identity=identity,
        wallet=wallet,
        available=available,
        margin=margin,
        clearing=clearing,
        deposit=deposit,
        lock=lock,
        pair=pair,
        listing=listing,
        position=position,
        order=order,
        fill=fill,
        provider=provider,
        config=config,
        rule=rule,
        setting_type=setting_type,
        permission=permission,
        audit=audit,
    )


def assert_intact(rows: Seeded, latest_apps: Apps) -> None:
    """Every seeded row, read with today's models, still has its values; the books pass the check."""
    from django.contrib.auth.models import Permission

    from accounts.models import AuthIdentity, User, Wallet
    from ledger.checks import ledger_check
    from ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
    from marqetfi.core.app_settings.cache import app_setting, app_settings_cache
    from marqetfi.core.models import AppSetting, AuditEntry
    from pricing.models import PairListing, TradingPair
    from providers.models import Provider, ProviderConfig, RoutingRule
    from trading.app_settings import TRADING_FEE_RATE
    from trading.models import Fill, Order, Position

    trader = User.objects.get(pk=rows.trader.pk)
    assert (trader.email, trader.display_name, trader.trading_enabled) == (
        "trader@example.com",
        "Trader",
        True,
    )
    assert trader.check_password(PASSWORD)
    assert trader.date_joined == WHEN
    operator = User.objects.get(pk=rows.operator.pk)
    assert operator.is_staff and not operator.trading_enabled and operator.last_login == WHEN

    identity = AuthIdentity.objects.get(pk=rows.identity.pk)
    assert (identity.user_id, identity.method, identity.subject, identity.email_verified) == (
        trader.pk,
        "email",
        "trader@example.com",
        True,
    )
    wallet = Wallet.objects.get(pk=rows.wallet.pk)
    assert (wallet.user_id, wallet.kind, wallet.provider, wallet.address, wallet.provider_wallet_id) == (
        trader.pk,
        "mpc",
        "local",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "local-1",
    )

    balances = {
        account.pk: (account.user_id, account.kind, account.balance)
        for account in LedgerAccount.objects.filter(
            pk__in=(rows.available.pk, rows.margin.pk, rows.clearing.pk)
        )
    }
    assert balances == {
        rows.available.pk: (trader.pk, "available", DEPOSIT - LOCKED),
        rows.margin.pk: (trader.pk, "margin", LOCKED),
        rows.clearing.pk: (None, "deposits_clearing", -DEPOSIT),
    }
    transactions = {
        txn.pk: (txn.kind, txn.reference, txn.created_at)
        for txn in LedgerTransaction.objects.filter(pk__in=(rows.deposit.pk, rows.lock.pk))
    }
    assert transactions == {
        rows.deposit.pk: ("deposit", "deposit:0xabc", WHEN),
        rows.lock.pk: ("order_collateral_lock", f"order:{rows.order.pk}", WHEN),
    }
    entries = sorted(
        (str(e.transaction_id), str(e.account_id), e.amount)
        for e in LedgerEntry.objects.filter(transaction__in=(rows.deposit.pk, rows.lock.pk))
    )
    assert entries == sorted(
        [
            (str(rows.deposit.pk), str(rows.available.pk), DEPOSIT),
            (str(rows.deposit.pk), str(rows.clearing.pk), -DEPOSIT),
            (str(rows.lock.pk), str(rows.available.pk), -LOCKED),
            (str(rows.lock.pk), str(rows.margin.pk), LOCKED),
        ]
    )
    assert ledger_check() == []
    out = io.StringIO()
    call_command("check_ledger", stdout=out, no_color=True)
    assert out.getvalue().strip() == "OK"

    pair = TradingPair.objects.get(pk=rows.pair.pk)
    assert (pair.symbol, pair.category, pair.trading_hours, pair.display_name, pair.active) == (
        "BTCUSD",
        "crypto",
        "24/7",
        "Bitcoin",
        True,
    )
    listing = PairListing.objects.get(pk=rows.listing.pk)
    assert (listing.pair_id, listing.provider, listing.venue_symbol, listing.tick_size) == (
        pair.pk,
        "paper",
        "BTC-USD",
        Decimal("0.1"),
    )
    assert (listing.size_step, listing.min_collateral, listing.max_leverage) == (
        Decimal("0.0001"),
        Decimal(1),
        Decimal(50),
    )

    position = Position.objects.get(pk=rows.position.pk)
    assert (position.user_id, position.symbol, position.side, position.provider, position.status) == (
        trader.pk,
        "BTCUSD",
        "long",
        "paper",
        "open",
    )
    assert (position.size, position.entry_price, position.collateral, position.leverage) == (
        Decimal("0.0154"),
        Decimal("65000.5"),
        Decimal(100),
        Decimal(10),
    )
    assert (position.liquidation_price, position.fees_paid, position.resource_version) == (
        Decimal("59150.455"),
        Decimal("0.5"),
        2,
    )
    order = Order.objects.get(pk=rows.order.pk)
    assert (order.user_id, order.position_id, order.client_order_id, order.status, order.type) == (
        trader.pk,
        position.pk,
        "client-1",
        "filled",
        "market",
    )
    assert (order.collateral, order.fee_reserved, order.filled_size, order.avg_fill_price) == (
        Decimal(100),
        Decimal("0.5"),
        Decimal("0.0154"),
        Decimal("65000.5"),
    )
    assert (order.stop_loss, order.trailing_stop, order.routing, order.venue_order_id) == (
        Decimal(60000),
        {"percent": "2"},
        {"venues": ["paper"]},
        "po-1",
    )
    fill = Fill.objects.get(pk=rows.fill.pk)
    assert (fill.order_id, fill.position_id, fill.kind, fill.size, fill.price, fill.fee) == (
        order.pk,
        position.pk,
        "open",
        Decimal("0.0154"),
        Decimal("65000.5"),
        Decimal("0.5"),
    )

    provider = Provider.objects.get(pk=rows.provider.pk)
    assert (provider.name, provider.kind, provider.enabled) == ("paper", "paper", True)
    config = ProviderConfig.objects.get(pk=rows.config.pk)
    assert (config.provider_id, config.version, config.settings, config.is_active) == (
        provider.pk,
        1,
        {"fill_latency_ms": 0},
        True,
    )
    assert (config.created_by_id, config.activated_at, config.comment) == (operator.pk, WHEN, "initial")
    rule = RoutingRule.objects.get(pk=rows.rule.pk)
    assert (rule.match, rule.value, rule.venues, rule.enabled, rule.updated_by_id) == (
        "symbol",
        "BTCUSD",
        ["paper"],
        True,
        operator.pk,
    )

    # AppSetting: the same row, now the kernel's, in the model state as well as in the code.
    setting = AppSetting.objects.get(key="trading_fee_rate")
    assert (setting.value, setting.updated_by_id) == (FEE_RATE, operator.pk)
    historical = latest_apps.get_model("core", "AppSetting")
    assert historical._meta.db_table == AppSetting._meta.db_table
    assert historical.objects.get(key="trading_fee_rate").value == FEE_RATE
    assert "appsetting" not in latest_apps.all_models["providers"]
    app_settings_cache.clear()
    assert app_setting(TRADING_FEE_RATE) == Decimal(FEE_RATE)

    # Its content type moved rather than being replaced, so permissions stay attached.
    setting_type = ContentType.objects.get(pk=rows.setting_type.pk)
    assert (setting_type.app_label, setting_type.model) == ("core", "appsetting")
    assert not ContentType.objects.filter(app_label="providers", model="appsetting").exists()
    assert ContentType.objects.get_for_model(AppSetting).pk == setting_type.pk
    assert Permission.objects.get(pk=rows.permission.pk).content_type_id == setting_type.pk

    audit = AuditEntry.objects.get(pk=rows.audit.pk)
    assert (audit.actor_id, audit.action, audit.target_id, audit.changes, audit.request_id) == (
        operator.pk,
        "app_setting.update",
        "trading_fee_rate",
        {"value": {"from": "0.0005", "to": FEE_RATE}},
        "req-1",
    )
    assert audit.created_at == WHEN


def test_the_previous_layout_migrates_forward_with_its_data(old_apps: Apps) -> None:
    rows = seed(old_apps)

    assert_intact(rows, migrate_to_latest())


def test_migrating_back_to_the_previous_layout_and_forward_again_keeps_the_data(old_apps: Apps) -> None:
    rows = seed(old_apps)
    migrate_to_latest()

    old_apps = migrate_to(OLD_LEAVES)
    setting = old_apps.get_model("providers", "AppSetting").objects.get(key="trading_fee_rate")
    assert (setting.value, setting.updated_by_id) == (FEE_RATE, rows.operator.pk)
    assert "appsetting" not in old_apps.all_models["core"]
    content_type = old_apps.get_model("contenttypes", "ContentType")
    assert content_type.objects.get(pk=rows.setting_type.pk).app_label == "providers"
    assert not content_type.objects.filter(app_label="core", model="appsetting").exists()
    entries = old_apps.get_model("ledger", "LedgerEntry").objects.filter(
        transaction__in=(rows.deposit.pk, rows.lock.pk)
    )
    assert sorted(entry.amount for entry in entries) == sorted([DEPOSIT, -DEPOSIT, LOCKED, -LOCKED])

    assert_intact(rows, migrate_to_latest())
