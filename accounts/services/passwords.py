"""Changing a password, and resetting a forgotten one by email.

Both sign the user out everywhere (``tokens_revoke_all``): whoever knew the old password
loses every session it opened.

A reset proves control of the account's email address. When that address was not verified
before, the reset is the first proof anyone gave of owning it: the account may have been
registered by someone else with the owner's address (squatting), so whatever that person
attached to sign in or to claim the account is detached: every sign-in identity but the
email one, and the external wallets (a linked wallet address signs in to its account
through SIWE). Wallets we created for the account (MPC) stay with it, as do its balances,
orders and webhook endpoints, which the owner now sees and controls; an audit entry lists
what was detached.
"""

from __future__ import annotations

import logging

from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from allauth.core.context import request_context
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from accounts import errors
from accounts.models import AuthIdentity, AuthMethod, User, Wallet, WalletKind
from accounts.selectors import user_email_verified
from accounts.services.tokens import tokens_revoke_all
from accounts.services.users import email_normalize, password_check
from accounts.verification.password_reset import password_reset_key_make, password_reset_key_user
from marqetfi.core.audit import audit_record

logger = logging.getLogger(__name__)


@transaction.atomic
def password_change(*, user: User, old_password: str, new_password: str) -> User:
    """Set a new password after checking the current one; every other session is signed out
    (the caller gets fresh tokens from the view)."""
    if not user.has_usable_password():
        raise errors.NoPassword()
    if not user.check_password(old_password):
        raise errors.WrongPassword(details={"old_password": ["The current password is wrong."]})
    password_check(password=new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password", "updated_at"])
    tokens_revoke_all(user=user)
    return user


def password_reset_request(*, request: HttpRequest | None, email: str) -> None:
    """Mail a reset key to the account signing in with ``email``, if there is one that can
    sign in; nothing happens otherwise, and the caller cannot tell which (no enumeration)."""
    email = email_normalize(email)
    identity = (
        AuthIdentity.objects.select_related("user")
        .filter(method=AuthMethod.EMAIL, subject=email, user__is_active=True)
        .first()
    )
    if identity is None or identity.user.email != email:
        return
    user = identity.user
    transaction.on_commit(lambda: _password_reset_mail_send(request=request, user=user))


def _password_reset_mail_send(*, request: HttpRequest | None, user: User) -> None:
    adapter = get_adapter(request)
    key = password_reset_key_make(user=user)
    context = {
        "user": user,
        "password_reset_url": adapter.get_reset_password_from_key_url(key),
        "key": key,
        "expires_minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
        "request": request,
    }
    with request_context(request):
        adapter.send_password_reset_mail(user, str(user.email), context)


@transaction.atomic
def password_reset_confirm(*, key: str, new_password: str) -> User:
    """Set the password of the key's user; signs out everywhere, marks the email verified and,
    when it was not, detaches what a squatter could have attached (see the module's doc)."""
    user = password_reset_key_user(key=key)
    if user is None:
        raise errors.InvalidPasswordResetKey()
    User.objects.select_for_update().filter(pk=user.pk).first()
    # Checked again under the lock: a concurrent reset with the same key has changed the
    # password hash by now, which voids the key.
    user = password_reset_key_user(key=key)
    if user is None:
        raise errors.InvalidPasswordResetKey()
    if not user.is_active:
        raise errors.AccountDisabled()
    password_check(password=new_password, user=user, field="new_password")
    email = str(user.email)
    was_verified = user_email_verified(user=user)
    user.set_password(new_password)
    user.save(update_fields=["password", "updated_at"])
    address, _ = EmailAddress.objects.get_or_create(
        user=user, email=email, defaults={"primary": True, "verified": True}
    )
    if not address.verified:
        address.verified = True
        address.save(update_fields=["verified"])
    AuthIdentity.objects.filter(user=user, method=AuthMethod.EMAIL, subject=email).update(email_verified=True)
    detached: dict[str, list[str]] = {"identities": [], "wallets": []}
    if not was_verified:
        identities = AuthIdentity.objects.filter(user=user).exclude(method=AuthMethod.EMAIL)
        detached["identities"] = [f"{i.method}:{i.subject}" for i in identities]
        identities.delete()
        wallets = Wallet.objects.filter(user=user, kind=WalletKind.EXTERNAL)
        detached["wallets"] = [w.address for w in wallets]
        wallets.delete()
    audit_record(
        actor=user,
        action="user.password_reset",
        target_type="user",
        target_id=user.pk,
        changes={"email_was_verified": was_verified, "detached": detached},
    )
    tokens_revoke_all(user=user)
    return user
