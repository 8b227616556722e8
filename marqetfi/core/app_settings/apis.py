"""Staff-only API for runtime settings, under /api/v1/admin/settings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from marqetfi.core.apis import StaffApi
from marqetfi.core.app_settings.registry import APP_SETTINGS, app_setting_definition
from marqetfi.core.app_settings.services import app_setting_reset, app_setting_set
from marqetfi.core.models import AppSetting


class AppSettingSerializer(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField()
    value = serializers.JSONField(help_text="The value in effect.")
    default = serializers.JSONField()
    overridden = serializers.BooleanField()
    updated_by = serializers.EmailField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


def _setting_public(key: str) -> dict[str, Any]:
    definition = app_setting_definition(key)
    row = AppSetting.objects.select_related("updated_by").filter(key=key).first()
    return {
        "key": key,
        "description": definition.description,
        "value": definition.effective_json(row.value if row else None),
        "default": definition.default(),
        "overridden": row is not None,
        "updated_by": getattr(row.updated_by, "email", None) if row else None,
        "updated_at": row.updated_at if row else None,
    }


class AppSettingListApi(StaffApi):
    staff_permissions = {"GET": "core.view_appsetting"}

    @extend_schema(
        responses={
            200: inline_serializer(
                "AppSettingPage",
                {"results": AppSettingSerializer(many=True), "next": serializers.URLField(allow_null=True)},
            )
        },
        operation_id="admin_settings_list",
    )
    def get(self, request: Request) -> Response:
        return Response({"results": [_setting_public(key) for key in APP_SETTINGS], "next": None})


class AppSettingDetailApi(StaffApi):
    """Change a runtime setting; every process applies it within about a second, no restart."""

    staff_permissions = {
        "GET": "core.view_appsetting",
        "PUT": "core.change_appsetting",
        "DELETE": "core.delete_appsetting",
    }

    class InputSerializer(serializers.Serializer):
        value = serializers.JSONField(help_text="Objects may carry only the entries to change.")

    @extend_schema(responses={200: AppSettingSerializer}, operation_id="admin_settings_get")
    def get(self, request: Request, key: str) -> Response:
        return Response(_setting_public(key))

    @extend_schema(
        request=InputSerializer, responses={200: AppSettingSerializer}, operation_id="admin_settings_set"
    )
    def put(self, request: Request, key: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app_setting_set(key=key, value=data.validated_data["value"], actor=request.user)
        return Response(_setting_public(key))

    @extend_schema(responses={200: AppSettingSerializer}, operation_id="admin_settings_reset")
    def delete(self, request: Request, key: str) -> Response:
        app_setting_reset(key=key, actor=request.user)
        return Response(_setting_public(key))
