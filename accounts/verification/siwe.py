"""Sign-In with Ethereum (EIP-4361): single-use nonces and message verification.

The message is parsed by the ``siwe`` library (never by hand). Domain, URI and chain id
must be ours: the domain exactly (host and port), the URI's scheme, host and port exactly
(any path), and a scheme the message names must be one of our origins' for that domain.
The nonce must be one we issued, and is consumed atomically so a signed message works
once. The signature is checked with EIP-191; when it is not the address's own key and a
chain RPC is configured, EIP-1271 asks the contract wallet.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from eth_account.messages import defunct_hash_message
from eth_keys.exceptions import BadSignature

with warnings.catch_warnings():
    # siwe's grammar redefines core ABNF rules on purpose; abnf warns about each at import.
    warnings.filterwarnings("ignore", message="rule '.*' redefines")
    from siwe import SiweMessage, generate_nonce
    from siwe.siwe import ExpiredMessage, InvalidSignature, NotYetValidMessage, VerificationError

from accounts import errors
from accounts.verification.identity import VerifiedIdentity
from accounts.verification.origins import authority_of, origin_of
from providers import registry
from providers.errors import ProviderError

_NONCE_KEY = "siwe:nonce:{}"


def siwe_nonce_issue() -> tuple[str, datetime]:
    nonce = generate_nonce()
    ttl = settings.SIWE_NONCE_TTL_SECONDS
    cache.set(_NONCE_KEY.format(nonce), "1", timeout=ttl)
    return nonce, timezone.now() + timedelta(seconds=ttl)


def _consume_nonce(nonce: str) -> bool:
    """True exactly once per issued nonce, even under concurrent requests (Redis DEL is atomic)."""
    return bool(cache.delete(_NONCE_KEY.format(nonce)))


def _parse(message: str) -> SiweMessage:
    """The message by siwe's regex parser first, then by its grammar parser. The grammar parser
    alone spends seconds of CPU on a few kilobytes it cannot parse (4 KB of one character: about
    3 s), which anyone could send; the regex parser refuses those in microseconds, and the grammar
    keeps the final word on what the regex accepted."""
    try:
        SiweMessage.from_message(message=message, abnf=False)
        return SiweMessage.from_message(message=message, abnf=True)
    except Exception as exc:
        raise errors.SiweMalformedMessage(details={"reason": str(exc)[:200]}) from exc


def _check_context(parsed: SiweMessage) -> None:
    domain = authority_of(parsed.domain)
    if domain is None or domain not in {authority_of(d) for d in settings.SIWE_DOMAINS}:
        raise errors.SiweDomainMismatch(details={"domain": parsed.domain})
    origins = {origin_of(o) for o in settings.SIWE_URI_ORIGINS} - {None}
    if parsed.scheme and origin_of(f"{parsed.scheme}://{parsed.domain}") not in origins:
        # The message names how the site asking for it was reached: that must be ours too.
        raise errors.SiweSchemeMismatch(details={"scheme": parsed.scheme, "domain": parsed.domain})
    uri = origin_of(str(parsed.uri))
    if uri is None or uri not in origins:
        raise errors.SiweUriMismatch(details={"uri": str(parsed.uri)})
    if parsed.chain_id not in settings.SIWE_CHAIN_IDS:
        raise errors.SiweChainNotAllowed(
            details={"chain_id": parsed.chain_id, "allowed": settings.SIWE_CHAIN_IDS}
        )
    issued_at = datetime.fromisoformat(str(parsed.issued_at).replace("Z", "+00:00"))
    now = timezone.now()
    if issued_at > now + timedelta(seconds=settings.OIDC_LEEWAY_SECONDS):
        raise errors.SiweMessageNotYetValid(details={"issued_at": str(parsed.issued_at)})
    if now - issued_at > timedelta(seconds=settings.SIWE_MAX_MESSAGE_AGE_SECONDS):
        raise errors.SiweMessageExpired(details={"issued_at": str(parsed.issued_at)})


def _contract_wallet_accepts(parsed: SiweMessage, signature: str) -> bool:
    if parsed.chain_id not in registry.configured_chain_ids():
        return False
    try:
        signature_bytes = bytes.fromhex(signature.removeprefix("0x"))
        chain = registry.chain_client(parsed.chain_id)
        return chain.is_valid_signature(
            address=parsed.address,
            message_hash=bytes(defunct_hash_message(text=parsed.prepare_message())),
            signature=signature_bytes,
        )
    except (ValueError, ProviderError):
        return False


def siwe_verify(*, message: str, signature: str) -> VerifiedIdentity:
    """Verify a signed EIP-4361 message and consume its nonce; the subject is the EIP-55 address."""
    parsed = _parse(message)
    _check_context(parsed)
    if not _consume_nonce(parsed.nonce):
        raise errors.SiweNonceInvalid()
    try:
        parsed.verify(signature, domain=parsed.domain, nonce=parsed.nonce)
    except ExpiredMessage as exc:
        raise errors.SiweMessageExpired() from exc
    except NotYetValidMessage as exc:
        raise errors.SiweMessageNotYetValid() from exc
    except (InvalidSignature, BadSignature, ValueError) as exc:
        # Not the address's own key (or not even an ECDSA signature, as with multi-owner
        # contract wallets): the contract may still accept it.
        if not _contract_wallet_accepts(parsed, signature):
            raise errors.SiweInvalidSignature() from exc
    except VerificationError as exc:
        raise errors.SiweInvalidSignature() from exc
    return VerifiedIdentity(method="siwe", subject=str(parsed.address), claims={"chain_id": parsed.chain_id})
