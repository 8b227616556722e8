"""Webhooks endpoints (API.md): endpoints, their secrets, the delivery log and its attempts.

Every object is looked up among the caller's own: another user's id answers 404, whatever
the method.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from marqetfi.core.api import CursorPagination
from webhooks.selectors import (
    DeliveryFilters,
    deliveries_for_user,
    delivery_get_for_user,
    endpoint_get_for_user,
    endpoints_for_user,
    recovery_get_for_user,
)
from webhooks.serializers import (
    DeliveryDetailSerializer,
    DeliveryFilterSerializer,
    DeliverySerializer,
    EndpointCreatedSerializer,
    EndpointInputSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    RecoverInputSerializer,
    RecoverySerializer,
    SecretRotatedSerializer,
)
from webhooks.services.delivery import delivery_redeliver, endpoint_recover_request, endpoint_test_send
from webhooks.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_secret_rotate,
    endpoint_update,
)

TAGS = ["webhooks"]


def _user(request: Request) -> User:
    return cast(User, request.user)


class EndpointListCreateApi(ListAPIView):
    pagination_class = CursorPagination
    serializer_class = EndpointSerializer

    @extend_schema(tags=TAGS, operation_id="webhooks_endpoints_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        return endpoints_for_user(user=_user(self.request))

    @extend_schema(
        tags=TAGS,
        request=EndpointInputSerializer,
        responses={201: EndpointCreatedSerializer},
        operation_id="webhooks_endpoints_create",
        examples=[
            OpenApiExample(
                "Orders and positions",
                value={
                    "url": "https://hooks.example.com/marqetfi",
                    "description": "Trading desk",
                    "event_types": ["order.filled", "order.cancelled", "position.closed", "risk.liquidation"],
                    "enabled": True,
                },
                request_only=True,
            )
        ],
        description="The response carries the endpoint's signing secret; it is never shown again.",
    )
    def post(self, request: Request) -> Response:
        serializer = EndpointInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint, secret = endpoint_create(
            user=_user(request),
            url=data["url"],
            event_types=data["event_types"],
            description=data["description"],
            enabled=data["enabled"],
            ordered=data["ordered"],
        )
        body = EndpointSerializer(endpoint).data
        return Response({**body, "secret": secret}, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema(tags=TAGS, responses={200: EndpointSerializer}, operation_id="webhooks_endpoints_get")
    def get(self, request: Request, endpoint_id: Any) -> Response:
        endpoint = endpoint_get_for_user(user=_user(request), endpoint_id=endpoint_id)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        tags=TAGS,
        request=EndpointUpdateSerializer,
        responses={200: EndpointSerializer},
        operation_id="webhooks_endpoints_update",
        description='Send only what changes. "enabled": false disables it (reason "user"); '
        '"enabled": true enables it again and clears the reason.',
    )
    def patch(self, request: Request, endpoint_id: Any) -> Response:
        endpoint = endpoint_get_for_user(user=_user(request), endpoint_id=endpoint_id)
        serializer = EndpointUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send url, description, event_types, enabled or ordered."]}
            )
        endpoint = endpoint_update(
            endpoint,
            url=data.get("url"),
            event_types=data.get("event_types"),
            description=data.get("description"),
            enabled=data.get("enabled"),
            ordered=data.get("ordered"),
        )
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(tags=TAGS, responses={204: None}, operation_id="webhooks_endpoints_delete")
    def delete(self, request: Request, endpoint_id: Any) -> Response:
        endpoint_delete(endpoint_get_for_user(user=_user(request), endpoint_id=endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointSecretRotateApi(APIView):
    @extend_schema(
        tags=TAGS,
        request=None,
        responses={200: SecretRotatedSerializer},
        operation_id="webhooks_endpoints_rotate_secret",
        description="A new secret, shown once; the previous one keeps signing deliveries for 24 h.",
    )
    def post(self, request: Request, endpoint_id: Any) -> Response:
        endpoint = endpoint_get_for_user(user=_user(request), endpoint_id=endpoint_id)
        secret = endpoint_secret_rotate(endpoint)
        return Response(
            SecretRotatedSerializer(
                {"secret": secret, "previous_secret_expires_at": endpoint.previous_secret_expires_at}
            ).data
        )


class EndpointTestApi(APIView):
    @extend_schema(
        tags=TAGS,
        request=None,
        responses={201: DeliverySerializer},
        operation_id="webhooks_endpoints_test",
        description="Publishes a webhook.test event and delivers it to this endpoint alone; the "
        "answer is the new delivery, sent right after. 409 webhook_endpoint_disabled when disabled.",
    )
    def post(self, request: Request, endpoint_id: Any) -> Response:
        endpoint = endpoint_get_for_user(user=_user(request), endpoint_id=endpoint_id)
        delivery = endpoint_test_send(endpoint)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_201_CREATED)


class EndpointRecoverApi(APIView):
    @extend_schema(
        tags=TAGS,
        request=RecoverInputSerializer,
        responses={202: RecoverySerializer},
        operation_id="webhooks_endpoints_recover",
        description="Resends every failed delivery of this endpoint created since `since`, in a "
        "background job; follow it at GET /webhooks/recoveries/{id}. 409 webhook_endpoint_disabled "
        "when disabled.",
    )
    def post(self, request: Request, endpoint_id: Any) -> Response:
        endpoint = endpoint_get_for_user(user=_user(request), endpoint_id=endpoint_id)
        serializer = RecoverInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        recovery = endpoint_recover_request(endpoint, since=serializer.validated_data["since"])
        return Response(RecoverySerializer(recovery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListApi(ListAPIView):
    pagination_class = CursorPagination
    serializer_class = DeliverySerializer

    @extend_schema(
        tags=TAGS,
        parameters=[DeliveryFilterSerializer],
        operation_id="webhooks_deliveries_list",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        params = DeliveryFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        return deliveries_for_user(
            user=_user(self.request),
            filters=DeliveryFilters(
                endpoint_id=data.get("endpoint"),
                status=data.get("status"),
                event_type=data.get("event_type"),
                created_after=data.get("created_after"),
                created_before=data.get("created_before"),
            ),
        )


class DeliveryDetailApi(APIView):
    @extend_schema(
        tags=TAGS, responses={200: DeliveryDetailSerializer}, operation_id="webhooks_deliveries_get"
    )
    def get(self, request: Request, delivery_id: Any) -> Response:
        delivery = delivery_get_for_user(user=_user(request), delivery_id=delivery_id)
        return Response(DeliveryDetailSerializer(delivery).data)


class DeliveryRedeliverApi(APIView):
    @extend_schema(
        tags=TAGS,
        request=None,
        responses={202: DeliverySerializer},
        operation_id="webhooks_deliveries_redeliver",
        description="Sends the delivery again (same webhook-id and body) in a fresh round of "
        "attempts; a delivery still pending is left as it is. 409 webhook_endpoint_disabled when "
        "its endpoint is disabled.",
    )
    def post(self, request: Request, delivery_id: Any) -> Response:
        delivery = delivery_get_for_user(user=_user(request), delivery_id=delivery_id)
        delivery = delivery_redeliver(delivery)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class RecoveryDetailApi(APIView):
    @extend_schema(
        tags=TAGS,
        responses={200: RecoverySerializer},
        operation_id="webhooks_recoveries_get",
    )
    def get(self, request: Request, recovery_id: Any) -> Response:
        recovery = recovery_get_for_user(user=_user(request), recovery_id=recovery_id)
        return Response(RecoverySerializer(recovery).data)
