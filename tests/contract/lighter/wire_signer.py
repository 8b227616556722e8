"""Stand-ins for Lighter's signer library (an optional native dependency, see
``providers/venues/lighter/signer.py``) that write each transaction as the library does
(Lighter's field names) with a dummy ``Sig``, and auth tokens of the library's shape. The
fake Lighter does not check these signatures; the L1 signatures stay real.

``wire_signer_stand_ins`` serves the ``wire_signer`` fixture of the tests;
``wire_signer_install`` serves a process a test starts (``tests/e2e/lighter_worker.py``).
It imports nothing that needs Django set up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from providers.venues.lighter import signer

KEY_INDEX = 3
PRIVATE_KEY = "0xfeebde38db4fcf843d83744b2b0c13a648c5b4e1e77636e451792ca4380f6428683c88303d4a8339"
EXPIRED_AT = 1795622610312

Signed = list[tuple[int, dict[str, Any]]]


def wire_signer_stand_ins(signed: Signed) -> dict[str, Callable[..., Any]]:
    """The signer module's functions by name, each signed transaction appended to ``signed``."""

    def tx(tx_type: int, fields: dict[str, Any], *, l1: bool = False) -> signer.SignedTx:
        info = json.dumps({**fields, "ExpiredAt": EXPIRED_AT, "Sig": "c2ln"})
        signed.append((tx_type, json.loads(info)))
        return signer.SignedTx(tx_type=tx_type, tx_info=info, message_to_sign=info if l1 else "")

    def key_fields(key: signer.ApiKey, nonce: int) -> dict[str, Any]:
        assert key.private_key == PRIVATE_KEY and key.api_key_index == KEY_INDEX
        return {"AccountIndex": key.account_index, "ApiKeyIndex": key.api_key_index, "Nonce": nonce}

    def sign_create_order(*, key: signer.ApiKey, nonce: int, **o: Any) -> signer.SignedTx:
        return tx(14, {
            **key_fields(key, nonce), "MarketIndex": o["market_index"],
            "ClientOrderIndex": o["client_order_index"], "BaseAmount": o["base_amount"], "Price": o["price"],
            "IsAsk": int(o["is_ask"]), "Type": o["order_type"], "TimeInForce": o["time_in_force"],
            "ReduceOnly": int(o.get("reduce_only", False)), "TriggerPrice": o.get("trigger_price", 0),
            "OrderExpiry": o.get("order_expiry", -1),
        })  # fmt: skip

    def sign_cancel_order(
        *, key: signer.ApiKey, nonce: int, market_index: int, order_index: int
    ) -> signer.SignedTx:
        return tx(15, {**key_fields(key, nonce), "MarketIndex": market_index, "Index": order_index})

    def sign_create_sub_account(*, key: signer.ApiKey, nonce: int) -> signer.SignedTx:
        return tx(9, key_fields(key, nonce))

    def sign_change_pub_key(*, key: signer.ApiKey, nonce: int, public_key: str) -> signer.SignedTx:
        return tx(8, {**key_fields(key, nonce), "PubKey": public_key}, l1=True)

    def sign_transfer(
        *, key: signer.ApiKey, nonce: int, to_account_index: int, usdc_amount: int
    ) -> signer.SignedTx:
        fields = key_fields(key, nonce)
        return tx(12, {
            "FromAccountIndex": fields.pop("AccountIndex"), **fields, "ToAccountIndex": to_account_index,
            "AssetIndex": 3, "FromRouteType": 0, "ToRouteType": 0, "Amount": usdc_amount, "USDCFee": 0,
            "Memo": [0] * 32,
        }, l1=True)  # fmt: skip

    def create_auth_token(*, key: signer.ApiKey, deadline: int) -> str:
        return f"{deadline}:{key.account_index}:{key.api_key_index}:c0ffee"

    def ensure_available() -> None:
        return None

    return {
        function.__name__: function
        for function in (
            ensure_available,
            sign_create_order,
            sign_cancel_order,
            sign_create_sub_account,
            sign_change_pub_key,
            sign_transfer,
            create_auth_token,
        )
    }


def wire_signer_install() -> Signed:
    """Put the stand-ins in place in this process for good; returns the list they append to."""
    signed: Signed = []
    for name, function in wire_signer_stand_ins(signed).items():
        setattr(signer, name, function)
    return signed
