"""Venues traded from the user's own wallet (``providers.base.WalletTradedVenue``, Ostium):
the transactions they build are signed and sent by the user's wallet provider, one by one.

Why the wallet sends each transaction, not a delegate: Ostium also lets a trader appoint a
delegate (``setDelegate``) whose ``delegatedAction`` calls trade for them. The delegate
would be one platform key able to trade for every user who appointed it, the single key
for everyone that DESIGN.md rules out; and the USDC approval to TradingStorage cannot be
delegated anyway, so the wallet has to send transactions in any case. A custodial (MPC)
wallet signs without the user's interaction, so sending each trade from it costs no more
than a delegate would. The delegate would pay the gas; here the wallet does, topped up from
the chain's gas station (``ChainDirectory.gas_topup``).

Funding: the collateral must be USDC in the wallet on the venue's chain. Our ledger locks it
in the user's margin when the order is placed, and the platform sends the wallet what it
lacks from the chain's gas station before the trade (``venues.venue_wallet_fund``, recorded
in the ledger); a wallet that still holds less than the collateral has its order rejected
(``wallet_underfunded``) before anything is sent.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from accounts.models import Wallet, WalletKind
from marqetfi.core.errors import ApplicationError
from providers import registry
from providers.base import EvmTransaction, TokenSpec, Venue, WalletTrade, WalletTradedVenue
from providers.breaker import call_provider
from providers.chains.evm.client import EvmChainClient
from providers.errors import ProviderError, ProviderNotConfigured
from trading.models import ProtectiveOrder

# The gas float a wallet is topped up to before an estimate: one block's gas (Arbitrum's
# and the local chain's blocks hold about 30M), at the current maximum fee.
GAS_FLOAT_UNITS = 30_000_000
# How long a send waits for a setup transaction (an approval, a gas top-up) to be mined.
MINED_WITHIN_SECONDS = 30.0
MINED_POLL_SECONDS = 0.2
NATIVE_KINDS = frozenset({ProtectiveOrder.Kind.STOP_LOSS, ProtectiveOrder.Kind.TAKE_PROFIT})


class WalletNotReady(ApplicationError):
    """The user's wallet cannot send this trade (no wallet, not enough USDC or gas)."""

    code = "wallet_not_ready"
    status_code = 409
    default_message = "The wallet cannot send this trade."


def wallet_venue(venue: Venue) -> WalletTradedVenue | None:
    """The venue as one traded from the user's wallet, or None for any other venue."""
    return venue if isinstance(venue, WalletTradedVenue) else None


def traded_from_wallet(provider: str) -> bool:
    """Whether the venue ``provider`` is traded from the user's wallet (False if unknown)."""
    try:
        venue = registry.venue(provider)
    except ProviderNotConfigured:
        return False
    return wallet_venue(venue) is not None


def native_protection_kinds(provider: str) -> frozenset[str]:
    """The protective kinds the venue ``provider`` holds itself (``native``): stop-loss and
    take-profit at a venue traded from the wallet; none elsewhere (all ``synthetic``)."""
    return NATIVE_KINDS if traded_from_wallet(provider) else frozenset()


def trading_wallet(*, user_id: Any, address: str) -> Wallet:
    """The user's MPC wallet whose address is the venue account (``account_ref``)."""
    wallet = (
        Wallet.objects.filter(user_id=user_id, kind=WalletKind.MPC, address__iexact=address)
        .exclude(provider_wallet_id="")
        .first()
    )
    if wallet is None:
        raise WalletNotReady(
            "The venue account is not a wallet the platform can sign with.", details={"address": address}
        )
    return wallet


def wallet_trade_send(
    *, venue: WalletTradedVenue, wallet: Wallet, trade: WalletTrade, collateral: Decimal = Decimal(0)
) -> str:
    """Send ``trade`` from ``wallet``: check it holds ``collateral`` in the venue's token,
    top its gas up from the gas station before each send when short, send the setup transactions (each must
    be mined and succeed), then the action; returns the action's hash.

    Raises ``WalletNotReady`` before sending anything when the wallet cannot pay, and the
    wallet provider's ``ProviderError`` when a send fails (an estimate that reverts: the
    venue's ``revert_reason`` names why).
    """
    chain_id = venue.wallet_chain_id
    token = venue.collateral_token()
    _funds_check(chain_id=chain_id, wallet=wallet, token=token, collateral=collateral)
    for setup in trade.setup:
        tx_hash = _send(wallet, setup, chain_id=chain_id)
        if not transaction_mined(chain_id, tx_hash):
            raise ProviderError(wallet.provider, f"setup transaction {tx_hash} was not mined or reverted")
    return _send(wallet, trade.action, chain_id=chain_id)


