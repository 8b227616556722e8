"""Socket sign-in with the REST API's JWT rules (``marqetfi.core.authentication``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenBackendError, TokenBackendExpiredToken
from rest_framework_simplejwt.state import token_backend

from accounts.models import User
from marqetfi.core.authentication import JWTAuthentication
from streams.protocol import CloseCode


@dataclass(frozen=True)
class SocketIdentity:
    user: User
    expires_at: datetime | None


class SocketAuthFailed(Exception):
    def __init__(self, close_code: CloseCode, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


def _expired(raw: str) -> bool:
    """Whether a refused token is refused only for its age (signature checked first)."""
    try:
        token_backend.decode(raw, verify=True)  # type: ignore[arg-type]  # the stubs say Token; it takes text
    except TokenBackendExpiredToken:
        return True
    except TokenBackendError:
        return False
    return False


def socket_authenticate(*, token: Any) -> SocketIdentity:
    """The user of an access token, as ``Authorization: Bearer`` would give it, or ``SocketAuthFailed``.

    Expired tokens fail with ``TOKEN_EXPIRED`` (refresh and reconnect), inactive users with
    ``FORBIDDEN``, anything else (malformed, forged, a refresh token, a revoked token: logged
    out, or minted before the user signed out everywhere; an unknown user) with
    ``AUTH_FAILED``. Makes database queries: call from sync code.
    """
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise SocketAuthFailed(CloseCode.AUTH_FAILED, "auth_failed", "A token string is required.")
    authentication = JWTAuthentication()
    try:
        validated = authentication.get_validated_token(token.encode())
    except InvalidToken as exc:
        if _expired(token):
            raise SocketAuthFailed(
                CloseCode.TOKEN_EXPIRED, "token_expired", "The token has expired."
            ) from exc
        raise SocketAuthFailed(CloseCode.AUTH_FAILED, "auth_failed", "The token is not valid.") from exc
    try:
        user = authentication.get_user(validated)
    except AuthenticationFailed as exc:
        detail = exc.detail  # simplejwt's errors carry {"detail": <message>, "code": <code>}
        if isinstance(detail, dict) and str(detail.get("code")) == "user_inactive":
            raise SocketAuthFailed(CloseCode.FORBIDDEN, "forbidden", "The account is inactive.") from exc
        if isinstance(detail, dict) and str(detail.get("code")) == "token_revoked":
            raise SocketAuthFailed(
                CloseCode.AUTH_FAILED, "auth_failed", "The token has been revoked; sign in again."
            ) from exc
        raise SocketAuthFailed(CloseCode.AUTH_FAILED, "auth_failed", "The token is not valid.") from exc
    except InvalidToken as exc:
        raise SocketAuthFailed(CloseCode.AUTH_FAILED, "auth_failed", "The token is not valid.") from exc
    exp = validated.get("exp")
    expires_at = datetime.fromtimestamp(int(exp), UTC) if isinstance(exp, int | float) else None
    return SocketIdentity(user=user, expires_at=expires_at)
