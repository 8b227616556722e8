"""Verification of identity tokens: Google / Apple / Auth0 ID tokens, Privy and Dynamic access tokens.

Signatures are checked against the issuer's JWKS (cached; fetched again when a token names
a key id we have not seen, which is how issuers rotate keys) or, for Privy, the app's
verification key. Then ``iss``, ``aud``, ``exp`` / ``iat`` with a small leeway and the
nonce where the app used one, and the scopes an issuer requires servers to check (Dynamic:
``user:basic``, missing while the user has not finished signing in, e.g. MFA pending).
Symmetric and ``none`` algorithms are never accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from typing import Any

import jwt
from django.conf import settings

from accounts import errors
from accounts.verification.identity import VerifiedIdentity

_DEFAULT_ALGORITHMS = ["RS256"]
# Scopes a token must carry to prove a finished sign-in, per method (a protocol rule of the
# issuer, not a deployment choice).
_REQUIRED_SCOPES: dict[str, frozenset[str]] = {"dynamic": frozenset({"user:basic"})}


@cache
def _jwks_client(url: str, lifespan: float, timeout: float, cooldown: float) -> jwt.PyJWKClient:
    """One client per JWKS URL and process, so its key cache outlives a request. An unknown
    ``kid`` refetches the set at most once per ``cooldown`` (tokens with made-up key ids
    must not turn into a stream of requests to the issuer)."""
    return jwt.PyJWKClient(
        url, cache_keys=True, lifespan=lifespan, timeout=timeout, cooldown_duration=cooldown
    )


def _provider_config(method: str) -> dict[str, Any]:
    config: dict[str, Any] | None = settings.OIDC_PROVIDERS.get(method)
    if not config:
        raise errors.AuthMethodUnavailable()
    has_key_source = bool(config.get("jwks_url") or config.get("verification_key"))
    audiences_required = method != "dynamic"
    if (
        not has_key_source
        or not any(config.get("issuers", []))
        or (audiences_required and not config.get("audiences"))
    ):
        raise errors.AuthMethodUnavailable(details={"method": method})
    return config


def _signing_key(token: str, config: dict[str, Any]) -> Any:
    if config.get("verification_key"):
        return config["verification_key"]
    client = _jwks_client(
        config["jwks_url"],
        settings.OIDC_JWKS_CACHE_SECONDS,
        settings.OIDC_HTTP_TIMEOUT_SECONDS,
        settings.OIDC_JWKS_REFETCH_COOLDOWN_SECONDS,
    )
    try:
        return client.get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientConnectionError as exc:
        raise errors.IdentityProviderUnavailable() from exc
    except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
        raise errors.UnknownSigningKey() from exc


def _decode(token: str, config: dict[str, Any]) -> dict[str, Any]:
    algorithms: list[str] = config.get("algorithms", _DEFAULT_ALGORITHMS)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise errors.InvalidToken("The identity token is malformed.") from exc
    if header.get("alg") not in algorithms:
        raise errors.InvalidToken(
            "The identity token uses an algorithm we do not accept.", details={"alg": header.get("alg")}
        )
    key = _signing_key(token, config)
    audiences = [a for a in config.get("audiences", []) if a]
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=audiences or None,
            issuer=[i for i in config["issuers"] if i],
            leeway=settings.OIDC_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": bool(audiences)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise errors.TokenExpired() from exc
    except jwt.InvalidAudienceError as exc:
        raise errors.InvalidAudience() from exc
    except jwt.InvalidIssuerError as exc:
        raise errors.InvalidIssuer() from exc
    except jwt.InvalidSignatureError as exc:
        raise errors.InvalidTokenSignature() from exc
    except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError) as exc:
        raise errors.InvalidToken("The identity token is not valid yet.") from exc
    except jwt.InvalidTokenError as exc:
        raise errors.InvalidToken(details={"reason": str(exc)}) from exc
    return claims


def _check_nonce(method: str, claims: dict[str, Any], nonce: str | None) -> None:
    """The app's raw nonce must match the token's; Apple apps usually pass its SHA-256 hex."""
    token_nonce = claims.get("nonce")
    if nonce is None and token_nonce is None:
        return
    if nonce is None or token_nonce is None:
        raise errors.NonceMismatch()
    candidates = [nonce]
    if method == "apple":
        candidates.append(hashlib.sha256(nonce.encode()).hexdigest())
    if not any(hmac.compare_digest(str(token_nonce), c) for c in candidates):
        raise errors.NonceMismatch()


def _scopes(claims: dict[str, Any]) -> set[str]:
    """The token's scopes: ``scope`` as RFC 8693 has it (one space-separated string), or a list
    in ``scope`` or ``scopes`` as some issuers' older tokens carry them."""
    found: set[str] = set()
    for name in ("scope", "scopes"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return found


def _check_scopes(method: str, claims: dict[str, Any]) -> None:
    missing = _REQUIRED_SCOPES.get(method, frozenset()) - _scopes(claims)
    if missing:
        raise errors.SignInIncomplete(details={"missing_scopes": sorted(missing)})


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def verify_identity_token(*, method: str, token: str, nonce: str | None = None) -> VerifiedIdentity:
    """Verify a Google / Apple / Auth0 ID token or a Privy / Dynamic access token.

    An email the issuer does not mark verified is kept out of the result's trust: it is
    returned with ``email_verified=False`` and never used to find an existing account.
    """
    config = _provider_config(method)
    claims = _decode(token, config)
    _check_scopes(method, claims)
    _check_nonce(method, claims, nonce)
    email = str(claims.get("email") or "").strip().lower()
    return VerifiedIdentity(
        method=method,
        subject=str(claims["sub"]),
        email=email,
        email_verified=bool(email) and _truthy(claims.get("email_verified")),
        claims={k: claims[k] for k in ("iss", "aud", "iat", "exp", "azp", "sid") if k in claims},
    )
