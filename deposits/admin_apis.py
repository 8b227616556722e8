"""Staff API of deposits (under /api/v1/admin/): every user's deposits, their full history with
who did what, and the two operator actions, retry and resolve (audited by the services)."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from deposits.apis import deposits_advance_later
from deposits.models import Deposit
from deposits.presenters import deposit_detail_data, deposits_data
from deposits.selectors import deposit_get, deposits_all
from deposits.serializers import (
    AdminDepositDetailSerializer,
    AdminDepositFilterSerializer,
    AdminDepositSerializer,
    DepositResolveInputSerializer,
    DepositRetryInputSerializer,
)
from deposits.services import operators
from marqetfi.core.api import CursorPagination
from marqetfi.core.apis import StaffApi
from marqetfi.core.formats import timestamp_text

TAGS = ["admin"]


def _owner_data(deposit: Deposit) -> dict[str, Any]:
    return {
        "user_id": str(deposit.user_id),
        "user_email": deposit.user.email or None,
        "wallet_id": str(deposit.wallet_id) if deposit.wallet_id else None,
        "next_action_at": timestamp_text(deposit.next_action_at),
    }


def admin_deposits_data(deposits: list[Deposit]) -> list[dict[str, Any]]:
    return [
        {**data, **_owner_data(deposit)}
        for deposit, data in zip(deposits, deposits_data(deposits), strict=True)
    ]


def admin_deposit_detail_data(deposit: Deposit) -> dict[str, Any]:
    return {**deposit_detail_data(deposit, with_actor=True), **_owner_data(deposit)}


class AdminDepositListApi(StaffApi, ListAPIView):
    staff_permissions = {"GET": "deposits.view_deposit"}

    pagination_class = CursorPagination
    serializer_class = AdminDepositSerializer

    @extend_schema(
        tags=TAGS,
        parameters=[AdminDepositFilterSerializer],
        operation_id="admin_deposits_list",
        description="Every user's deposits, newest first.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Deposit]:
        params = AdminDepositFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        wanted = params.validated_data
        return deposits_all(
            status=wanted.get("status"), chain_id=wanted.get("chain_id"), user_id=wanted.get("user")
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(admin_deposits_data(list(page or [])))


class AdminDepositDetailApi(StaffApi):
    staff_permissions = {"GET": "deposits.view_deposit"}

    @extend_schema(
        tags=TAGS,
        responses={200: AdminDepositDetailSerializer},
        operation_id="admin_deposits_get",
        description="One deposit with its swaps and its history, each step with the operator who did it.",
    )
    def get(self, request: Request, deposit_id: Any) -> Response:
        return Response(admin_deposit_detail_data(deposit_get(deposit_id=deposit_id)))


class AdminDepositRetryApi(StaffApi):
    staff_permissions = {"POST": "deposits.retry_swap"}

    @extend_schema(
        tags=TAGS,
        request=DepositRetryInputSerializer,
        responses={200: AdminDepositDetailSerializer},
        operation_id="admin_deposits_retry",
        description="Send a failed or refunded deposit back to quoting (or to confirming, if it never "
        "confirmed) with a fresh attempt budget. 409 `deposit_not_retryable` for any other status, "
        "409 `deposit_already_final` once credited.",
    )
    def post(self, request: Request, deposit_id: Any) -> Response:
        deposit = deposit_get(deposit_id=deposit_id)
        data = DepositRetryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        retried = operators.deposit_retry(
            deposit=deposit, actor=cast(User, request.user), reason=data.validated_data["reason"]
        )
        deposits_advance_later([retried])
        return Response(admin_deposit_detail_data(deposit_get(deposit_id=deposit_id)))


class AdminDepositResolveApi(StaffApi):
    staff_permissions = {"POST": "deposits.resolve_deposit"}

    @extend_schema(
        tags=TAGS,
        request=DepositResolveInputSerializer,
        responses={200: AdminDepositDetailSerializer},
        operation_id="admin_deposits_resolve",
        description="Close a deposit by hand: with `credit_amount`, credit that much USDC to the user "
        "(once: the deposit completes) for funds recovered outside the state machine; without it, "
        "close the deposit as failed with nothing credited. 409 `deposit_already_final` for a "
        "completed or credited deposit, 400 `resolution_rejected` for a bad amount or reason.",
    )
    def post(self, request: Request, deposit_id: Any) -> Response:
        deposit = deposit_get(deposit_id=deposit_id)
        data = DepositResolveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operators.deposit_resolve(
            deposit=deposit,
            actor=cast(User, request.user),
            reason=data.validated_data["reason"],
            credit_amount=data.validated_data.get("credit_amount"),
        )
        return Response(admin_deposit_detail_data(deposit_get(deposit_id=deposit_id)))
