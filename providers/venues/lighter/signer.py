"""Lighter transaction signing: the one place that touches Lighter's native signer library.

Lighter transactions are signed with Schnorr keys over ECgFp5 and Poseidon2 hashes; the only
implementation is Lighter's Go library (``elliottech/lighter-go``), compiled as a C shared
library and shipped inside the ``lighter-sdk`` wheel. No pure-Python signer exists.

We do not depend on the SDK's Python code (it pins ``urllib3<2.1``, runs its own aiohttp
client and needs an event loop). This module only *finds* the installed ``lighter`` package
(``importlib.util.find_spec``, without importing it), loads ``lighter/signers/<platform>``
with ``ctypes`` and calls its exported C functions with the argument layout of the 1.1.8
library. Installing the wheel without its dependencies is enough for that::

    pip install --no-deps lighter-sdk==1.1.8

Without it, every signing function raises a non-retryable ``ProviderError``; market data and
account reads keep working. Every transaction is signed with an explicit nonce (from
``nextNonce``): with a nonce of -1 the library would fetch one over HTTP by itself.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import platform
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from eth_account.messages import encode_defunct

from providers.errors import ProviderError

PROVIDER: Final = "lighter"
SDK_DISTRIBUTION: Final = "lighter-sdk"
SDK_VERSION: Final = "1.1.8"  # the C signatures below are those of this release's library

# lighter-go types/txtypes/constants.go
TX_TYPE_CHANGE_PUB_KEY: Final = 8
TX_TYPE_CREATE_SUB_ACCOUNT: Final = 9
TX_TYPE_TRANSFER: Final = 12
TX_TYPE_CREATE_ORDER: Final = 14
TX_TYPE_CANCEL_ORDER: Final = 15

ORDER_TYPE_LIMIT: Final = 0
ORDER_TYPE_MARKET: Final = 1
# Trigger orders: a market order (IOC) sent when the mark price crosses ``trigger_price``.
ORDER_TYPE_STOP_LOSS: Final = 2
ORDER_TYPE_STOP_LOSS_LIMIT: Final = 3
ORDER_TYPE_TAKE_PROFIT: Final = 4
ORDER_TYPE_TAKE_PROFIT_LIMIT: Final = 5
USDC_ASSET_INDEX: Final = 3  # lighter-go USDCAssetIndex; amounts in 1e6 (OneUSDC)
ROUTE_PERPS: Final = 0  # AssetRouteType_Perps
TIME_IN_FORCE_IMMEDIATE_OR_CANCEL: Final = 0
TIME_IN_FORCE_GOOD_TILL_TIME: Final = 1
# The library turns -1 into "now + 28 days"; IOC orders must carry 0.
DEFAULT_28_DAY_ORDER_EXPIRY: Final = -1
IOC_ORDER_EXPIRY: Final = 0

_LIBRARIES: Final = {
    ("Linux", "x86_64"): "lighter-signer-linux-amd64.so",
    ("Linux", "amd64"): "lighter-signer-linux-amd64.so",
    ("Linux", "aarch64"): "lighter-signer-linux-arm64.so",
    ("Linux", "arm64"): "lighter-signer-linux-arm64.so",
    ("Darwin", "arm64"): "lighter-signer-darwin-arm64.dylib",
    ("Darwin", "x86_64"): "lighter-signer-darwin-amd64.dylib",
    ("Windows", "amd64"): "lighter-signer-windows-amd64.dll",
}


@dataclass(frozen=True)
class ApiKey:
    """A Lighter API key: which account and key slot it signs for, and on which chain."""

    account_index: int
    api_key_index: int
    private_key: str = field(default="", repr=False)  # 40-byte hex, with or without 0x
    chain_id: int = 304  # mainnet; testnet is 300


@dataclass(frozen=True)
class SignedTx:
    """What ``sendTx`` takes: the transaction type and the signed transaction as a JSON string.

    ``message_to_sign`` is set for the transactions that also need an L1 (EIP-191) signature
    of the account's Ethereum key (ChangePubKey, Transfer): see ``with_l1_signature``.
    """

    tx_type: int
    tx_info: str
    message_to_sign: str = ""


class _SignedTxResponse(ctypes.Structure):
    _fields_ = [
        ("txType", ctypes.c_uint8),
        ("txInfo", ctypes.c_void_p),
        ("txHash", ctypes.c_void_p),
        ("messageToSign", ctypes.c_void_p),
        ("err", ctypes.c_void_p),
    ]


class _StrOrErr(ctypes.Structure):
    _fields_ = [("str", ctypes.c_void_p), ("err", ctypes.c_void_p)]


_lock = threading.Lock()
_library: Any = None
# (account, key slot) -> (private key, chain id) last loaded into the library's client table.
_loaded_keys: dict[tuple[int, int], tuple[str, int]] = {}


def signing_available() -> bool:
    """Whether a signing call can succeed here (the library of the supported SDK release loads)."""
    try:
        _load_library()
    except ProviderError:
        return False
    return True


def ensure_available() -> None:
    """Raise the same error a signing call would, before anything is sent to Lighter."""
    _load_library()


def sign_create_order(
    *,
    key: ApiKey,
    nonce: int,
    market_index: int,
    client_order_index: int,
    base_amount: int,
    price: int,
    is_ask: bool,
    order_type: int,
    time_in_force: int,
    reduce_only: bool = False,
    trigger_price: int = 0,
    order_expiry: int = DEFAULT_28_DAY_ORDER_EXPIRY,
) -> SignedTx:
    """A signed CreateOrder (tx type 14). Amounts are Lighter's integers: ``base_amount`` is the
    size times 10^size_decimals, ``price`` the price times 10^price_decimals.

    The library validates the combination (e.g. a market order must be IOC with expiry 0); a
    refusal is a non-retryable ``ProviderError`` and nothing is sent.
    """
    with _lock:
        library = _client_for(key)
        result = library.SignCreateOrder(
            market_index,
            client_order_index,
            base_amount,
            price,
            int(is_ask),
            order_type,
            time_in_force,
            int(reduce_only),
            trigger_price,
            order_expiry,
            0,  # integrator account index: none
            0,  # integrator taker fee
            0,  # integrator maker fee
            0,  # self-trade behaviour: the venue default
            0,  # self-trade equality mode: the venue default
            0,  # skip nonce: off
            nonce,
            key.api_key_index,
            key.account_index,
        )
        return _signed(library, result, "CreateOrder")


def sign_cancel_order(*, key: ApiKey, nonce: int, market_index: int, order_index: int) -> SignedTx:
    """A signed CancelOrder (tx type 15); ``order_index`` may be the order's client order index."""
    with _lock:
        library = _client_for(key)
        result = library.SignCancelOrder(
            market_index, order_index, 0, nonce, key.api_key_index, key.account_index
        )
        return _signed(library, result, "CancelOrder")


