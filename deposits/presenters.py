"""A deposit as clients see it: in the API, on the WebSocket ``deposits`` channel and in webhooks."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from deposits.app_settings import DEPOSIT_POLICY
from deposits.models import NATIVE_TOKEN, Deposit, DepositTransition, Swap
from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.formats import decimal_text, timestamp_text
from providers import registry


def _scaled(raw: Any, decimals: int) -> str:
    return decimal_text(Decimal(int(raw)).scaleb(-decimals))


def swap_data(swap: Swap, *, settlement_decimals: int) -> dict[str, Any]:
    return {
        "id": str(swap.id),
        "attempt": swap.attempt,
        "provider": swap.provider,
        "status": swap.status,
        "tool": swap.tool,
        "tx_hash": swap.tx_hash or None,
        "approval_tx_hash": swap.approval_tx_hash or None,
        "receiving_tx_hash": swap.receiving_tx_hash or None,
        "provider_status": swap.provider_status or None,
        "provider_substatus": swap.provider_substatus or None,
        "quoted_amount_usdc": _scaled(swap.quoted_to_amount_raw, settlement_decimals),
        "quoted_min_amount_usdc": _scaled(swap.quoted_to_amount_min_raw, settlement_decimals),
        "received_amount_usdc": (
            _scaled(swap.received_amount_raw, settlement_decimals)
            if swap.received_amount_raw is not None
            else None
        ),
        "failure_code": swap.failure_code or None,
        "created_at": timestamp_text(swap.created_at),
        "finished_at": timestamp_text(swap.finished_at) if swap.finished_at else None,
    }


def deposit_data(
    deposit: Deposit, *, swaps: list[Swap] | None = None, settlement_decimals: int = 6
) -> dict[str, Any]:
    """``amount`` is in the received token; ``amount_usdc`` is what was (or, while a swap is
    under way, is expected to be) credited in USDC; ``swaps`` lists every quote step."""
    if swaps is None:
        swaps = list(deposit.swaps.order_by("attempt"))
    latest = swaps[-1] if swaps else None
    if deposit.credited_amount is not None:
        amount_usdc: str | None = decimal_text(deposit.credited_amount)
    elif latest is not None:
        amount_usdc = _scaled(latest.quoted_to_amount_raw, settlement_decimals)
    else:
        amount_usdc = None
    return {
        "id": str(deposit.id),
        "status": deposit.status,
        "source": deposit.source,
        "chain_id": deposit.chain_id,
        "chain_name": registry.chain_name(deposit.chain_id),
        "tx_hash": deposit.tx_hash,
        "log_index": deposit.log_index,
        "block_number": deposit.block_number,
        "from_address": deposit.from_address or None,
        "to_address": deposit.to_address,
        "token": {
            "symbol": deposit.token_symbol,
            "address": None if deposit.token_address == NATIVE_TOKEN else deposit.token_address,
            "decimals": deposit.token_decimals,
            "native": deposit.token_address == NATIVE_TOKEN,
        },
        "amount": _scaled(deposit.amount_raw, deposit.token_decimals),
        "amount_raw": str(int(deposit.amount_raw)),
        "amount_usdc": amount_usdc,
        "credited_amount": (
            decimal_text(deposit.credited_amount) if deposit.credited_amount is not None else None
        ),
        "confirmations": deposit.confirmations,
        "confirmations_required": deposit.confirmations_required,
        "swap": swap_data(latest, settlement_decimals=settlement_decimals) if latest else None,
        "swaps": [swap_data(swap, settlement_decimals=settlement_decimals) for swap in swaps],
        "swap_attempts": deposit.swap_attempts,
        "failure_code": deposit.failure_code or None,
        "failure_reason": deposit.failure_reason or None,
        "resource_version": deposit.resource_version,
        "created_at": timestamp_text(deposit.created_at),
        "updated_at": timestamp_text(deposit.updated_at),
        "completed_at": timestamp_text(deposit.completed_at) if deposit.completed_at else None,
    }


def _settlement_decimals() -> int:
    return app_setting(DEPOSIT_POLICY).settlement_decimals


def deposits_data(deposits: Iterable[Deposit]) -> list[dict[str, Any]]:
    """``deposit_data`` of each, its swaps read from the prefetched ``swaps`` (the selectors
    prefetch them by attempt): no query per deposit."""
    decimals = _settlement_decimals()
    return [
        deposit_data(deposit, swaps=list(deposit.swaps.all()), settlement_decimals=decimals)
        for deposit in deposits
    ]


def transition_data(transition: DepositTransition, *, with_actor: bool = False) -> dict[str, Any]:
    """One step of the history. Users never see who did it; operators see the actor's email
    and the step's details."""
    data: dict[str, Any] = {
        "from": transition.from_status or None,
        "to": transition.to_status,
        "reason": transition.reason,
        "at": timestamp_text(transition.created_at),
    }
    if with_actor:
        actor = transition.actor
        data["actor_id"] = str(actor.pk) if actor is not None else None
        data["actor_email"] = (actor.email or None) if actor is not None else None
        data["details"] = transition.details
    return data


def deposit_detail_data(deposit: Deposit, *, with_actor: bool = False) -> dict[str, Any]:
    """``deposit_data`` with the whole history under ``transitions``, oldest first (prefetched
    by ``deposit_get_for_user`` / ``deposit_get``)."""
    [data] = deposits_data([deposit])
    data["transitions"] = [
        transition_data(transition, with_actor=with_actor) for transition in deposit.transitions.all()
    ]
    return data
