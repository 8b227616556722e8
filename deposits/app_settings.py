"""Deposits' runtime settings: where deposits settle and the limits a swap must respect."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from eth_utils import is_address, to_checksum_address

from marqetfi.core.app_settings.definitions import (
    AppSettingDefinition,
    decimal_between,
    int_between,
    invalid,
    record,
)

# Native USDC on Arbitrum One (6 decimals): what every deposit becomes.
ARBITRUM_ONE = 42161
ARBITRUM_USDC = "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"


def _address_or_empty(value: Any) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not is_address(value):
        raise invalid("Expected an EVM address (0x and 40 hex digits) or an empty string.")
    return to_checksum_address(value)


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise invalid("Expected an EVM address (0x and 40 hex digits).")
    return to_checksum_address(value)


@dataclass(frozen=True)
class DepositPolicy:
    """Where deposits settle and what a swap may cost.

    ``settlement_chain_id`` / ``settlement_token``: USDC on Arbitrum in production (the local
    chain's test USDC under ``make run``); a deposit already in it is credited without a swap.
    ``collection_address``: the platform's address swaps deliver to (on the settlement chain);
    while it is empty, deposits that need a swap wait (and operators are alerted).
    ``max_slippage``: the fraction sent to LI-FI and the most a quote's minimum may lie below
    its estimate. ``max_fee_fraction``: fees and gas (USD) over the amount sent (USD).
    """

    settlement_chain_id: int
    settlement_token: str
    settlement_decimals: int
    collection_address: str
    max_slippage: Decimal
    max_fee_fraction: Decimal
    max_swap_attempts: int
    poll_base_seconds: int
    poll_max_seconds: int
    send_reconcile_seconds: int
    native_gas_reserve_wei: int
    max_credit_usdc: Decimal


DEPOSIT_POLICY: AppSettingDefinition[DepositPolicy] = AppSettingDefinition(
    key="deposit_policy",
    description=(
        "Deposits: the settlement chain and token (USDC on Arbitrum), where swaps deliver, the most "
        "slippage and fees a LI-FI quote may take, retries, status polling backoff, the native coin "
        "kept for gas, and the largest single credit."
    ),
    default=lambda: {
        "settlement_chain_id": settings.DEPOSIT_SETTLEMENT_CHAIN_ID,
        "settlement_token": settings.DEPOSIT_SETTLEMENT_TOKEN,
        "settlement_decimals": 6,
        "collection_address": settings.DEPOSIT_COLLECTION_ADDRESS,
        "max_slippage": "0.005",
        "max_fee_fraction": "0.03",
        "max_swap_attempts": 3,
        "poll_base_seconds": 5,
        "poll_max_seconds": 300,
        "send_reconcile_seconds": 300,
        "native_gas_reserve_wei": str(2 * 10**15),
        "max_credit_usdc": "1000000",
    },
    validate=record(
        {
            "settlement_chain_id": int_between(1, 2**53),
            "settlement_token": _address,
            "settlement_decimals": int_between(0, 18),
            "collection_address": _address_or_empty,
            "max_slippage": decimal_between(Decimal(0), Decimal("0.5"), places=6, exclusive=True),
            "max_fee_fraction": decimal_between(Decimal(0), Decimal("0.5"), places=6),
            "max_swap_attempts": int_between(1, 10),
            "poll_base_seconds": int_between(1, 600),
            "poll_max_seconds": int_between(1, 86_400),
            "send_reconcile_seconds": int_between(10, 86_400),
            "native_gas_reserve_wei": decimal_between(Decimal(0), Decimal(10) ** 24, places=0),
            "max_credit_usdc": decimal_between(Decimal(1), Decimal(10) ** 12, places=6),
        }
    ),
    build=lambda value: DepositPolicy(
        settlement_chain_id=int(value["settlement_chain_id"]),
        settlement_token=str(value["settlement_token"]),
        settlement_decimals=int(value["settlement_decimals"]),
        collection_address=str(value["collection_address"]),
        max_slippage=Decimal(value["max_slippage"]),
        max_fee_fraction=Decimal(value["max_fee_fraction"]),
        max_swap_attempts=int(value["max_swap_attempts"]),
        poll_base_seconds=int(value["poll_base_seconds"]),
        poll_max_seconds=int(value["poll_max_seconds"]),
        send_reconcile_seconds=int(value["send_reconcile_seconds"]),
        native_gas_reserve_wei=int(Decimal(value["native_gas_reserve_wei"])),
        max_credit_usdc=Decimal(value["max_credit_usdc"]),
    ),
    merge=True,
)

APP_SETTINGS = (DEPOSIT_POLICY,)
