"""Deposits endpoints (API.md): the caller's deposits, reporting a transaction, where to send funds.

Every deposit is looked up among the caller's own: another user's id answers 404.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from deposits import tasks
from deposits.models import ACTIVE_STATUSES, Deposit, DepositStatus
from deposits.presenters import deposit_detail_data, deposits_data
from deposits.selectors import deposit_get_for_user, deposits_for_user
from deposits.serializers import (
    DepositAddressSerializer,
    DepositDetailSerializer,
    DepositFilterSerializer,
    DepositReportInputSerializer,
    DepositSerializer,
    DepositsReportedSerializer,
)
from deposits.services import addresses, intake, machine
from marqetfi.core.api import CursorPagination

TAGS = ["deposits"]
# The states whose step is reading the transaction's receipt: cheap enough to take in a request.
RECEIPT_STEP_STATUSES = frozenset({DepositStatus.DETECTED, DepositStatus.CONFIRMING})

REPORT_DESCRIPTION = """Report a transaction that paid your deposit address, so it is picked up
without waiting for the chain scanner. The transaction is read from the chain and verified.

One transaction may pay several transfers to you (the native coin and tokens): each is its own
deposit, and all of them are in `deposits`. 201 when at least one of them is new, 200 when every
one was already known: reporting the same transaction again is harmless and answers the same
deposits, so a retry needs no `Idempotency-Key`.

A confirmed deposit already in the settlement token is credited before this answers; anything
else carries on in the background (follow it on the `deposits` WebSocket channel or here).

Refusals: 400 `validation_error` (a malformed body), 400 `unsupported_chain`, 404
`transaction_not_found` (unknown or not mined yet: report it again once mined), 400
`transaction_failed` (reverted), 400 `not_your_deposit_address`, 400 `unsupported_token`,
503 `chain_unavailable` (the chain's RPC cannot be reached: try again shortly)."""


def _user(request: Request) -> User:
    return cast(User, request.user)


def deposits_advance_later(deposits: list[Deposit]) -> None:
    """Hand each deposit still under way to a worker once the current transaction commits."""
    for deposit in deposits:
        if deposit.status in ACTIVE_STATUSES:
            transaction.on_commit(partial(tasks.deposit_advance.delay, str(deposit.pk)))


class DepositListCreateApi(ListAPIView):
    pagination_class = CursorPagination
    serializer_class = DepositSerializer

    @extend_schema(
        tags=TAGS,
        parameters=[DepositFilterSerializer],
        operation_id="deposits_list",
        description="Your deposits, newest first.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        params = DepositFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return deposits_for_user(
            user=_user(self.request),
            status=params.validated_data.get("status"),
            chain_id=params.validated_data.get("chain_id"),
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(deposits_data(page or []))

    @extend_schema(
        tags=TAGS,
        request=DepositReportInputSerializer,
        responses={201: DepositsReportedSerializer, 200: DepositsReportedSerializer},
        operation_id="deposits_report",
        examples=[
            OpenApiExample(
                "Report a deposit on Arbitrum",
                value={"chain_id": 42161, "tx_hash": "0x" + "5e" * 32},
                request_only=True,
            )
        ],
        description=REPORT_DESCRIPTION,
    )
    def post(self, request: Request) -> Response:
        serializer = DepositReportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = _user(request)
        reported, created = intake.deposit_report(
            user=user,
            chain_id=serializer.validated_data["chain_id"],
            tx_hash=serializer.validated_data["tx_hash"],
        )
        # One confirmation step each now (a receipt read): a confirmed deposit in the settlement
        # token is credited before the answer. Later steps (quotes, sending a swap) are slow and
        # belong to a worker; a deposit not due yet, or held by a worker, is skipped.
        for deposit in reported:
            if deposit.status in RECEIPT_STEP_STATUSES:
                machine.deposit_advance(deposit_id=deposit.pk)
        fresh = {d.pk: d for d in deposits_for_user(user=user).filter(pk__in=[d.pk for d in reported])}
        deposits = [fresh[d.pk] for d in reported]
        deposits_advance_later(deposits)
        return Response(
            {"deposits": deposits_data(deposits)},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DepositDetailApi(APIView):
    @extend_schema(
        tags=TAGS,
        responses={200: DepositDetailSerializer},
        operation_id="deposits_get",
        description="One of your deposits with every swap attempt and its history. 404 "
        "`deposit_not_found` for an id that is not one of yours.",
    )
    def get(self, request: Request, deposit_id: Any) -> Response:
        deposit = deposit_get_for_user(user=_user(request), deposit_id=deposit_id)
        return Response(deposit_detail_data(deposit))


def deposit_address_data(address: addresses.DepositAddress) -> dict[str, Any]:
    native = {"symbol": intake.NATIVE_SYMBOL, "decimals": intake.NATIVE_DECIMALS}
    return {
        "address": address.wallet.address,
        "wallet_id": str(address.wallet.pk),
        "provider": address.wallet.provider,
        "chains": [
            {
                "chain_id": spec.chain_id,
                "name": spec.name,
                "confirmations": spec.confirmations,
                "tokens": [
                    {"symbol": token.symbol, "address": token.address, "decimals": token.decimals}
                    for token in spec.tokens
                ],
                "native": dict(native),
            }
            for spec in address.chains
        ],
    }


class DepositAddressApi(APIView):
    @extend_schema(
        tags=TAGS,
        responses={200: DepositAddressSerializer},
        operation_id="deposits_address",
        description="Where to send funds: your MPC wallet's address (created with the default "
        "wallet provider on the first call), the same on every EVM chain listed, with the tokens "
        "each accepts. Wallet provider errors answer as on POST /wallets/mpc (e.g. 503 "
        "`wallet_provider_unavailable`).",
    )
    def get(self, request: Request) -> Response:
        return Response(deposit_address_data(addresses.deposit_address_get(user=_user(request))))