def sign_create_sub_account(*, key: ApiKey, nonce: int) -> SignedTx:
    """A signed CreateSubAccount (tx type 9) of the master account ``key`` signs for. Lighter
    assigns the new account's index; it is read back from ``accountsByL1Address``."""
    with _lock:
        library = _client_for(key)
        result = library.SignCreateSubAccount(0, nonce, key.api_key_index, key.account_index)
        return _signed(library, result, "CreateSubAccount")


def sign_change_pub_key(*, key: ApiKey, nonce: int, public_key: str) -> SignedTx:
    """A signed ChangePubKey (tx type 8) registering ``public_key`` (40-byte hex) in slot
    ``key.api_key_index`` of ``key.account_index``, signed with ``key``'s private key (the one
    that matches ``public_key``). Lighter also wants the L1 signature of ``message_to_sign``."""
    with _lock:
        library = _client_for(key)
        result = library.SignChangePubKey(public_key.encode(), 0, nonce, key.api_key_index, key.account_index)
        return _signed(library, result, "ChangePubKey")


def sign_transfer(*, key: ApiKey, nonce: int, to_account_index: int, usdc_amount: int) -> SignedTx:
    """A signed Transfer (tx type 12) of ``usdc_amount`` (1e6 units) of USDC from the perps
    balance of ``key``'s account to the perps balance of ``to_account_index``, no fee, an
    empty memo. Lighter also wants the L1 signature of ``message_to_sign``."""
    with _lock:
        library = _client_for(key)
        result = library.SignTransfer(
            to_account_index,
            USDC_ASSET_INDEX,
            ROUTE_PERPS,
            ROUTE_PERPS,
            usdc_amount,
            0,  # USDC fee
            b"0" * 64,  # memo: 32 zero bytes, hex
            0,  # skip nonce: off
            nonce,
            key.api_key_index,
            key.account_index,
        )
        return _signed(library, result, "Transfer")


