"""How deposits come in: the chain scanner and the user's report of a transaction hash.

Both end in ``deposit_record``, which creates the one row per transfer (or finds it: the
unique constraint makes a scanned and a reported transfer the same deposit) and publishes
``deposit.received``. The scanner re-reads the last ``confirmations`` blocks on every run,
so a transfer re-mined in another block after a reorganisation is found again; the state
machine (``deposits.services.machine``) checks every deposit's receipt before it counts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Wallet, WalletKind
from deposits import errors
from deposits.models import (
    NATIVE_LOG_INDEX,
    NATIVE_TOKEN,
    ChainScanCursor,
    Deposit,
    DepositSource,
    DepositStatus,
    DepositTransition,
    Swap,
)
from deposits.presenters import deposit_data
from marqetfi.core.alerts import operator_alert_raise
from marqetfi.core.events import publish
from providers import registry
from providers.base import ChainClient, ChainSpec, NativeTransfer, TokenTransfer
from providers.errors import ProviderError, ProviderNotConfigured

logger = logging.getLogger(__name__)

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
NATIVE_DECIMALS = 18
NATIVE_SYMBOL = "ETH"


@dataclass(frozen=True)
class FoundTransfer:
    """A transfer to one of our users' addresses, as read from the chain."""

    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    token_address: str
    token_symbol: str
    token_decimals: int
    raw: int


def deposit_chain_spec(chain_id: int) -> ChainSpec:
    """The chain's configuration if it takes deposits, else ``UnsupportedChain``."""
    try:
        spec = registry.chain_spec(chain_id)
    except ProviderNotConfigured:
        raise errors.UnsupportedChain(details={"chain_id": chain_id}) from None
    if not spec.deposits_enabled:
        raise errors.UnsupportedChain(details={"chain_id": chain_id})
    return spec


def _platform_transactions(chain_id: int, tx_hashes: set[str]) -> set[str]:
    """Which of ``tx_hashes`` are the platform's own on this chain (a swap's transaction or its
    delivery): what they pay to a deposit address is not a deposit."""
    if not tx_hashes:
        return set()
    sent = Swap.objects.filter(from_chain_id=chain_id, tx_hash__in=tx_hashes).values_list(
        "tx_hash", flat=True
    )
    delivered = Swap.objects.filter(to_chain_id=chain_id, receiving_tx_hash__in=tx_hashes).values_list(
        "receiving_tx_hash", flat=True
    )
    return set(sent) | set(delivered)


def _not_deposits(chain_id: int, transfers: list[FoundTransfer]) -> list[FoundTransfer]:
    """Drop what the platform itself sent: gas station top-ups, swap transactions and deliveries."""
    station = registry.chain_directory().gas_station_address(chain_id)
    ours = _platform_transactions(chain_id, {transfer.tx_hash for transfer in transfers})
    return [
        transfer
        for transfer in transfers
        if transfer.tx_hash not in ours and not (station and transfer.from_address.lower() == station.lower())
    ]


def deposit_record(
    *, user_id: Any, wallet_id: Any, found: FoundTransfer, source: str, confirmations_required: int
) -> tuple[Deposit, bool]:
    """The deposit for ``found``, created (``deposit.received`` published) or found again."""
    existing = Deposit.objects.filter(
        chain_id=found.chain_id, tx_hash=found.tx_hash, log_index=found.log_index
    ).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            deposit = Deposit.objects.create(
                user_id=user_id,
                wallet_id=wallet_id,
                chain_id=found.chain_id,
                tx_hash=found.tx_hash,
                log_index=found.log_index,
                block_number=found.block_number,
                block_hash=found.block_hash,
                from_address=found.from_address,
                to_address=found.to_address,
                token_address=found.token_address,
                token_symbol=found.token_symbol,
                token_decimals=found.token_decimals,
                amount_raw=found.raw,
                source=source,
                status=DepositStatus.DETECTED,
                confirmations_required=confirmations_required,
                next_action_at=timezone.now(),
            )
            DepositTransition.objects.create(
                deposit=deposit, from_status="", to_status=DepositStatus.DETECTED, reason=f"found by {source}"
            )
            publish(user_id=user_id, type="deposit.received", data=deposit_data(deposit, swaps=[]))
    except IntegrityError:  # found at the same moment by the scanner and a report
        raced = Deposit.objects.filter(
            chain_id=found.chain_id, tx_hash=found.tx_hash, log_index=found.log_index
        ).first()
        if raced is None:
            raise
        return raced, False
    return deposit, True


