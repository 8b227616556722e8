from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from marqetfi.core.models import TimeStampedModel


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """Whole address lower-cased: traders type their email in any case on phones."""
        return (email or "").strip().lower()

    def _create_user(self, email: str | None, password: str | None, **extra: Any) -> User:
        """Email is optional: a trader who signs in with a wallet or Privy may have none."""
        user = self.model(email=self.normalize_email(email) or None, **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email: str | None, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An operator needs an email address to sign in to the admin.")
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=self.normalize_email(username))


class User(AbstractBaseUser, PermissionsMixin):
    """A trader or an operator. Email is the login name; wallet-only users may have none yet."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True, null=True, blank=True)
    display_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    trading_enabled = models.BooleanField(
        default=True, help_text="Operators switch this off to stop a user from placing orders."
    )
    token_version = models.PositiveIntegerField(
        default=0,
        help_text="Tokens minted with an older version are refused: raised to sign the user out everywhere.",
    )
    date_joined = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email or f"user {self.id}"

    def clean(self) -> None:
        super().clean()
        if self.email:
            self.email = UserManager.normalize_email(self.email)


class AuthMethod(models.TextChoices):
    EMAIL = "email", "Email and password"
    GOOGLE = "google", "Google"
    APPLE = "apple", "Apple"
    AUTH0 = "auth0", "Auth0"
    SIWE = "siwe", "Ethereum wallet (SIWE)"
    PRIVY = "privy", "Privy"
    DYNAMIC = "dynamic", "Dynamic"


class AuthIdentity(TimeStampedModel):
    """One way a user signs in. ``subject`` is what the method vouches for: the email
    address, the OIDC ``sub``, the checksummed Ethereum address, or the provider's user id."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="identities")
    method = models.CharField(max_length=16, choices=AuthMethod.choices)
    subject = models.CharField(max_length=255)
    email = models.EmailField(blank=True, default="")
    email_verified = models.BooleanField(default=False)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "auth identities"
        constraints = [
            models.UniqueConstraint(fields=("method", "subject"), name="identity_method_subject_unique"),
            models.UniqueConstraint(
                fields=("user",), condition=Q(method="email"), name="identity_one_email_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method}:{self.subject}"


class WalletKind(models.TextChoices):
    MPC = "mpc", "MPC (custodial, created by a wallet provider)"
    EXTERNAL = "external", "External (the user's own, proven by signature)"


class Wallet(TimeStampedModel):
    """An address that belongs to a user: created for them (MPC) or proven by them (external)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="wallets")
    kind = models.CharField(max_length=16, choices=WalletKind.choices)
    provider = models.CharField(max_length=32, help_text="local, privy or dynamic; external for linked ones")
    chain_type = models.CharField(max_length=16, default="ethereum")
    address = models.CharField(max_length=42, help_text="EIP-55 checksummed")
    provider_wallet_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ("created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("user", "provider", "chain_type"),
                condition=Q(kind="mpc"),
                name="wallet_one_mpc_per_user_provider_chain",
            ),
            models.UniqueConstraint(Lower("address"), name="wallet_address_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.kind}/{self.provider})"
