from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import AuthIdentity, User, Wallet
from accounts.services.tokens import tokens_revoke_all
from accounts.services.users import user_sign_in_set, user_trading_set
from marqetfi.core.admin_audit import MASKED, AuditedModelAdmin


class UserCreationAdminForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeAdminForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AuthIdentityInline(ReadOnlyInline):
    model = AuthIdentity
    fields = ("method", "subject", "email", "email_verified", "created_at", "last_used_at")
    readonly_fields = fields


class WalletInline(ReadOnlyInline):
    model = Wallet
    fields = ("kind", "provider", "chain_type", "address", "provider_wallet_id", "created_at")
    readonly_fields = fields


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    list_display = (
        "email",
        "display_name",
        "is_active",
        "trading_enabled",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_filter = ("is_active", "trading_enabled", "is_staff", "is_superuser", "identities__method")
    search_fields = ("email", "display_name", "=id", "wallets__address", "identities__subject")
    ordering = ("-date_joined",)
    readonly_fields = ("id", "date_joined", "last_login", "updated_at")
    inlines = (AuthIdentityInline, WalletInline)
    actions: tuple[str, ...] = ("disable_trading", "enable_trading", "disable_sign_in", "enable_sign_in")
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("display_name",)}),
        (
            "Access",
            {
                "fields": (
                    "is_active",
                    "trading_enabled",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Dates", {"fields": ("date_joined", "last_login", "updated_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_disable_user_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("accounts.disable_user"))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django's password page, audited: the log says the password changed, never what to."""
        before = User.objects.filter(pk=id).values_list("password", flat=True).first()
        response = super().user_change_password(request, id, form_url)
        after = User.objects.filter(pk=id).values_list("password", flat=True).first()
        if before is not None and after != before:
            self.audit_write(request, User(pk=id), "change", {"password": MASKED})
            tokens_revoke_all(user=User.objects.get(pk=id))
        return response

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Unticking "active" here ends the user's sessions, as the "disable sign-in" action does."""
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            tokens_revoke_all(user=obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[User], search_term: str
    ) -> tuple[QuerySet[User], bool]:
        results, _ = super().get_search_results(request, queryset, search_term)
        return results.distinct(), False

    @admin.action(description="Disable trading for the selected users", permissions=["disable_user"])
    def disable_trading(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_trading_set(user=user, enabled=False, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"Trading disabled for {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Enable trading for the selected users", permissions=["disable_user"])
    def enable_trading(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_trading_set(user=user, enabled=True, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"Trading enabled for {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(
        description="Disable sign-in (and end all sessions) for the selected users",
        permissions=["disable_user"],
    )
    def disable_sign_in(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset.exclude(pk=str(request.user.pk)):
            user_sign_in_set(user=user, enabled=False, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, "Sign-in disabled; their sessions are ended.", messages.SUCCESS)

    @admin.action(description="Enable sign-in for the selected users", permissions=["disable_user"])
    def enable_sign_in(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            user_sign_in_set(user=user, enabled=True, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"Sign-in enabled for {queryset.count()} user(s).", messages.SUCCESS)


@admin.register(Wallet)
class WalletAdmin(AuditedModelAdmin):
    list_display = ("address", "user", "kind", "provider", "chain_type", "created_at")
    list_filter = ("kind", "provider", "chain_type")
    search_fields = ("address", "user__email", "provider_wallet_id")
    list_select_related = ("user",)
    readonly_fields = (
        "id",
        "user",
        "kind",
        "provider",
        "chain_type",
        "address",
        "provider_wallet_id",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuthIdentity)
class AuthIdentityAdmin(AuditedModelAdmin):
    list_display = ("method", "subject", "user", "email_verified", "last_used_at", "created_at")
    list_filter = ("method", "email_verified")
    search_fields = ("subject", "email", "user__email")
    list_select_related = ("user",)
    readonly_fields = (
        "id",
        "user",
        "method",
        "subject",
        "email",
        "email_verified",
        "last_used_at",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# simplejwt's own admins show each refresh token in full: any operator could copy a user's live
# session. These show what identifies a token (jti, user, lifetime), never its value.
admin.site.unregister(OutstandingToken)
admin.site.unregister(BlacklistedToken)


class _SessionTokenAdmin(AuditedModelAdmin):
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(_SessionTokenAdmin):
    """Refresh tokens issued, without their values."""

    list_display = ("jti", "user", "created_at", "expires_at")
    search_fields = ("=jti", "user__email", "=user__id")
    ordering = ("-created_at",)
    list_select_related = ("user",)
    fields = ("jti", "user", "created_at", "expires_at")
    readonly_fields = fields


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(_SessionTokenAdmin):
    """Refresh tokens revoked (rotated or signed out), without their values."""

    list_display = ("token_jti", "token_user", "blacklisted_at", "token_expires_at")
    search_fields = ("=token__jti", "token__user__email", "=token__user__id")
    ordering = ("-blacklisted_at",)
    list_select_related = ("token__user",)
    fields = ("token_jti", "token_user", "blacklisted_at", "token_expires_at")
    readonly_fields = fields

    @admin.display(description="jti", ordering="token__jti")
    def token_jti(self, obj: BlacklistedToken) -> str:
        return str(obj.token.jti)

    @admin.display(description="user", ordering="token__user")
    def token_user(self, obj: BlacklistedToken) -> object:
        return obj.token.user

    @admin.display(description="expires at", ordering="token__expires_at")
    def token_expires_at(self, obj: BlacklistedToken) -> object:
        return obj.token.expires_at