def with_l1_signature(signed: SignedTx, *, l1_private_key: str) -> SignedTx:
    """``signed`` with the ``L1Sig`` field Lighter checks against the account's L1 address:
    the EIP-191 signature of ``message_to_sign`` by the account's Ethereum key, 0x-hex, as
    the SDK's ``change_api_key`` and ``transfer`` add it."""
    if not signed.message_to_sign:
        raise ProviderError(PROVIDER, "this transaction has no message for an L1 signature")
    if not l1_private_key:
        raise ProviderError(PROVIDER, "no L1 (Ethereum) key of the Lighter master account is configured")
    signature = Account.sign_message(encode_defunct(text=signed.message_to_sign), private_key=l1_private_key)
    tx_info = json.loads(signed.tx_info)
    tx_info["L1Sig"] = "0x" + bytes(signature.signature).hex().removeprefix("0x")
    return SignedTx(tx_type=signed.tx_type, tx_info=json.dumps(tx_info), message_to_sign="")


def create_auth_token(*, key: ApiKey, deadline: int) -> str:
    """An auth token for the private read endpoints, valid until ``deadline`` (unix seconds,
    at most 8 hours ahead): ``"{deadline}:{account}:{key index}:{signature}"``."""
    with _lock:
        library = _client_for(key)
        result = library.CreateAuthToken(deadline, key.api_key_index, key.account_index)
        token, error = _take_string(library, result.str), _take_string(library, result.err)
    if error or not token:
        raise ProviderError(PROVIDER, f"the signer refused to create an auth token: {error or 'no token'}")
    return token


def _unavailable(reason: str) -> ProviderError:
    return ProviderError(
        PROVIDER,
        f"order signing needs the lighter signer library, which {reason}. It ships in the "
        f"lighter-sdk {SDK_VERSION} wheel: pip install --no-deps lighter-sdk=={SDK_VERSION}",
        retryable=False,
    )