def wallet_transactions_send(
    *, venue: WalletTradedVenue, wallet: Wallet, transactions: list[EvmTransaction]
) -> list[str]:
    """Send changes that start no order (stop updates) one after the other, each mined and
    successful before the next; their hashes."""
    chain_id = venue.wallet_chain_id
    hashes = []
    for transaction in transactions:
        tx_hash = _send(wallet, transaction, chain_id=chain_id)
        if not transaction_mined(chain_id, tx_hash):
            raise ProviderError(wallet.provider, f"transaction {tx_hash} was not mined or reverted")
        hashes.append(tx_hash)
    return hashes


def _send(wallet: Wallet, transaction: EvmTransaction, *, chain_id: int) -> str:
    _gas_ensure(chain_id=chain_id, wallet=wallet, transaction=transaction)
    provider = registry.wallet_provider(wallet.provider)
    sent = call_provider(
        wallet.provider,
        provider.sign_and_send_transaction,
        provider_wallet_id=wallet.provider_wallet_id,
        transaction=transaction,
    )
    return sent.tx_hash.lower()


def transaction_mined(chain_id: int, tx_hash: str) -> bool:
    """Wait (a few seconds at most) for ``tx_hash``; True once mined successfully."""
    client = registry.chain_client(chain_id)
    deadline = time.monotonic() + MINED_WITHIN_SECONDS
    while True:
        receipt = client.receipt(tx_hash=tx_hash)
        if receipt is not None:
            return receipt.success
        if time.monotonic() > deadline:
            return False
        time.sleep(MINED_POLL_SECONDS)


def wallet_token_held(*, chain_id: int, address: str, token: TokenSpec) -> int:
    """What ``address`` holds of ``token`` on the chain, in the token's base units."""
    balances = registry.chain_client(chain_id).balances(address=address, tokens=[token])
    return next((b.raw for b in balances if (b.token_address or "").lower() == token.address.lower()), 0)


def _funds_check(*, chain_id: int, wallet: Wallet, token: TokenSpec, collateral: Decimal) -> None:
    if collateral <= 0:
        return
    held = Decimal(wallet_token_held(chain_id=chain_id, address=wallet.address, token=token)).scaleb(
        -token.decimals
    )
    if held < collateral:
        raise WalletNotReady(
            f"The wallet holds {held} {token.symbol} on chain {chain_id}; the trade needs {collateral}.",
            details={"code": "wallet_underfunded", "held": str(held), "needed": str(collateral)},
        )


def _gas_ensure(*, chain_id: int, wallet: Wallet, transaction: EvmTransaction) -> None:
    """The wallet holds the gas ``transaction`` may cost, topped up from the chain's gas
    station when it does not: first to a float of one block's gas at the current maximum
    fee (a node estimates with a block's gas as the cap, and some refuse to estimate for a
    sender that could not pay it), then to what the estimate says. An estimate that reverts
    raises the chain's ``ProviderError`` here, before the transaction is sent."""
    client = registry.chain_client(chain_id)
    if not isinstance(client, EvmChainClient):
        return
    balance = client.balances(address=wallet.address, tokens=[])[0].raw
    floor = GAS_FLOAT_UNITS * client.max_fee_per_gas()
    if balance < floor:
        _gas_topup(chain_id=chain_id, wallet=wallet, wei=floor - balance, balance=balance)
        balance = floor
    fields = client.fill_transaction(from_address=wallet.address, transaction=transaction)
    needed = (
        int(fields["gas"]) * int(fields.get("maxFeePerGas") or fields.get("gasPrice") or 0)
        + transaction.value
    )
    if balance < needed:
        _gas_topup(chain_id=chain_id, wallet=wallet, wei=needed - balance, balance=balance)


def _gas_topup(*, chain_id: int, wallet: Wallet, wei: int, balance: int) -> None:
    topup = registry.chain_directory().gas_topup(chain_id=chain_id, to_address=wallet.address, wei=wei)
    if topup is None:
        raise WalletNotReady(
            "The wallet holds too little gas and this chain has no gas station.",
            details={
                "code": "insufficient_gas",
                "balance_wei": str(balance),
                "needed_wei": str(balance + wei),
            },
        )
    if not transaction_mined(chain_id, topup):
        raise WalletNotReady("The gas top-up was not mined in time.", details={"code": "insufficient_gas"})
