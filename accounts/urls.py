from django.urls import path, re_path

from accounts import apis

LINKABLE_METHODS = "email|google|apple|auth0|siwe|privy|dynamic"

urlpatterns = [
    path("auth/register", apis.RegisterApi.as_view(), name="auth-register"),
    path("auth/login", apis.LoginApi.as_view(), name="auth-login"),
    path("auth/token/refresh", apis.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    path("auth/logout", apis.LogoutApi.as_view(), name="auth-logout"),
    path("auth/logout/all", apis.LogoutEverywhereApi.as_view(), name="auth-logout-all"),
    path("auth/password/change", apis.PasswordChangeApi.as_view(), name="auth-password-change"),
    path("auth/password/reset", apis.PasswordResetApi.as_view(), name="auth-password-reset"),
    path(
        "auth/password/reset/confirm",
        apis.PasswordResetConfirmApi.as_view(),
        name="auth-password-reset-confirm",
    ),
    path("auth/email/verify", apis.EmailVerifyApi.as_view(), name="auth-email-verify"),
    path("auth/email/resend", apis.EmailResendApi.as_view(), name="auth-email-resend"),
    re_path(r"^auth/oauth/(?P<method>google|apple|auth0)$", apis.OAuthSignInApi.as_view(), name="auth-oauth"),
    re_path(
        r"^auth/(?P<method>privy|dynamic)$",
        apis.EmbeddedWalletSignInApi.as_view(),
        name="auth-provider-token",
    ),
    path("auth/siwe/nonce", apis.SiweNonceApi.as_view(), name="auth-siwe-nonce"),
    path("auth/siwe/verify", apis.SiweVerifyApi.as_view(), name="auth-siwe-verify"),
    path("me", apis.MeApi.as_view(), name="me"),
    path("me/identities/<uuid:identity_id>", apis.IdentityUnlinkApi.as_view(), name="me-identity"),
    re_path(
        rf"^me/identities/(?P<method>{LINKABLE_METHODS})$",
        apis.IdentityLinkApi.as_view(),
        name="me-identities-link",
    ),
    path("wallets", apis.WalletListApi.as_view(), name="wallets"),
    path("wallets/mpc", apis.WalletMpcCreateApi.as_view(), name="wallets-mpc"),
    path("wallets/external", apis.WalletExternalLinkApi.as_view(), name="wallets-external"),
    path("wallets/<uuid:wallet_id>", apis.WalletDetailApi.as_view(), name="wallet"),
    path("wallets/<uuid:wallet_id>/balances", apis.WalletBalancesApi.as_view(), name="wallet-balances"),
]
