"""Signing in with, linking and unlinking identities: one user, many ways in, same wallets."""

from __future__ import annotations

from uuid import UUID

from allauth.account.models import EmailAddress
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import errors
from accounts.models import AuthIdentity, AuthMethod, User, Wallet, WalletKind
from accounts.selectors import user_email_verified
from accounts.services.users import email_normalize, email_taken, email_verification_send, password_check
from accounts.verification.identity import VerifiedIdentity
from marqetfi.core.events import publish


def _ensure_can_sign_in(user: User) -> None:
    if not user.is_active:
        raise errors.AccountDisabled()


def _touch(identity: AuthIdentity, verified: VerifiedIdentity) -> None:
    identity.last_used_at = timezone.now()
    fields = ["last_used_at", "updated_at"]
    if verified.email and (
        identity.email != verified.email or identity.email_verified != verified.email_verified
    ):
        identity.email, identity.email_verified = verified.email, verified.email_verified
        fields += ["email", "email_verified"]
    identity.save(update_fields=fields)


def _external_wallet_ensure(*, user: User, address: str) -> Wallet:
    wallet, created = Wallet.objects.get_or_create(
        address=address,
        defaults={
            "user": user,
            "kind": WalletKind.EXTERNAL,
            "provider": "external",
            "chain_type": "ethereum",
        },
    )
    if wallet.user_id != user.pk:
        raise errors.WalletInUse()
    if created:
        publish(
            user_id=user.pk,
            type="account.wallet_linked",
            data={"wallet_id": str(wallet.pk), "address": wallet.address, "kind": wallet.kind},
        )
    return wallet


def _adopt_verified_email(user: User, verified: VerifiedIdentity) -> None:
    """A user without an email takes the provider's verified one, if nobody else has it."""
    if user.email or not (verified.email and verified.email_verified) or email_taken(verified.email):
        return
    user.email = verified.email
    user.save(update_fields=["email", "updated_at"])
    EmailAddress.objects.create(user=user, email=verified.email, primary=True, verified=True)


def _owner_by_proof(verified: VerifiedIdentity) -> User | None:
    """An existing account the proof shows to be the same person, when no identity matches yet.

    A wallet address already linked to an account belongs to that account. An email the
    provider verified joins an account only if that account verified it too: otherwise
    someone who registered a victim's address first could take over the victim's sign-in.
    """
    if verified.method == AuthMethod.SIWE:
        wallet = Wallet.objects.select_related("user").filter(address__iexact=verified.subject).first()
        if wallet is not None:
            return wallet.user
    if verified.email and verified.email_verified:
        existing = User.objects.filter(email__iexact=verified.email).first()
        if existing is not None:
            if not user_email_verified(user=existing):
                raise errors.EmailInUse()
            return existing
    return None


def identity_sign_in(*, verified: VerifiedIdentity) -> tuple[User, bool]:
    """The user this proof signs in, created on first sign-in; True when created."""
    try:
        with transaction.atomic():
            return _identity_sign_in(verified)
    except IntegrityError:
        # A concurrent first sign-in with the same identity won the race: use its user.
        identity = AuthIdentity.objects.select_related("user").get(
            method=verified.method, subject=verified.subject
        )
        _ensure_can_sign_in(identity.user)
        return identity.user, False


def _identity_sign_in(verified: VerifiedIdentity) -> tuple[User, bool]:
    identity = (
        AuthIdentity.objects.select_related("user")
        .filter(method=verified.method, subject=verified.subject)
        .first()
    )
    if identity is not None:
        _ensure_can_sign_in(identity.user)
        _touch(identity, verified)
        return identity.user, False

    user = _owner_by_proof(verified)
    created = user is None
    if user is None:
        user = User.objects.create_user(email=None)
        _adopt_verified_email(user, verified)
    _ensure_can_sign_in(user)
    identity = AuthIdentity.objects.create(
        user=user,
        method=verified.method,
        subject=verified.subject,
        email=verified.email,
        email_verified=verified.email_verified,
        last_used_at=timezone.now(),
    )
    if verified.method == AuthMethod.SIWE:
        _external_wallet_ensure(user=user, address=verified.subject)
    if not created:
        _published_linked(user, identity)
    return user, created


def _published_linked(user: User, identity: AuthIdentity) -> None:
    publish(
        user_id=user.pk,
        type="account.auth_method_linked",
        data={"identity_id": str(identity.pk), "method": identity.method},
    )


@transaction.atomic
def identity_link(*, user: User, verified: VerifiedIdentity) -> tuple[AuthIdentity, bool]:
    """Add a sign-in method to a signed-in user; linking the same one again changes nothing."""
    existing = AuthIdentity.objects.filter(method=verified.method, subject=verified.subject).first()
    if existing is not None:
        if existing.user_id != user.pk:
            raise errors.IdentityInUse()
        return existing, False
    if verified.method == AuthMethod.SIWE:
        wallet = Wallet.objects.filter(address__iexact=verified.subject).exclude(user=user).first()
        if wallet is not None:
            raise errors.IdentityInUse()
    identity = AuthIdentity.objects.create(
        user=user,
        method=verified.method,
        subject=verified.subject,
        email=verified.email,
        email_verified=verified.email_verified,
    )
    if verified.method == AuthMethod.SIWE:
        _external_wallet_ensure(user=user, address=verified.subject)
    _adopt_verified_email(user, verified)
    _published_linked(user, identity)
    return identity, True


@transaction.atomic
def identity_link_email(
    *, request: HttpRequest | None, user: User, email: str, password: str
) -> tuple[AuthIdentity, bool]:
    """Add email + password sign-in to an account that signed up another way."""
    email = email_normalize(email)
    existing = AuthIdentity.objects.filter(method=AuthMethod.EMAIL, subject=email).first()
    if existing is not None:
        if existing.user_id != user.pk:
            raise errors.IdentityInUse()
        return existing, False
    if AuthIdentity.objects.filter(user=user, method=AuthMethod.EMAIL).exists():
        raise errors.IdentityInUse("This account already has an email sign-in; unlink it first.")
    if user.email and user.email != email:
        raise errors.IdentityInUse(
            "Use the account's email address for password sign-in.", details={"email": user.email}
        )
    if email_taken(email, exclude_user=user):
        raise errors.IdentityInUse()
    password_check(password=password, user=user)
    user.set_password(password)
    fields = ["password", "updated_at"]
    if not user.email:
        user.email = email
        fields.append("email")
    user.save(update_fields=fields)
    address, _ = EmailAddress.objects.get_or_create(
        user=user, email=email, defaults={"primary": True, "verified": False}
    )
    identity = AuthIdentity.objects.create(
        user=user, method=AuthMethod.EMAIL, subject=email, email=email, email_verified=address.verified
    )
    if not address.verified:
        transaction.on_commit(lambda: email_verification_send(request=request, user=user))
    _published_linked(user, identity)
    return identity, True


@transaction.atomic
def identity_unlink(*, user: User, identity_id: UUID | str) -> None:
    """Remove a sign-in method, never the last one (the user's row is locked so two
    concurrent unlinks cannot remove the last two)."""
    User.objects.select_for_update().filter(pk=user.pk).first()
    identity = AuthIdentity.objects.filter(user=user, pk=identity_id).first()
    if identity is None:
        raise errors.IdentityNotFound()
    if AuthIdentity.objects.filter(user=user).count() <= 1:
        raise errors.LastIdentity()
    if identity.method == AuthMethod.EMAIL:
        user.set_unusable_password()
        user.save(update_fields=["password", "updated_at"])
    identity.delete()
