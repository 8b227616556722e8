"""Staff-only API for users, platform analytics and the audit log (under /api/v1/admin/)."""

from __future__ import annotations

from typing import Any, cast

from django.db import transaction
from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import errors
from accounts.models import User
from accounts.serializers import ProfileSerializer, UserSerializer
from accounts.services.users import user_sign_in_set, user_staff_set, user_trading_set
from marqetfi.core.api import CursorPagination
from marqetfi.core.apis import StaffApi


class StaffUserSerializer(UserSerializer):
    class Meta(UserSerializer.Meta):
        fields: tuple[str, ...] = (*UserSerializer.Meta.fields, "is_active", "is_staff", "last_login")  # type: ignore[assignment]


class NewestUsersFirst(CursorPagination):
    ordering = "-date_joined"


class AdminUserListApi(StaffApi, ListAPIView):
    staff_permissions = {"GET": "accounts.view_user"}

    serializer_class = StaffUserSerializer
    pagination_class = NewestUsersFirst

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Email, display name, wallet address or identity subject.")
        ],
        operation_id="admin_users_list",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[User]:
        users = User.objects.all()
        if q := self.request.query_params.get("q", "").strip():
            users = users.filter(
                Q(email__icontains=q)
                | Q(display_name__icontains=q)
                | Q(wallets__address__iexact=q)
                | Q(identities__subject=q)
            ).distinct()
        return users.order_by("-date_joined")


class AdminUserDetailApi(StaffApi):
    staff_permissions = {"GET": "accounts.view_user", "PATCH": "accounts.disable_user"}

    class UpdateSerializer(serializers.Serializer):
        trading_enabled = serializers.BooleanField(required=False)
        is_active = serializers.BooleanField(
            required=False, help_text="False disables sign-in and ends sessions."
        )
        is_staff = serializers.BooleanField(required=False)

    def _user(self, user_id: str) -> User:
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            raise errors.UserNotFound()
        return user

    @extend_schema(responses={200: ProfileSerializer}, operation_id="admin_users_get")
    def get(self, request: Request, user_id: str) -> Response:
        user = self._user(user_id)
        return Response({**ProfileSerializer(user).data, **StaffUserSerializer(user).data})

    @extend_schema(
        request=UpdateSerializer, responses={200: ProfileSerializer}, operation_id="admin_users_update"
    )
    def patch(self, request: Request, user_id: str) -> Response:
        user = self._user(user_id)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = data.validated_data
        if user.pk == request.user.pk and (
            changes.get("is_active") is False or changes.get("is_staff") is False
        ):
            raise errors.CannotLockOutSelf()
        operator = cast(User, request.user)
        if "is_staff" in changes and not operator.has_perm("accounts.change_user"):
            # Making someone an operator is granting access: beyond disabling, for superusers.
            raise PermissionDenied()
        with transaction.atomic():
            if "trading_enabled" in changes:
                user_trading_set(user=user, enabled=changes["trading_enabled"], actor=operator)
            if "is_active" in changes:
                user_sign_in_set(user=user, enabled=changes["is_active"], actor=operator)
            if "is_staff" in changes:
                user_staff_set(user=user, staff=changes["is_staff"], actor=operator)
        user.refresh_from_db()
        return Response({**ProfileSerializer(user).data, **StaffUserSerializer(user).data})