def _load_library() -> Any:
    """The library, loaded and typed once per process; a clear ``ProviderError`` otherwise."""
    global _library  # noqa: PLW0603 - one native library per process
    if _library is not None:
        return _library
    spec = importlib.util.find_spec("lighter")
    if spec is None or not spec.submodule_search_locations:
        raise _unavailable("is not installed here")
    try:
        version = metadata.version(SDK_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    if version != SDK_VERSION:
        raise _unavailable(f"comes from lighter-sdk {version} here, whose C functions are not known to us")
    filename = _LIBRARIES.get((platform.system(), platform.machine().lower()))
    if filename is None:
        raise _unavailable(f"has no build for {platform.system()}/{platform.machine()}")
    path = Path(next(iter(spec.submodule_search_locations))) / "signers" / filename
    try:
        library = ctypes.CDLL(str(path))
    except OSError as exc:
        raise _unavailable(f"could not be loaded from {path} ({exc})") from exc
    _declare(library)
    _library = library
    return library


def _declare(library: Any) -> None:
    """The C signatures of the functions we call, as exported by the 1.1.8 library.

    SignCreateSubAccount, SignChangePubKey and SignTransfer follow ``sharedlib/main.go`` of
    ``elliottech/lighter-go`` (whose SignCreateOrder matches the 1.1.8 library's); they have not
    been run against the 1.1.8 wheel's build here."""
    c_int, c_longlong, c_uint8 = ctypes.c_int, ctypes.c_longlong, ctypes.c_uint8
    library.CreateClient.argtypes = [ctypes.c_char_p, ctypes.c_char_p, c_int, c_int, c_longlong]
    library.CreateClient.restype = ctypes.c_void_p
    library.SignCreateOrder.argtypes = [
        *(c_longlong, c_longlong, c_longlong),  # market, client order index, base amount
        *(c_int, c_int, c_int, c_int, c_int, c_int),  # price, is ask, type, TIF, reduce only, trigger
        *(c_longlong, c_longlong, c_int, c_int),  # expiry, integrator account, taker fee, maker fee
        *(c_uint8, c_uint8, c_uint8),  # self-trade behaviour, self-trade equality, skip nonce
        *(c_longlong, c_int, c_longlong),  # nonce, api key index, account index
    ]
    library.SignCreateOrder.restype = _SignedTxResponse
    library.SignCancelOrder.argtypes = [c_longlong, c_longlong, c_uint8, c_longlong, c_int, c_longlong]
    library.SignCancelOrder.restype = _SignedTxResponse
    library.SignCreateSubAccount.argtypes = [c_uint8, c_longlong, c_int, c_longlong]
    library.SignCreateSubAccount.restype = _SignedTxResponse
    library.SignChangePubKey.argtypes = [ctypes.c_char_p, c_uint8, c_longlong, c_int, c_longlong]
    library.SignChangePubKey.restype = _SignedTxResponse
    library.SignTransfer.argtypes = [
        *(c_longlong, ctypes.c_int16, c_uint8, c_uint8),  # to account, asset, from / to route
        *(c_longlong, c_longlong, ctypes.c_char_p),  # amount, USDC fee, memo
        *(c_uint8, c_longlong, c_int, c_longlong),  # skip nonce, nonce, api key index, account
    ]
    library.SignTransfer.restype = _SignedTxResponse
    library.CreateAuthToken.argtypes = [c_longlong, c_int, c_longlong]
    library.CreateAuthToken.restype = _StrOrErr
    library.Free.argtypes = [ctypes.c_void_p]
    library.Free.restype = None


def _client_for(key: ApiKey) -> Any:
    """The library with ``key`` loaded into its client table (again when the key changed).

    The URL given to ``CreateClient`` is only used by the library to fetch nonces itself,
    which we never let it do, so none is given.
    """
    library = _load_library()
    private_key = key.private_key.removeprefix("0x")
    slot = (key.account_index, key.api_key_index)
    if _loaded_keys.get(slot) != (private_key, key.chain_id):
        error = _take_string(
            library,
            library.CreateClient(
                b"", private_key.encode(), key.chain_id, key.api_key_index, key.account_index
            ),
        )
        if error:
            raise ProviderError(PROVIDER, f"the signer refused the API key: {error}")
        _loaded_keys[slot] = (private_key, key.chain_id)
    return library


def _signed(library: Any, result: _SignedTxResponse, what: str) -> SignedTx:
    error = _take_string(library, result.err)
    tx_info = _take_string(library, result.txInfo)
    _take_string(library, result.txHash)
    message = _take_string(library, result.messageToSign)
    if error or not tx_info:
        raise ProviderError(PROVIDER, f"the signer refused the {what}: {error or 'empty transaction'}")
    return SignedTx(tx_type=int(result.txType), tx_info=tx_info, message_to_sign=message or "")


def _take_string(library: Any, pointer: int | None) -> str | None:
    """Read a C string the library allocated, then free it with the library's own ``Free``."""
    if not pointer:
        return None
    try:
        value = ctypes.cast(pointer, ctypes.c_char_p).value
        return value.decode() if value is not None else None
    finally:
        library.Free(pointer)
