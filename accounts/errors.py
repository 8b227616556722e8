"""Errors of sign-in, identities and wallets, each with a stable code the apps switch on."""

from __future__ import annotations

from marqetfi.core.errors import ApplicationError


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    status_code = 401
    default_message = "Email or password is wrong."


class AccountDisabled(ApplicationError):
    code = "account_disabled"
    status_code = 403
    default_message = "Sign-in is disabled for this account. Contact support."


class EmailNotVerified(ApplicationError):
    code = "email_not_verified"
    status_code = 403
    default_message = "Verify your email address first: we sent you a link."


class EmailInUse(ApplicationError):
    code = "email_in_use"
    status_code = 409
    default_message = "An account with this email address exists. Sign in with it, then link this method."


class InvalidVerificationKey(ApplicationError):
    code = "invalid_verification_key"
    status_code = 400
    default_message = "This verification link is invalid, expired or already used."


class AuthMethodUnavailable(ApplicationError):
    code = "auth_method_unavailable"
    status_code = 503
    default_message = "This sign-in method is not configured on this server."


class InvalidToken(ApplicationError):
    """An ID or access token from an identity provider was refused; ``code`` says why."""

    code = "invalid_token"
    status_code = 401
    default_message = "The identity token is not valid."


class TokenExpired(InvalidToken):
    code = "token_expired"
    default_message = "The identity token has expired."


class InvalidAudience(InvalidToken):
    code = "invalid_audience"
    default_message = "The identity token was issued for another application."


class InvalidIssuer(InvalidToken):
    code = "invalid_issuer"
    default_message = "The identity token comes from an unexpected issuer."


class UnknownSigningKey(InvalidToken):
    code = "unknown_signing_key"
    default_message = "The identity token is signed with a key the issuer does not publish."


class InvalidTokenSignature(InvalidToken):
    code = "invalid_signature"
    default_message = "The identity token's signature does not verify."


class SignInIncomplete(InvalidToken):
    """A valid token of a session that has not finished signing in (e.g. an MFA step pending)."""

    code = "sign_in_incomplete"
    status_code = 403
    default_message = (
        "Sign-in with the identity provider is not complete; finish it (e.g. the MFA step) first."
    )


class NonceMismatch(InvalidToken):
    code = "nonce_mismatch"
    default_message = "The identity token's nonce does not match the one sent."


class IdentityProviderUnavailable(ApplicationError):
    code = "identity_provider_unavailable"
    status_code = 503
    default_message = "The identity provider's keys could not be fetched. Try again shortly."


class SiweError(ApplicationError):
    code = "siwe_invalid"
    status_code = 401
    default_message = "The Sign-In with Ethereum message was refused."


class SiweMalformedMessage(SiweError):
    code = "siwe_malformed_message"
    status_code = 400
    default_message = "The message is not a valid EIP-4361 message."


class SiweNonceInvalid(SiweError):
    code = "siwe_nonce_invalid"
    default_message = "The nonce is unknown, expired or already used. Ask for a new one."


class SiweMessageExpired(SiweError):
    code = "siwe_message_expired"
    default_message = "The message has expired. Sign a new one."


class SiweMessageNotYetValid(SiweError):
    code = "siwe_message_not_yet_valid"
    default_message = "The message is not valid yet."


class SiweDomainMismatch(SiweError):
    code = "siwe_domain_mismatch"
    default_message = "The message was made for another domain."


class SiweSchemeMismatch(SiweError):
    code = "siwe_scheme_mismatch"
    default_message = "The message was requested over a scheme we do not serve sign-in on."


class SiweUriMismatch(SiweError):
    code = "siwe_uri_mismatch"
    default_message = "The message's URI is not one of ours."


class SiweChainNotAllowed(SiweError):
    code = "siwe_chain_not_allowed"
    default_message = "Sign-in is not accepted on this chain."


class SiweInvalidSignature(SiweError):
    code = "siwe_invalid_signature"
    default_message = "The signature does not match the message and address."


class IdentityInUse(ApplicationError):
    code = "identity_in_use"
    status_code = 409
    default_message = "This sign-in method already belongs to another account."


class LastIdentity(ApplicationError):
    code = "last_identity"
    status_code = 409
    default_message = "This is the only way to sign in to the account: link another method first."


class IdentityNotFound(ApplicationError):
    code = "not_found"
    status_code = 404
    default_message = "No such sign-in method on this account."


class UserNotFound(ApplicationError):
    code = "not_found"
    status_code = 404
    default_message = "No such user."


class CannotLockOutSelf(ApplicationError):
    code = "cannot_lock_out_self"
    status_code = 409
    default_message = "Operators cannot disable their own sign-in or staff access."


class WalletNotFound(ApplicationError):
    code = "not_found"
    status_code = 404
    default_message = "No such wallet."


class WalletInUse(ApplicationError):
    code = "wallet_in_use"
    status_code = 409
    default_message = "This address is already linked to another account."


class UnknownWalletProvider(ApplicationError):
    code = "unknown_wallet_provider"
    status_code = 400
    default_message = "No such wallet provider."


class VerifiedEmailRequired(ApplicationError):
    code = "verified_email_required"
    status_code = 400
    default_message = "This wallet provider needs a verified email address on the account."


class WalletProviderUnavailable(ApplicationError):
    code = "wallet_provider_unavailable"
    status_code = 503
    default_message = "The wallet provider is not available right now. Try again shortly."


class WalletProviderRejected(ApplicationError):
    code = "wallet_provider_error"
    status_code = 502
    default_message = "The wallet provider refused the request."


class PasswordRejected(ApplicationError):
    code = "validation_error"
    status_code = 400
    default_message = "Invalid input."


class InvalidRefreshToken(ApplicationError):
    code = "token_not_valid"
    status_code = 401
    default_message = "The refresh token is invalid, expired or already used."


class TokenRevoked(ApplicationError):
    code = "token_revoked"
    status_code = 401
    default_message = "This token has been revoked (signed out everywhere); sign in again."


class WrongPassword(ApplicationError):
    """The current password given to change it is wrong (400, not 401: the session is fine)."""

    code = "wrong_password"
    status_code = 400
    default_message = "The current password is wrong."


class NoPassword(ApplicationError):
    code = "no_password"
    status_code = 400
    default_message = "This account has no password: link email sign-in to set one, or reset it by email."


class InvalidPasswordResetKey(ApplicationError):
    code = "invalid_reset_key"
    status_code = 400
    default_message = "This password reset link is invalid, expired or already used. Ask for a new one."