def _deposit_wallets(addresses: set[str] | None = None) -> dict[str, Wallet]:
    """Users' MPC wallets (their deposit addresses), keyed by lower-case address."""
    wallets = Wallet.objects.filter(kind=WalletKind.MPC, chain_type="ethereum")
    found = {wallet.address.lower(): wallet for wallet in wallets}
    if addresses is not None:
        return {address: wallet for address, wallet in found.items() if address in addresses}
    return found


def _token_found(spec: ChainSpec, transfer: TokenTransfer, block_hash: str) -> FoundTransfer | None:
    token = spec.token(transfer.token_address)
    if token is None:
        return None
    return FoundTransfer(
        chain_id=spec.chain_id,
        tx_hash=transfer.tx_hash,
        log_index=transfer.log_index,
        block_number=transfer.block_number,
        block_hash=block_hash,
        from_address=transfer.from_address,
        to_address=transfer.to_address,
        token_address=token.address,
        token_symbol=token.symbol,
        token_decimals=token.decimals,
        raw=transfer.raw,
    )


def _native_found(spec: ChainSpec, transfer: NativeTransfer, block_hash: str) -> FoundTransfer:
    return FoundTransfer(
        chain_id=spec.chain_id,
        tx_hash=transfer.tx_hash,
        log_index=NATIVE_LOG_INDEX,
        block_number=transfer.block_number,
        block_hash=block_hash,
        from_address=transfer.from_address,
        to_address=transfer.to_address,
        token_address=NATIVE_TOKEN,
        token_symbol=NATIVE_SYMBOL,
        token_decimals=NATIVE_DECIMALS,
        raw=transfer.raw,
    )


def _block_hash(client: ChainClient, known: dict[int, str], number: int) -> str:
    if number not in known:
        known[number] = client.block_hash(number=number) or ""
    return known[number]


@dataclass(frozen=True)
class ScanResult:
    chain_id: int
    from_block: int
    to_block: int
    found: int
    created: int


def deposits_scan_chain(*, chain_id: int) -> ScanResult | None:
    """Scan one chain from its cursor (less the confirmation depth) to the head, in ranges of
    the chain's ``scan_batch_blocks``, at most ``DEPOSIT_SCAN_MAX_BLOCKS_PER_RUN`` blocks a run.

    The cursor moves only after a range is fully recorded, so a crash re-reads it (the unique
    constraint absorbs what was already recorded). A head below the cursor (the chain was
    reset, or reorganised deeper than any confirmation depth) moves the cursor back and alerts.
    """
    spec = deposit_chain_spec(chain_id)
    client = registry.chain_client(chain_id)
    head = client.block_number()
    first_block = spec.scan_from_block if spec.scan_from_block is not None else head - spec.confirmations + 1
    cursor, created = ChainScanCursor.objects.get_or_create(
        chain_id=chain_id, defaults={"last_block": max(first_block - 1, -1)}
    )
    if created:
        logger.info("Deposit scanning of chain %s starts at block %s", chain_id, cursor.last_block + 1)
    if cursor.last_block > head:
        operator_alert_raise(
            source="deposits",
            code="chain_head_behind_cursor",
            reference=f"chain:{chain_id}",
            message=(
                f"Chain {chain_id}'s head {head} is below the scanned block {cursor.last_block}: "
                "the chain was reset or reorganised deeper than expected. Scanning restarts below the head."
            ),
        )
        cursor.last_block = max(min(first_block, head) - 1, -1)
        cursor.save(update_fields=["last_block", "updated_at"])
    start = max(cursor.last_block + 1 - spec.confirmations, 0)
    end = min(head, start + settings.DEPOSIT_SCAN_MAX_BLOCKS_PER_RUN - 1)
    wallets = _deposit_wallets()
    found_count = created_count = 0
    recipients = [wallet.address for wallet in wallets.values()]
    token_addresses = [token.address for token in spec.tokens]
    block = start
    while block <= end:
        last = min(block + spec.scan_batch_blocks - 1, end)
        transfers: list[FoundTransfer] = []
        if recipients:
            hashes: dict[int, str] = {}
            for token_transfer in client.token_transfers(
                tokens=token_addresses, recipients=recipients, from_block=block, to_block=last
            ):
                found = _token_found(
                    spec, token_transfer, _block_hash(client, hashes, token_transfer.block_number)
                )
                if found is not None:
                    transfers.append(found)
            for native in client.native_transfers(recipients=recipients, from_block=block, to_block=last):
                transfers.append(
                    _native_found(spec, native, _block_hash(client, hashes, native.block_number))
                )
        for found in _not_deposits(chain_id, transfers):
            wallet = wallets[found.to_address.lower()]
            _, was_created = deposit_record(
                user_id=wallet.user_id,
                wallet_id=wallet.pk,
                found=found,
                source=DepositSource.SCAN,
                confirmations_required=spec.confirmations,
            )
            found_count += 1
            created_count += int(was_created)
        if last > cursor.last_block:
            cursor.last_block = last
            cursor.last_block_hash = client.block_hash(number=last) or ""
            cursor.save(update_fields=["last_block", "last_block_hash", "updated_at"])
        block = last + 1
    return ScanResult(
        chain_id=chain_id, from_block=start, to_block=end, found=found_count, created=created_count
    )


