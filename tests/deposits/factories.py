"""Deposit rows made directly, in the states the state machine leaves them (no chain involved)."""

from __future__ import annotations

from typing import Any, cast

import factory
from django.utils import timezone

from deposits.models import Deposit, DepositSource, DepositStatus, DepositTransition, Swap, SwapStatus
from tests.accounts.factories import UserFactory

TEST_CHAIN_ID = 421614
USDT = "0x3333333333333333333333333333333333333333"
DEPOSIT_ADDRESS = "0x1111111111111111111111111111111111111111"
SENDER = "0x2222222222222222222222222222222222222222"


class DepositFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deposit

    user = factory.SubFactory(UserFactory)
    chain_id = TEST_CHAIN_ID
    tx_hash = factory.Sequence(lambda n: f"0x{n:064x}")
    log_index = 0
    block_number = 100
    block_hash = factory.Sequence(lambda n: f"0x{n + 10**6:064x}")
    from_address = SENDER
    to_address = DEPOSIT_ADDRESS
    token_address = USDT
    token_symbol = "USDT"
    token_decimals = 6
    amount_raw = 25_000_000
    source = DepositSource.SCAN
    status = DepositStatus.FAILED
    confirmations = 3
    confirmations_required = 3
    failure_code = factory.LazyAttribute(lambda o: "swap_failed" if o.status == DepositStatus.FAILED else "")


class SwapFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Swap

    deposit = factory.SubFactory(DepositFactory)
    attempt = factory.Sequence(lambda n: n + 1)
    status = SwapStatus.FAILED
    tool = "stargate"
    from_chain_id = TEST_CHAIN_ID
    from_token = USDT
    from_amount_raw = 25_000_000
    to_chain_id = 42161
    to_token = "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"
    to_address = DEPOSIT_ADDRESS
    quoted_to_amount_raw = 24_900_000
    quoted_to_amount_min_raw = 24_800_000
    tx_hash = factory.Sequence(lambda n: f"0x{n + 10**7:064x}")
    failure_code = "swap_failed"
    finished_at = factory.LazyFunction(timezone.now)


class DepositTransitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DepositTransition

    deposit = factory.SubFactory(DepositFactory)
    from_status = ""
    to_status = DepositStatus.DETECTED
    reason = "found by scan"


def new_deposit(**fields: Any) -> Deposit:
    return cast(Deposit, DepositFactory(**fields))
