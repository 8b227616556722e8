from __future__ import annotations

from uuid import UUID

from allauth.account.models import EmailAddress
from django.db.models import QuerySet

from accounts.models import AuthIdentity, User, Wallet


def user_email_verified(*, user: User) -> bool:
    if not user.email:
        return False
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()


def identities_for_user(*, user: User) -> QuerySet[AuthIdentity]:
    return AuthIdentity.objects.filter(user=user).order_by("created_at")


def wallets_for_user(*, user: User) -> QuerySet[Wallet]:
    return Wallet.objects.filter(user=user).order_by("created_at")


def wallet_get_for_user(*, user: User, wallet_id: UUID | str) -> Wallet | None:
    return Wallet.objects.filter(user=user, pk=wallet_id).first()