def deposits_scan_all() -> list[ScanResult]:
    """Scan every chain that takes deposits; a chain whose RPC fails is logged and skipped."""
    results = []
    for chain_id in registry.configured_chain_ids():
        try:
            if not registry.chain_spec(chain_id).deposits_enabled:
                continue
            result = deposits_scan_chain(chain_id=chain_id)
        except (ProviderError, errors.UnsupportedChain) as exc:
            logger.warning("Deposit scan of chain %s failed: %s", chain_id, exc)
            continue
        if result is not None:
            results.append(result)
    return results


def _reported_transfers(
    spec: ChainSpec, tx_hash: str, user_wallets: dict[str, Wallet]
) -> list[FoundTransfer]:
    """The transfers of the mined transaction ``tx_hash`` to the caller's addresses in tokens
    the chain accepts; the refusals of ``deposit_report`` otherwise."""
    chain_id = spec.chain_id
    try:
        moved = registry.chain_client(chain_id).transaction_transfers(tx_hash=tx_hash)
    except ProviderNotConfigured:
        raise errors.UnsupportedChain(details={"chain_id": chain_id}) from None
    except ProviderError as exc:
        raise errors.ChainUnavailable(details={"chain_id": chain_id}) from exc
    if moved is None:
        raise errors.TransactionNotFound(details={"chain_id": chain_id, "tx_hash": tx_hash})
    if not moved.receipt.success:
        raise errors.TransactionFailed(details={"chain_id": chain_id, "tx_hash": tx_hash})
    block_hash = moved.receipt.block_hash
    found: list[FoundTransfer] = []
    to_caller = False
    if moved.native is not None and moved.native.to_address.lower() in user_wallets:
        to_caller = True
        found.append(_native_found(spec, moved.native, block_hash))
    for transfer in moved.token_transfers:
        if transfer.to_address.lower() not in user_wallets:
            continue
        to_caller = True
        token_found = _token_found(spec, transfer, block_hash)
        if token_found is not None:
            found.append(token_found)
    if not to_caller:
        raise errors.NotYourDepositAddress(details={"chain_id": chain_id, "tx_hash": tx_hash})
    if not found:
        raise errors.UnsupportedToken(
            details={"chain_id": chain_id, "accepted": [token.symbol for token in spec.tokens]}
        )
    return found


def deposit_report(*, user: User, chain_id: int, tx_hash: str) -> tuple[list[Deposit], bool]:
    """Verify a transaction the user says paid their deposit address; record what it paid.

    Refused with a clear code: an unsupported chain, an unknown or unmined hash, a reverted
    transaction, one paying nothing to the caller's address, only tokens the chain does not
    accept, or the platform's own transaction (a swap's delivery, a gas top-up). Returns the
    deposits (one per transfer to the caller) and whether any is new.
    An unconfirmed transaction is accepted and waits in ``confirming``.
    """
    if not isinstance(tx_hash, str) or not _TX_HASH.fullmatch(tx_hash):
        raise errors.InvalidTransactionHash(details={"tx_hash": ["Not a transaction hash."]})
    tx_hash = tx_hash.lower()
    spec = deposit_chain_spec(chain_id)
    user_wallets = {
        wallet.address.lower(): wallet
        for wallet in Wallet.objects.filter(user=user, kind=WalletKind.MPC, chain_type="ethereum")
    }
    found = _reported_transfers(spec, tx_hash, user_wallets)
    found = _not_deposits(chain_id, found)
    if not found:
        raise errors.PlatformTransaction(details={"chain_id": chain_id, "tx_hash": tx_hash})
    deposits = []
    any_new = False
    for transfer_found in found:
        wallet = user_wallets[transfer_found.to_address.lower()]
        deposit, created = deposit_record(
            user_id=user.pk,
            wallet_id=wallet.pk,
            found=transfer_found,
            source=DepositSource.REPORT,
            confirmations_required=spec.confirmations,
        )
        deposits.append(deposit)
        any_new = any_new or created
    return deposits, any_new
