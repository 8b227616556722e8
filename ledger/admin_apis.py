"""Staff API of the ledger (under /api/v1/admin/): manual credits and debits of a user's USDC."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import errors as account_errors
from accounts.models import User
from ledger.models import AMOUNT_DIGITS, AMOUNT_PLACES
from ledger.selectors import user_balances
from ledger.services import balance_adjust
from marqetfi.core.api import DecimalStringField
from marqetfi.core.apis import StaffApi


def _usdc(**kwargs: object) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)  # type: ignore[arg-type]


MAX_ADJUSTMENT = Decimal(10) ** 12  # USDC, either way


class BalancesSerializer(serializers.Serializer):
    available = _usdc()
    margin = _usdc()


class AdminUserAdjustmentCreateApi(StaffApi):
    """Credit (positive ``amount``) or debit (negative) a user's available USDC through the ledger.

    Audited. A debit beyond the available balance answers 409 ``insufficient_balance`` with
    ``required`` and ``available`` in ``details`` and changes nothing.
    """

    staff_permissions = {"POST": "ledger.adjust_balance"}

    class InputSerializer(serializers.Serializer):
        amount = DecimalStringField(
            min_value=-MAX_ADJUSTMENT,
            max_value=MAX_ADJUSTMENT,
            max_decimal_places=AMOUNT_PLACES,
            max_digits=AMOUNT_DIGITS,
            help_text="USDC; negative to debit, never zero.",
        )
        reason = serializers.CharField(
            max_length=500, help_text="Why; kept with the transaction and the audit."
        )

        def validate_amount(self, value: Decimal) -> Decimal:
            if value == 0:
                raise serializers.ValidationError("Must not be zero.")
            return value

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        kind = serializers.CharField()
        user_id = serializers.UUIDField()
        amount = _usdc()
        reason = serializers.CharField()
        actor = serializers.EmailField(allow_null=True)
        created_at = serializers.DateTimeField()
        balances = BalancesSerializer(help_text="The user's balances after the adjustment.")

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        operation_id="admin_users_adjustments_create",
    )
    def post(self, request: Request, user_id: str) -> Response:
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            raise account_errors.UserNotFound()
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operator = cast(User, request.user)
        with transaction.atomic():  # the balances read back are this adjustment's, under its lock
            posted = balance_adjust(
                user=user,
                amount=data.validated_data["amount"],
                reason=data.validated_data["reason"],
                actor=operator,
            )
            balances = user_balances(user=user)
        body = self.OutputSerializer(
            {
                "id": posted.pk,
                "kind": posted.kind,
                "user_id": user.pk,
                "amount": data.validated_data["amount"],
                "reason": posted.memo,
                "actor": operator.email,
                "created_at": posted.created_at,
                "balances": {"available": balances.available, "margin": balances.margin},
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED)
