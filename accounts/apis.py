"""Sign-in, profile, identities and wallets: thin views over accounts.services."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import errors
from accounts.models import AuthMethod, User
from accounts.selectors import wallet_get_for_user, wallets_for_user
from accounts.serializers import (
    IdentitySerializer,
    ProfileSerializer,
    TokensSerializer,
    WalletSerializer,
    session_body,
)
from accounts.services import identities as identity_services
from accounts.services import passwords as password_services
from accounts.services import tokens as token_services
from accounts.services import users as user_services
from accounts.services import wallets as wallet_services
from accounts.verification.siwe import siwe_nonce_issue, siwe_verify
from accounts.verification.tokens import verify_identity_token
from marqetfi.core.api import OldestFirstPagination
from marqetfi.core.authentication import JWTAuthentication
from marqetfi.core.schema import ErrorSerializer
from marqetfi.core.throttling import AnonRateThrottle, ScopedRateThrottle


def _user(request: Request) -> User:
    return cast(User, request.user)


SIWE_MESSAGE_EXAMPLE = (
    "app.marqetfi.com wants you to sign in with your Ethereum account:\n"
    "0x71C7656EC7ab88b098defB751B7401B5f6d8976F\n\n"
    "Sign in to MarqetFi.\n\n"
    "URI: https://app.marqetfi.com\nVersion: 1\nChain ID: 1\n"
    "Nonce: 4f8c2a9d1e7b3c6a\nIssued At: 2026-01-01T00:00:00Z"
)
SIWE_EXAMPLE = OpenApiExample(
    "SIWE signature",
    value={"message": SIWE_MESSAGE_EXAMPLE, "signature": "0x" + "ab" * 65},
    request_only=True,
)


class PublicAuthApi(APIView):
    """Sign-in endpoints: no bearer needed (a stale one is ignored), stricter rate limit."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle, ScopedRateThrottle]
    throttle_scope = "auth"


