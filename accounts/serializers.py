"""Output shapes shared by several account endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import AuthIdentity, User, Wallet
from accounts.selectors import identities_for_user, user_email_verified, wallets_for_user


class UserSerializer(serializers.ModelSerializer[User]):
    email_verified = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ("id", "email", "email_verified", "display_name", "date_joined", "trading_enabled")

    def get_email_verified(self, user: User) -> bool:
        return user_email_verified(user=user)


class IdentitySerializer(serializers.ModelSerializer[AuthIdentity]):
    class Meta:
        model = AuthIdentity
        fields = ("id", "method", "subject", "email", "email_verified", "created_at", "last_used_at")


class WalletSerializer(serializers.ModelSerializer[Wallet]):
    class Meta:
        model = Wallet
        fields = ("id", "kind", "provider", "chain_type", "address", "created_at")


class ProfileSerializer(UserSerializer):
    identities = serializers.SerializerMethodField()
    wallets = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields: tuple[str, ...] = (*UserSerializer.Meta.fields, "identities", "wallets")  # type: ignore[assignment]

    def get_identities(self, user: User) -> list[dict[str, Any]]:
        return IdentitySerializer(identities_for_user(user=user), many=True).data  # type: ignore[return-value]

    def get_wallets(self, user: User) -> list[dict[str, Any]]:
        return WalletSerializer(wallets_for_user(user=user), many=True).data  # type: ignore[return-value]


class TokensSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    user = UserSerializer()
    created = serializers.BooleanField(required=False)


def session_body(user: User, tokens: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {**tokens, "user": UserSerializer(user).data, **extra}
