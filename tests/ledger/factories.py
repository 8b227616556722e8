from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from accounts.models import User
from ledger.models import LedgerAccount
from ledger.services import ledger_accounts_for_user, ledger_transaction_post, platform_account
from tests.accounts.factories import UserFactory


def fund(user: Any, amount: str | Decimal) -> LedgerAccount:
    """Credit the user's available USDC from deposits clearing, as a confirmed deposit would."""
    available = ledger_accounts_for_user(user=user).available
    clearing = platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING)
    ledger_transaction_post(
        kind="deposit", legs=[(available, Decimal(amount)), (clearing, -Decimal(amount))], reference="test"
    )
    return available


def new_user() -> User:
    return cast(User, UserFactory())
