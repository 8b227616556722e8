"""Email and password accounts, email verification, and operators' switches on a user."""

from __future__ import annotations

from allauth.account import app_settings as allauth_settings
from allauth.account.models import EmailAddress, EmailConfirmation, EmailConfirmationHMAC
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import errors
from accounts.errors import PasswordRejected
from accounts.models import AuthIdentity, AuthMethod, User
from accounts.selectors import user_email_verified
from accounts.services.tokens import tokens_revoke_all
from marqetfi.core.audit import audit_record


def email_verification_mode() -> str:
    return str(settings.ACCOUNT_EMAIL_VERIFICATION).lower()


def email_normalize(email: str) -> str:
    return User.objects.normalize_email(email)


def email_taken(email: str, *, exclude_user: User | None = None) -> bool:
    users = User.objects.filter(email__iexact=email)
    identities = AuthIdentity.objects.filter(method=AuthMethod.EMAIL, subject=email)
    if exclude_user is not None:
        users = users.exclude(pk=exclude_user.pk)
        identities = identities.exclude(user=exclude_user)
    return users.exists() or identities.exists()


def password_check(*, password: str, user: User, field: str = "password") -> None:
    """Django's password validators; their messages under ``field`` in the error's details."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise PasswordRejected(details={field: list(exc.messages)}) from exc


def email_verification_send(*, request: HttpRequest | None, user: User, signup: bool = False) -> bool:
    """Mail a verification link for the user's address, unless verification is off or done."""
    if email_verification_mode() == "none" or not user.email:
        return False
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is None or address.verified:
        return False
    address.send_confirmation(request, signup=signup)
    return True


@transaction.atomic
def user_register(*, request: HttpRequest | None, email: str, password: str, display_name: str = "") -> User:
    email = email_normalize(email)
    if email_taken(email):
        raise errors.EmailInUse()
    password_check(password=password, user=User(email=email, display_name=display_name))
    user = User.objects.create_user(email=email, password=password, display_name=display_name)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
    AuthIdentity.objects.create(user=user, method=AuthMethod.EMAIL, subject=email, email=email)
    transaction.on_commit(lambda: email_verification_send(request=request, user=user, signup=True))
    return user


_DUMMY_PASSWORD_HASH = make_password("timing-equaliser")


def user_login(*, email: str, password: str) -> User:
    """Check email and password; the same error whether the email or the password is wrong."""
    email = email_normalize(email)
    user = User.objects.filter(email__iexact=email).first()
    if user is None or not user.has_usable_password():
        # Spend the time a real check takes, so response time does not tell which emails exist.
        User(password=_DUMMY_PASSWORD_HASH).check_password(password)
        raise errors.InvalidCredentials()
    if not user.check_password(password):
        raise errors.InvalidCredentials()
    if not user.is_active:
        raise errors.AccountDisabled()
    if email_verification_mode() == "mandatory" and not user_email_verified(user=user):
        raise errors.EmailNotVerified()
    AuthIdentity.objects.filter(user=user, method=AuthMethod.EMAIL).update(last_used_at=timezone.now())
    return user


@transaction.atomic
def email_verify(*, request: HttpRequest, key: str) -> User:
    confirmation: EmailConfirmationHMAC | EmailConfirmation | None = EmailConfirmationHMAC.from_key(key)
    if confirmation is None and not allauth_settings.EMAIL_CONFIRMATION_HMAC:
        confirmation = EmailConfirmation.from_key(key)
    if confirmation is None:
        raise errors.InvalidVerificationKey()
    address = confirmation.confirm(request)
    if address is None:
        raise errors.InvalidVerificationKey()
    AuthIdentity.objects.filter(
        user_id=address.user_id, method=AuthMethod.EMAIL, subject=address.email
    ).update(email_verified=True)
    return User.objects.get(pk=address.user_id)


@transaction.atomic
def user_trading_set(*, user: User, enabled: bool, actor: User | None = None) -> User:
    if user.trading_enabled != enabled:
        user.trading_enabled = enabled
        user.save(update_fields=["trading_enabled", "updated_at"])
        audit_record(
            actor=actor,
            action="user.trading",
            target_type="user",
            target_id=user.pk,
            changes={"enabled": enabled},
        )
    return user


@transaction.atomic
def user_sign_in_set(*, user: User, enabled: bool, actor: User | None = None) -> User:
    """Disabling sign-in also ends every session: the token version moves on and refresh
    tokens are blacklisted (``tokens_revoke_all``); access tokens stop working at once."""
    if user.is_active != enabled:
        user.is_active = enabled
        user.save(update_fields=["is_active", "updated_at"])
        audit_record(
            actor=actor,
            action="user.sign_in",
            target_type="user",
            target_id=user.pk,
            changes={"enabled": enabled},
        )
    if not enabled:
        tokens_revoke_all(user=user)
    return user


@transaction.atomic
def user_staff_set(*, user: User, staff: bool, actor: User | None = None) -> User:
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff", "updated_at"])
        audit_record(
            actor=actor, action="user.staff", target_type="user", target_id=user.pk, changes={"staff": staff}
        )
    return user


@transaction.atomic
def user_profile_update(*, user: User, display_name: str) -> User:
    user.display_name = display_name
    user.save(update_fields=["display_name", "updated_at"])
    return user
