"""Real keys and a local JWKS server standing in for Google, Apple, Auth0, Privy and Dynamic.

Tokens are signed here with keys generated for the test run (RSA for the OIDC issuers
and Dynamic, P-256 for Privy), exactly as the issuers sign theirs; the server under test
fetches the public halves over HTTP from a local server, as it would from the issuer.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

# Every token and key these fakes hand out during a test; the leak guard checks the logs for them.
SECRETS_IN_PLAY: set[str] = set()

GOOGLE_CLIENT_ID = "123-ios.apps.googleusercontent.com"
APPLE_CLIENT_ID = "com.marqetfi.app"
AUTH0_CLIENT_ID = "auth0-client-abc"
PRIVY_APP_ID = "cm-privy-app-1"
DYNAMIC_ENV_ID = "2762a57b-faa4-41ce-9f16-abff9300e2c9"

ISSUERS = {
    "google": "https://accounts.google.com",
    "apple": "https://appleid.apple.com",
    "auth0": "https://marqetfi.eu.auth0.com/",
    "privy": "privy.io",
    "dynamic": f"app.dynamicauth.com/{DYNAMIC_ENV_ID}",
}
AUDIENCES = {
    "google": GOOGLE_CLIENT_ID,
    "apple": APPLE_CLIENT_ID,
    "auth0": AUTH0_CLIENT_ID,
    "privy": PRIVY_APP_ID,
    "dynamic": "https://app.marqetfi.com",
}


@dataclass
class SigningKey:
    kid: str
    private_key: Any
    algorithm: str

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


def rsa_key(kid: str | None = None) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid or uuid.uuid4().hex[:12], private, "RS256")


def ec_key() -> SigningKey:
    return SigningKey(uuid.uuid4().hex[:12], ec.generate_private_key(ec.SECP256R1()), "ES256")


@dataclass
class IdentityProviders:
    """One JWKS document per issuer, served by a local HTTP server; keys can be rotated."""

    server: HTTPServer
    keys: dict[str, list[SigningKey]] = field(default_factory=dict)
    privy_key: SigningKey = field(default_factory=ec_key)

    def jwks_path(self, method: str) -> str:
        return f"/{method}/jwks.json"

    def jwks_url(self, method: str) -> str:
        return self.server.url_for(self.jwks_path(method))

    def serve(self) -> None:
        """Answer every issuer's JWKS URL with whatever keys it publishes at that moment."""
        for method in ("google", "apple", "auth0", "dynamic"):
            self.keys.setdefault(method, [rsa_key()])
            self.server.expect_request(self.jwks_path(method)).respond_with_handler(
                self._jwks_handler(method)
            )

    def _jwks_handler(self, method: str) -> Any:
        def handler(request: Request) -> Response:
            body = {"keys": [k.public_jwk() for k in self.keys[method]]}
            return Response(json.dumps(body), content_type="application/json")

        return handler

    def rotate(self, method: str) -> SigningKey:
        """The issuer starts signing with a new key and publishes it beside the old one."""
        new_key = rsa_key()
        self.keys[method] = [new_key, *self.keys[method]]
        return new_key

    def jwks_requests(self, method: str) -> int:
        return sum(1 for request, _ in self.server.log if request.path == self.jwks_path(method))

    def settings(self) -> dict[str, dict[str, Any]]:
        return {
            "google": {
                "issuers": [ISSUERS["google"], "accounts.google.com"],
                "jwks_url": self.jwks_url("google"),
                "audiences": [GOOGLE_CLIENT_ID, "123-android.apps.googleusercontent.com"],
            },
            "apple": {
                "issuers": [ISSUERS["apple"]],
                "jwks_url": self.jwks_url("apple"),
                "audiences": [APPLE_CLIENT_ID],
            },
            "auth0": {
                "issuers": [ISSUERS["auth0"]],
                "jwks_url": self.jwks_url("auth0"),
                "audiences": [AUTH0_CLIENT_ID],
            },
            "privy": {
                "issuers": [ISSUERS["privy"]],
                "verification_key": self.privy_key.public_pem(),
                "audiences": [PRIVY_APP_ID],
                "algorithms": ["ES256"],
            },
            "dynamic": {
                "issuers": [ISSUERS["dynamic"]],
                "jwks_url": self.jwks_url("dynamic"),
                "audiences": [],
            },
        }

    def token(self, method: str, *, key: SigningKey | None = None, **claims: Any) -> str:
        """A token as the issuer would mint it; ``claims`` override or (with None) remove defaults."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUERS[method],
            "aud": AUDIENCES[method],
            "sub": f"{method}-subject-{uuid.uuid4().hex[:8]}",
            "iat": now,
            "exp": now + 600,
        }
        if method in ("google", "apple", "auth0"):
            payload.update({"email": f"{uuid.uuid4().hex[:8]}@example.com", "email_verified": True})
        if method == "privy":
            payload.update({"sub": f"did:privy:{uuid.uuid4().hex[:24]}", "sid": uuid.uuid4().hex})
        if method == "dynamic":
            # A finished sign-in; Dynamic leaves user:basic out while e.g. an MFA step is pending.
            payload.update({"sid": uuid.uuid4().hex, "environment_id": DYNAMIC_ENV_ID, "scope": "user:basic"})
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        signer = key or (self.privy_key if method == "privy" else self.keys[method][0])
        token = jwt.encode(
            payload, signer.private_key, algorithm=signer.algorithm, headers={"kid": signer.kid}
        )
        SECRETS_IN_PLAY.add(token)
        return token
