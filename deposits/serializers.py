"""The shapes of the deposits API (API.md): what comes in, and what goes out as documented in
the OpenAPI schema. ``deposits.presenters`` writes the output; these classes describe it."""

from __future__ import annotations

from rest_framework import serializers

from deposits.models import DepositSource, DepositStatus, SwapStatus
from marqetfi.core.api import DecimalStringField, decimal_output

TX_HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
MAX_CHAIN_ID = 2**53
MAX_CREDIT = 10**12  # USDC; the deposit policy's max_credit_usdc is checked by the service
USDC_PLACES = 6


def chain_id_field(**kwargs: object) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_CHAIN_ID, **kwargs)  # type: ignore[arg-type]


# --- out --------------------------------------------------------------------------------


class DepositTokenSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    address = serializers.CharField(
        allow_null=True, help_text="The ERC-20 contract; null for the native coin"
    )
    decimals = serializers.IntegerField()
    native = serializers.BooleanField(help_text="The chain's native coin (ETH), not a token")


class SwapSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    attempt = serializers.IntegerField(help_text="1 for the first quote; a retry is a new attempt")
    provider = serializers.CharField(help_text="lifi")
    status = serializers.ChoiceField(choices=SwapStatus.choices)
    tool = serializers.CharField(help_text="The bridge or exchange the route uses")
    tx_hash = serializers.CharField(allow_null=True, help_text="The swap transaction on the source chain")
    approval_tx_hash = serializers.CharField(allow_null=True)
    receiving_tx_hash = serializers.CharField(allow_null=True, help_text="On the settlement chain")
    provider_status = serializers.CharField(allow_null=True, help_text="As LI-FI reports it")
    provider_substatus = serializers.CharField(allow_null=True)
    quoted_amount_usdc = decimal_output(help_text="USDC the quote expects to deliver")
    quoted_min_amount_usdc = decimal_output(help_text="USDC the quote guarantees at least")
    received_amount_usdc = decimal_output(allow_null=True, help_text="USDC actually delivered")
    failure_code = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class DepositSerializer(serializers.Serializer):
    """A deposit: one transfer to the user's deposit address (a transaction may pay several)."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=DepositStatus.choices,
        help_text="detected -> confirming -> quoting -> swapping -> bridging -> completed; or "
        "failed, refunded, dropped (reorganised away). A deposit already in USDC on the settlement "
        "chain skips the swap states.",
    )
    # The metaclass takes declared fields off the class, so this "source" never shadows Field.source.
    source = serializers.ChoiceField(choices=DepositSource.choices)  # type: ignore[assignment]
    chain_id = serializers.IntegerField()
    chain_name = serializers.CharField()
    tx_hash = serializers.CharField()
    log_index = serializers.IntegerField(help_text="-1 for the native coin a transaction carries")
    block_number = serializers.IntegerField(allow_null=True)
    from_address = serializers.CharField(allow_null=True)
    to_address = serializers.CharField(help_text="The user's deposit address")
    token = DepositTokenSerializer()
    amount = decimal_output(help_text="In the received token")
    amount_raw = serializers.CharField(help_text="Base units of the received token, as a decimal string")
    amount_usdc = decimal_output(
        allow_null=True,
        help_text="USDC credited, or while a swap is under way the amount its quote expects",
    )
    credited_amount = decimal_output(allow_null=True, help_text="USDC credited to the account, once done")
    confirmations = serializers.IntegerField()
    confirmations_required = serializers.IntegerField()
    swap = SwapSerializer(allow_null=True, help_text="The latest swap attempt")
    swaps = SwapSerializer(many=True, help_text="Every swap attempt, first to last")
    swap_attempts = serializers.IntegerField()
    failure_code = serializers.CharField(allow_null=True)
    failure_reason = serializers.CharField(allow_null=True)
    resource_version = serializers.IntegerField(help_text="Apply an update only if it is newer")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class DepositTransitionSerializer(serializers.Serializer):
    from_ = serializers.CharField(allow_null=True, help_text="null for the first step")
    to = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword: declared as from_, named "from" on the wire.
        return {("from" if name == "from_" else name): field for name, field in super().get_fields().items()}


class DepositDetailSerializer(DepositSerializer):
    transitions = DepositTransitionSerializer(many=True, help_text="The deposit's history, oldest first")


class DepositsReportedSerializer(serializers.Serializer):
    deposits = DepositSerializer(
        many=True, help_text="One per transfer the transaction made to the caller's deposit address"
    )


class NativeCoinSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    decimals = serializers.IntegerField()


class DepositTokenSpecSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    address = serializers.CharField()
    decimals = serializers.IntegerField()


class DepositChainSerializer(serializers.Serializer):
    chain_id = serializers.IntegerField()
    name = serializers.CharField()
    confirmations = serializers.IntegerField(
        help_text="Blocks, the transfer's own included, before it counts"
    )
    tokens = DepositTokenSpecSerializer(many=True, help_text="ERC-20 tokens accepted on this chain")
    native = NativeCoinSerializer(help_text="The native coin, accepted too")


class DepositAddressSerializer(serializers.Serializer):
    address = serializers.CharField(help_text="Send funds here, on any of the chains below")
    wallet_id = serializers.UUIDField()
    provider = serializers.CharField(help_text="The MPC wallet provider holding the address")
    chains = DepositChainSerializer(many=True)


class AdminDepositTransitionSerializer(DepositTransitionSerializer):
    actor_id = serializers.UUIDField(
        allow_null=True, help_text="The operator who did it; null for the system"
    )
    actor_email = serializers.EmailField(allow_null=True)
    details = serializers.DictField()


class AdminDepositSerializer(DepositSerializer):
    user_id = serializers.UUIDField()
    user_email = serializers.EmailField(allow_null=True)
    wallet_id = serializers.UUIDField(allow_null=True)
    next_action_at = serializers.DateTimeField(help_text="When the state machine looks at it again")


class AdminDepositDetailSerializer(AdminDepositSerializer):
    transitions = AdminDepositTransitionSerializer(many=True, help_text="Oldest first, with who did each")


# --- in ---------------------------------------------------------------------------------


class DepositFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DepositStatus.values, required=False)
    chain_id = chain_id_field(required=False)


class AdminDepositFilterSerializer(DepositFilterSerializer):
    user = serializers.UUIDField(required=False, help_text="One user's deposits")


class DepositReportInputSerializer(serializers.Serializer):
    chain_id = chain_id_field(help_text="The chain the transaction is on")
    tx_hash = serializers.RegexField(
        TX_HASH_PATTERN,
        error_messages={"invalid": "A transaction hash: 0x and 64 hex digits."},
        help_text="0x and 64 hex digits",
    )


class DepositRetryInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="Kept in the history and audit",
    )


class DepositResolveInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Kept in the history and audit")
    credit_amount = DecimalStringField(
        min_value=0,
        min_exclusive=True,
        max_value=MAX_CREDIT,
        max_decimal_places=USDC_PLACES,
        required=False,
        allow_null=True,
        help_text="USDC to credit the user (funds recovered outside the machine); leave out to close "
        "the deposit as failed with nothing credited.",
    )
