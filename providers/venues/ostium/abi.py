"""The few Ostium and USDC contract entries we encode or decode, and nothing else.

Written by us from the ABIs shipped in ostium-python-sdk 3.3.1
(``ostium_python_sdk/abi/trading_abi.py`` and ``usdc_abi.py``); selectors checked against
the SDK's calldata and the error map in its ``utils.fromErrorCodeToMessage``. The SDK itself
is not a dependency (it pulls web3 8 and pytest into runtime).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract


class OpenOrderType(IntEnum):
    """``IOstiumTradingStorage.OpenOrderType``: how ``openTrade`` treats ``t.openPrice``.

    MARKET fills near it (within ``slippageP``); LIMIT rests until the price is better than it
    (below for a long, above for a short); STOP rests until the price moves through it.
    """

    MARKET = 0
    LIMIT = 1
    STOP = 2


def _function(name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None = None) -> Any:
    return {
        "type": "function",
        "name": name,
        "stateMutability": "view" if outputs else "nonpayable",
        "inputs": inputs,
        "outputs": outputs or [],
    }


def _arg(name: str, type_: str) -> dict[str, Any]:
    return {"name": name, "type": type_}


_TRADE_STRUCT: Final = {
    "name": "t",
    "type": "tuple",
    "components": [
        _arg("collateral", "uint256"),  # USDC, 6 decimals
        _arg("openPrice", "uint192"),  # 18 decimals
        _arg("tp", "uint192"),  # 18 decimals, 0 = none
        _arg("sl", "uint192"),  # 18 decimals, 0 = none
        _arg("trader", "address"),
        _arg("leverage", "uint32"),  # x100
        _arg("pairIndex", "uint16"),
        _arg("index", "uint8"),  # assigned by the contract
        _arg("buy", "bool"),
        _arg("isDayTrade", "bool"),
    ],
}
_BUILDER_FEE_STRUCT: Final = {
    "name": "bf",
    "type": "tuple",
    "components": [_arg("builder", "address"), _arg("builderFee", "uint32")],
}

TRADING_ABI: Final[list[dict[str, Any]]] = [
    _function(
        "openTrade",
        [_TRADE_STRUCT, _BUILDER_FEE_STRUCT, _arg("orderType", "uint8"), _arg("slippageP", "uint256")],
    ),
    _function(
        "closeTradeMarket",
        [
            _arg("pairIndex", "uint16"),
            _arg("index", "uint8"),
            _arg("closePercentage", "uint16"),
            _arg("marketPrice", "uint192"),
            _arg("slippageP", "uint32"),
        ],
    ),
    _function("updateTp", [_arg("pairIndex", "uint16"), _arg("index", "uint8"), _arg("newTp", "uint192")]),
    _function("updateSl", [_arg("pairIndex", "uint16"), _arg("index", "uint8"), _arg("newSl", "uint192")]),
    _function("cancelOpenLimitOrder", [_arg("pairIndex", "uint16"), _arg("index", "uint8")]),
    _function("setDelegate", [_arg("delegate", "address")]),
    _function("removeDelegate", []),
    _function("delegatedAction", [_arg("trader", "address"), _arg("call_data", "bytes")]),
    _function("delegations", [_arg("delegator", "address")], [_arg("", "address")]),
]

ERC20_ABI: Final[list[dict[str, Any]]] = [
    _function("approve", [_arg("spender", "address"), _arg("value", "uint256")]),
    _function("allowance", [_arg("owner", "address"), _arg("spender", "address")], [_arg("", "uint256")]),
]

# Custom errors of OstiumTrading a user's transaction can revert with (admin-only ones left out).
TRADING_ERRORS: Final = (
    "AboveMaxAllowedCollateral()",
    "AlreadyMarketClosed(address,uint16,uint8)",
    "BelowFees()",
    "BelowMinLevPos()",
    "DelegateForbidden()",
    "DelegateReentrant()",
    "DelegatedActionFailed()",
    "ExposureLimits()",
    "InvalidCallData()",
    "IsContract(address)",
    "IsDone()",
    "IsPaused()",
    "MaxPendingMarketOrdersReached(address)",
    "MaxTradesPerPairReached(address,uint16)",
    "NoDelegate(address)",
    "NoLimitFound(address,uint16,uint8)",
    "NoTradeFound(address,uint16,uint8)",
    "NotDelegate(address,address)",
    "NullAddr()",
    "PairNotListed(uint16)",
    "TriggerPending(address,uint16,uint8)",
    "WrongLeverage(uint32)",
    "WrongParams()",
    "WrongSL()",
    "WrongTP()",
)
ERROR_BY_SELECTOR: Final[dict[str, str]] = {
    keccak(text=signature)[:4].hex(): signature.split("(", 1)[0] for signature in TRADING_ERRORS
}

# The trading contract before ``isDayTrade`` joined the trade struct (ostium-python-sdk before
# 3.x): its ``openTrade`` has another selector (``OPEN_TRADE_SELECTORS``); the other entries are
# unchanged.
_TRADE_COMPONENTS: Final[list[dict[str, str]]] = _TRADE_STRUCT["components"]  # type: ignore[assignment]
_LEGACY_TRADE_STRUCT: Final = {
    **_TRADE_STRUCT,
    "components": [c for c in _TRADE_COMPONENTS if c["name"] != "isDayTrade"],
}
TRADING_ABI_LEGACY: Final[list[dict[str, Any]]] = [
    _function(
        "openTrade",
        [_LEGACY_TRADE_STRUCT, _BUILDER_FEE_STRUCT, _arg("orderType", "uint8"), _arg("slippageP", "uint256")],
    ),
    *TRADING_ABI[1:],
]

# Encoding needs no node: these contract objects are never given an address or a provider.
_codec = Web3()
TRADING: Final[type[Contract]] = _codec.eth.contract(abi=TRADING_ABI)
TRADING_LEGACY: Final[type[Contract]] = _codec.eth.contract(abi=TRADING_ABI_LEGACY)
# ``abi_version`` option of the ostium provider -> the contract ABI trades are encoded with.
TRADING_BY_ABI_VERSION: Final[dict[str, type[Contract]]] = {"day-trade": TRADING, "legacy": TRADING_LEGACY}
OPEN_TRADE_SELECTORS: Final[dict[str, str]] = {
    version: "0x" + keccak(text=contract.get_function_by_name("openTrade").signature)[:4].hex()
    for version, contract in TRADING_BY_ABI_VERSION.items()
}
ERC20: Final[type[Contract]] = _codec.eth.contract(abi=ERC20_ABI)
