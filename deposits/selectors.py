"""Reads of deposits. A user's reads are scoped to that user: another user's deposit is simply
not there (404). Every list prefetches the swaps (by attempt), so rendering a page with
``deposit_data`` costs the same few queries however many deposits it holds."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from deposits.errors import DepositNotFound
from deposits.models import ACTIVE_STATUSES, Deposit, DepositTransition, Swap


def _with_swaps(deposits: QuerySet[Deposit]) -> QuerySet[Deposit]:
    return deposits.prefetch_related(Prefetch("swaps", queryset=Swap.objects.order_by("attempt")))


def _with_history(deposits: QuerySet[Deposit]) -> QuerySet[Deposit]:
    transitions = DepositTransition.objects.select_related("actor").order_by("created_at", "id")
    return _with_swaps(deposits).prefetch_related(Prefetch("transitions", queryset=transitions))


def deposits_for_user(
    *, user: User, status: str | None = None, chain_id: int | None = None
) -> QuerySet[Deposit]:
    """The user's deposits, newest first, optionally of one status and one chain."""
    deposits = Deposit.objects.filter(user=user)
    if status:
        deposits = deposits.filter(status=status)
    if chain_id is not None:
        deposits = deposits.filter(chain_id=chain_id)
    return _with_swaps(deposits).order_by("-created_at")


def deposit_get_for_user(*, user: User, deposit_id: Any) -> Deposit:
    """One of the user's deposits with its swaps and transitions; ``DepositNotFound`` otherwise."""
    deposit = _with_history(Deposit.objects.filter(user=user, pk=deposit_id)).first()
    if deposit is None:
        raise DepositNotFound(details={"deposit_id": str(deposit_id)})
    return deposit


def deposits_pending_for_user(*, user: User) -> QuerySet[Deposit]:
    """The user's deposits still under way (not completed, failed, refunded or dropped), oldest first."""
    active = [status.value for status in ACTIVE_STATUSES]
    return _with_swaps(Deposit.objects.filter(user=user, status__in=active)).order_by("created_at")


def deposits_all(
    *, status: str | None = None, chain_id: int | None = None, user_id: Any = None
) -> QuerySet[Deposit]:
    """Every user's deposits (operators), newest first, with their owners."""
    deposits = Deposit.objects.select_related("user")
    if status:
        deposits = deposits.filter(status=status)
    if chain_id is not None:
        deposits = deposits.filter(chain_id=chain_id)
    if user_id is not None:
        deposits = deposits.filter(user_id=user_id)
    return _with_swaps(deposits).order_by("-created_at")


def deposit_get(*, deposit_id: Any) -> Deposit:
    """Any user's deposit (operators) with its owner, swaps and transitions (with their actors)."""
    deposit = _with_history(Deposit.objects.select_related("user").filter(pk=deposit_id)).first()
    if deposit is None:
        raise DepositNotFound(details={"deposit_id": str(deposit_id)})
    return deposit