class RegisterApi(PublicAuthApi):
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(write_only=True, trim_whitespace=False)
        display_name = serializers.CharField(required=False, allow_blank=True, max_length=150, default="")

    @extend_schema(
        request=InputSerializer,
        responses={201: TokensSerializer},
        operation_id="auth_register",
        examples=[
            OpenApiExample(
                "Register",
                value={
                    "email": "trader@example.com",
                    "password": "correct horse battery",
                    "display_name": "Ada",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_services.user_register(request=request._request, **data.validated_data)
        mode = user_services.email_verification_mode()
        if mode == "mandatory":
            body: dict[str, Any] = {"user": ProfileSerializer(user).data, "email_verification": "required"}
        else:
            body = session_body(
                user,
                token_services.tokens_issue(user=user),
                email_verification="sent" if mode == "optional" else "not_required",
            )
        return Response(body, status=status.HTTP_201_CREATED)


class LoginApi(PublicAuthApi):
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(write_only=True, trim_whitespace=False)

    @extend_schema(
        request=InputSerializer,
        responses={200: TokensSerializer},
        operation_id="auth_login",
        examples=[
            OpenApiExample(
                "Login",
                value={"email": "trader@example.com", "password": "correct horse battery"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_services.user_login(**data.validated_data)
        return Response(session_body(user, token_services.tokens_issue(user=user)))


class TokenRefreshApi(PublicAuthApi):
    """Rotates: the refresh token sent is blacklisted and a new one returned with the access token."""

    throttle_scope = "user"

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()}
            )
        },
        operation_id="auth_token_refresh",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(token_services.tokens_refresh(refresh=data.validated_data["refresh"]))


class LogoutApi(PublicAuthApi):
    """Ends this session: the refresh token is blacklisted and the access token sent as
    ``Authorization: Bearer`` (optional; ignored if expired or another user's) is refused
    from now on. Works with an expired access token too: only the refresh token is needed."""

    throttle_scope = "user"

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={204: None},
        operation_id="auth_logout",
        auth=[{}, {"jwtAuth": []}],  # type: ignore[list-item]  # requirement objects, as the schema has them
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        bearer = JWTAuthentication()
        header = bearer.get_header(request)
        raw_access = bearer.get_raw_token(header) if header is not None else None
        token_services.token_blacklist(
            refresh=data.validated_data["refresh"],
            access=raw_access.decode("latin-1") if raw_access else None,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutEverywhereApi(APIView):
    """Sign out every session of the signed-in user, this one included: every access and
    refresh token minted so far is refused."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=None, responses={204: None}, operation_id="auth_logout_all")
    def post(self, request: Request) -> Response:
        token_services.tokens_revoke_all(user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeApi(APIView):
    """Change the password: every other session is signed out; the caller gets fresh tokens."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    class InputSerializer(serializers.Serializer):
        old_password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=4096)
        new_password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=4096)

    @extend_schema(
        request=InputSerializer,
        responses={200: TokensSerializer},
        operation_id="auth_password_change",
        examples=[
            OpenApiExample(
                "Change password",
                value={"old_password": "correct horse battery", "new_password": "tr0ub4dor and 3 more"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = password_services.password_change(user=_user(request), **data.validated_data)
        return Response(session_body(user, token_services.tokens_issue(user=user)))


class PasswordResetApi(PublicAuthApi):
    """Mail a password reset key to the address, if an account signs in with it. The answer is
    the same 202 either way, so it never tells whether an account exists."""

    throttle_scope = "password_reset"

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()

    @extend_schema(
        request=InputSerializer,
        responses={202: inline_serializer("PasswordReset", {"detail": serializers.CharField()})},
        operation_id="auth_password_reset",
        examples=[OpenApiExample("Reset", value={"email": "trader@example.com"}, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        password_services.password_reset_request(request=request._request, email=data.validated_data["email"])
        return Response(
            {"detail": "If an account signs in with this address, a reset link is on its way."},
            status=status.HTTP_202_ACCEPTED,
        )


class PasswordResetConfirmApi(PublicAuthApi):
    """Set a new password with the key from the reset mail. Every session is signed out and the
    email counts as verified; the answer holds fresh tokens."""

    class InputSerializer(serializers.Serializer):
        key = serializers.CharField(max_length=512)
        new_password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=4096)

    @extend_schema(
        request=InputSerializer, responses={200: TokensSerializer}, operation_id="auth_password_reset_confirm"
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = password_services.password_reset_confirm(**data.validated_data)
        return Response(session_body(user, token_services.tokens_issue(user=user)))


class EmailVerifyApi(PublicAuthApi):
    class InputSerializer(serializers.Serializer):
        key = serializers.CharField(max_length=512)

    @extend_schema(
        request=InputSerializer, responses={200: ProfileSerializer}, operation_id="auth_email_verify"
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_services.email_verify(request=request._request, key=data.validated_data["key"])
        return Response(ProfileSerializer(user).data)


class EmailResendApi(APIView):
    """Send the verification mail again to the signed-in user's address."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=None,
        responses={202: inline_serializer("EmailResend", {"sent": serializers.BooleanField()})},
        operation_id="auth_email_resend",
    )
    def post(self, request: Request) -> Response:
        sent = user_services.email_verification_send(request=request._request, user=_user(request))
        return Response({"sent": sent}, status=status.HTTP_202_ACCEPTED)


class IdentityTokenInputSerializer(serializers.Serializer):
    id_token = serializers.CharField(required=False)
    token = serializers.CharField(required=False, help_text="Privy / Dynamic access token")
    nonce = serializers.CharField(required=False, max_length=512)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        token = attrs.get("id_token") or attrs.get("token")
        if not token:
            raise serializers.ValidationError({"id_token": ["This field is required."]})
        return {"token": token, "nonce": attrs.get("nonce")}


class TokenSignInApi(PublicAuthApi):
    def post(self, request: Request, method: str) -> Response:
        data = IdentityTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        verified = verify_identity_token(method=method, **data.validated_data)
        user, created = identity_services.identity_sign_in(verified=verified)
        body = session_body(user, token_services.tokens_issue(user=user), created=created)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OAuthSignInApi(TokenSignInApi):
    """Sign in with the ID token from Google's, Apple's or Auth0's native SDK; creates the
    account on first use (201) and finds it afterwards (200)."""

    @extend_schema(
        request=IdentityTokenInputSerializer,
        # 503 auth_method_unavailable (not configured here) or identity_provider_unavailable.
        responses={200: TokensSerializer, 201: TokensSerializer, 503: ErrorSerializer},
        parameters=[
            OpenApiParameter("method", str, OpenApiParameter.PATH, enum=["google", "apple", "auth0"])
        ],
        operation_id="auth_oauth_sign_in",
    )
    def post(self, request: Request, method: str) -> Response:
        return super().post(request, method)


class EmbeddedWalletSignInApi(TokenSignInApi):
    """Exchange a Privy or Dynamic access token (``{"token"}``) for our tokens."""

    @extend_schema(
        request=IdentityTokenInputSerializer,
        responses={200: TokensSerializer, 201: TokensSerializer, 503: ErrorSerializer},
        parameters=[OpenApiParameter("method", str, OpenApiParameter.PATH, enum=["privy", "dynamic"])],
        operation_id="auth_embedded_wallet_sign_in",
    )
    def post(self, request: Request, method: str) -> Response:
        return super().post(request, method)


class SiweNonceApi(PublicAuthApi):
    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "SiweNonce", {"nonce": serializers.CharField(), "expires_at": serializers.DateTimeField()}
            )
        },
        operation_id="auth_siwe_nonce",
    )
    def post(self, request: Request) -> Response:
        nonce, expires_at = siwe_nonce_issue()
        return Response({"nonce": nonce, "expires_at": expires_at})


class SiweInputSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=4096, trim_whitespace=False)
    signature = serializers.RegexField(r"^0x[0-9a-fA-F]+$", max_length=4096)


class SiweVerifyApi(PublicAuthApi):
    @extend_schema(
        request=SiweInputSerializer,
        responses={200: TokensSerializer, 201: TokensSerializer},
        operation_id="auth_siwe_verify",
        examples=[SIWE_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        data = SiweInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        verified = siwe_verify(**data.validated_data)
        user, created = identity_services.identity_sign_in(verified=verified)
        body = session_body(user, token_services.tokens_issue(user=user), created=created)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MeApi(APIView):
    class UpdateSerializer(serializers.Serializer):
        display_name = serializers.CharField(max_length=150, allow_blank=True)

    @extend_schema(responses={200: ProfileSerializer}, operation_id="me_get")
    def get(self, request: Request) -> Response:
        return Response(ProfileSerializer(_user(request)).data)

    @extend_schema(request=UpdateSerializer, responses={200: ProfileSerializer}, operation_id="me_update")
    def patch(self, request: Request) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_services.user_profile_update(user=_user(request), **data.validated_data)
        return Response(ProfileSerializer(user).data)


class IdentityLinkApi(APIView):
    """Link another sign-in method to the signed-in account. The body depends on the method:
    ``email``: ``{"email", "password"}``; ``google`` / ``apple`` / ``auth0``: ``{"id_token", "nonce"?}``;
    ``privy`` / ``dynamic``: ``{"token"}``; ``siwe``: ``{"message", "signature"}``."""

    class EmailInputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(write_only=True, trim_whitespace=False)

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: IdentitySerializer, 201: IdentitySerializer, 503: ErrorSerializer},
        operation_id="me_identities_link",
        examples=[
            OpenApiExample(
                "SIWE link",
                value={"message": SIWE_MESSAGE_EXAMPLE, "signature": "0x" + "ab" * 65},
                request_only=True,
            ),
            OpenApiExample(
                "Email link",
                value={"email": "trader@example.com", "password": "correct horse battery"},
                request_only=True,
            ),
            OpenApiExample("Google link", value={"id_token": "eyJhbGciOi..."}, request_only=True),
        ],
    )
    def post(self, request: Request, method: str) -> Response:
        user = _user(request)
        if method == AuthMethod.EMAIL:
            data: serializers.Serializer = self.EmailInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            identity, created = identity_services.identity_link_email(
                request=request._request, user=user, **data.validated_data
            )
        else:
            if method == AuthMethod.SIWE:
                data = SiweInputSerializer(data=request.data)
                data.is_valid(raise_exception=True)
                verified = siwe_verify(**data.validated_data)
            else:
                data = IdentityTokenInputSerializer(data=request.data)
                data.is_valid(raise_exception=True)
                verified = verify_identity_token(method=method, **data.validated_data)
            identity, created = identity_services.identity_link(user=user, verified=verified)
        return Response(
            IdentitySerializer(identity).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class IdentityUnlinkApi(APIView):
    @extend_schema(responses={204: None}, operation_id="me_identities_unlink")
    def delete(self, request: Request, identity_id: str) -> Response:
        identity_services.identity_unlink(user=_user(request), identity_id=identity_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WalletListApi(ListAPIView):
    serializer_class = WalletSerializer
    pagination_class = OldestFirstPagination

    def get_queryset(self) -> Any:
        return wallets_for_user(user=_user(self.request))


class WalletMpcCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        provider = serializers.CharField(required=False, max_length=32)
        chain_type = serializers.ChoiceField(choices=["ethereum"], default="ethereum")

    @extend_schema(
        request=InputSerializer,
        # 503 wallet_provider_unavailable: the provider is not configured or does not answer.
        responses={200: WalletSerializer, 201: WalletSerializer, 503: ErrorSerializer},
        operation_id="wallets_mpc_create",
        examples=[
            OpenApiExample(
                "Privy MPC wallet", value={"provider": "privy", "chain_type": "ethereum"}, request_only=True
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wallet, created = wallet_services.wallet_mpc_create(
            user=_user(request),
            provider=data.validated_data.get("provider") or settings.MPC_WALLET_DEFAULT_PROVIDER,
            chain_type=data.validated_data["chain_type"],
        )
        return Response(
            WalletSerializer(wallet).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class WalletExternalLinkApi(APIView):
    @extend_schema(
        request=SiweInputSerializer,
        responses={200: WalletSerializer, 201: WalletSerializer},
        operation_id="wallets_external_link",
        examples=[SIWE_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        data = SiweInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wallet, created = wallet_services.wallet_external_link(user=_user(request), **data.validated_data)
        return Response(
            WalletSerializer(wallet).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class WalletDetailApi(APIView):
    @extend_schema(responses={200: WalletSerializer}, operation_id="wallets_get")
    def get(self, request: Request, wallet_id: str) -> Response:
        wallet = wallet_get_for_user(user=_user(request), wallet_id=wallet_id)
        if wallet is None:
            raise errors.WalletNotFound()
        return Response(WalletSerializer(wallet).data)


class WalletBalancesApi(APIView):
    class BalanceSerializer(serializers.Serializer):
        symbol = serializers.CharField()
        token_address = serializers.CharField(allow_null=True)
        decimals = serializers.IntegerField()
        amount = serializers.DecimalField(max_digits=78, decimal_places=18, coerce_to_string=True)

    class ChainSerializer(serializers.Serializer):
        chain_id = serializers.IntegerField()
        name = serializers.CharField()
        balances = serializers.ListField(child=serializers.DictField())
        error = serializers.CharField(allow_null=True)

    @extend_schema(
        responses={
            200: inline_serializer(
                "WalletBalances",
                {
                    "wallet_id": serializers.UUIDField(),
                    "address": serializers.CharField(),
                    "chains": ChainSerializer(many=True),
                },
            )
        },
        operation_id="wallets_balances",
    )
    def get(self, request: Request, wallet_id: str) -> Response:
        wallet = wallet_get_for_user(user=_user(request), wallet_id=wallet_id)
        if wallet is None:
            raise errors.WalletNotFound()
        chains = wallet_services.wallet_balances(wallet=wallet)
        return Response(
            {
                "wallet_id": str(wallet.pk),
                "address": wallet.address,
                "chains": [
                    {
                        "chain_id": chain.chain_id,
                        "name": chain.name,
                        "balances": [
                            {
                                "symbol": b.symbol,
                                "token_address": b.token_address,
                                "decimals": b.decimals,
                                "amount": format(b.amount.normalize(), "f"),
                            }
                            for b in chain.balances
                        ],
                        "error": chain.error,
                    }
                    for chain in chains
                ],
            }
        )
