"""Staff-only API under /api/v1/admin/: providers and their configs, routing."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from marqetfi.core.apis import StaffApi
from marqetfi.core.schema import ErrorSerializer
from providers import registry
from providers.errors import UnknownProvider
from providers.health import provider_probe, provider_stats
from providers.models import Provider, ProviderConfig, RoutingRule
from providers.services import configs as config_services
from providers.services import routing as routing_services


class ProviderSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    enabled = serializers.BooleanField()
    active_version = serializers.IntegerField(allow_null=True)
    missing_options = serializers.ListField(child=serializers.CharField())
    health = serializers.DictField()


class ProviderConfigSerializer(serializers.Serializer):
    provider = serializers.CharField()
    version = serializers.IntegerField()
    is_active = serializers.BooleanField()
    settings = serializers.DictField()
    secrets = serializers.DictField(child=serializers.CharField(), help_text="Names only; values are masked.")
    comment = serializers.CharField()
    created_by = serializers.EmailField(allow_null=True)
    created_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)


class ConfigDiffSerializer(serializers.Serializer):
    provider = serializers.CharField()
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    settings = serializers.DictField()
    secrets = serializers.DictField(child=serializers.ChoiceField(choices=["added", "removed", "changed"]))


class RouteDecisionSerializer(serializers.Serializer):
    venues = serializers.ListField(child=serializers.CharField())
    rule = serializers.CharField()
    skipped = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))


def _page_of(serializer: type[serializers.Serializer], name: str) -> serializers.Serializer:
    return inline_serializer(
        name, {"results": serializer(many=True), "next": serializers.URLField(allow_null=True)}
    )


MAX_VERSION = 2**31 - 1  # the version column's bound on every database


def _provider_summary(name: str) -> dict[str, Any]:
    provider = Provider.objects.filter(name=name).first()
    active = (
        ProviderConfig.objects.filter(provider__name=name, is_active=True)
        .values_list("version", flat=True)
        .first()
    )
    return {
        "name": name,
        "kind": registry.provider_kind(name),
        "enabled": provider.enabled if provider else True,
        "active_version": active,
        "missing_options": registry.missing_options(name),
        "health": provider_stats(name),
    }


class ProviderListApi(StaffApi):
    staff_permissions = {"GET": "providers.view_provider"}

    @extend_schema(
        responses={200: _page_of(ProviderSummarySerializer, "ProviderPage")},
        operation_id="admin_providers_list",
    )
    def get(self, request: Request) -> Response:
        return Response(
            {"results": [_provider_summary(name) for name in registry.provider_names()], "next": None}
        )


class ProviderDetailApi(StaffApi):
    staff_permissions = {"GET": "providers.view_provider", "PATCH": "providers.manage_provider"}

    class UpdateSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()

    @extend_schema(responses={200: ProviderSummarySerializer}, operation_id="admin_providers_get")
    def get(self, request: Request, name: str) -> Response:
        config_services.provider_ensure(name)
        return Response(_provider_summary(name))

    @extend_schema(
        request=UpdateSerializer,
        responses={200: ProviderSummarySerializer},
        operation_id="admin_providers_update",
    )
    def patch(self, request: Request, name: str) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        config_services.provider_set_enabled(
            name=name, enabled=data.validated_data["enabled"], actor=request.user
        )
        return Response(_provider_summary(name))


class ProviderConfigListApi(StaffApi):
    staff_permissions = {"GET": "providers.view_providerconfig", "POST": "providers.change_config"}

    class InputSerializer(serializers.Serializer):
        settings = serializers.DictField(required=False, default=dict)
        secrets = serializers.DictField(
            required=False, default=dict, write_only=True, help_text="Write-only; omitted secrets are kept."
        )
        comment = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
        activate = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        responses={200: _page_of(ProviderConfigSerializer, "ProviderConfigPage")},
        operation_id="admin_provider_configs_list",
    )
    def get(self, request: Request, name: str) -> Response:
        config_services.provider_ensure(name)
        versions = ProviderConfig.objects.select_related("provider", "created_by").filter(provider__name=name)
        return Response(
            {"results": [config_services.provider_config_public(c) for c in versions], "next": None}
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: ProviderConfigSerializer},
        operation_id="admin_provider_configs_create",
    )
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        config = config_services.provider_config_create(
            name=name,
            values=data.validated_data["settings"],
            secrets=data.validated_data["secrets"],
            comment=data.validated_data["comment"],
            activate=data.validated_data["activate"],
            actor=request.user,
        )
        return Response(config_services.provider_config_public(config), status=status.HTTP_201_CREATED)


class ProviderConfigActivateApi(StaffApi):
    staff_permissions = {"POST": "providers.change_config"}

    @extend_schema(
        request=None,
        responses={200: ProviderConfigSerializer},
        operation_id="admin_provider_configs_activate",
    )
    def post(self, request: Request, name: str, version: int) -> Response:
        config = config_services.provider_config_activate(name=name, version=version, actor=request.user)
        return Response(config_services.provider_config_public(config))


class ProviderConfigRollbackApi(StaffApi):
    staff_permissions = {"POST": "providers.change_config"}

    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION)
        comment = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    @extend_schema(
        request=InputSerializer,
        responses={201: ProviderConfigSerializer},
        operation_id="admin_provider_configs_rollback",
    )
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        config = config_services.provider_config_rollback(
            name=name, actor=request.user, **data.validated_data
        )
        return Response(config_services.provider_config_public(config), status=status.HTTP_201_CREATED)


class ProviderConfigDiffApi(StaffApi):
    staff_permissions = {"GET": "providers.view_providerconfig"}

    class FilterSerializer(serializers.Serializer):
        from_version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION)
        to_version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: ConfigDiffSerializer},
        operation_id="admin_provider_configs_diff",
    )
    def get(self, request: Request, name: str) -> Response:
        data = self.FilterSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        return Response(config_services.provider_config_diff(name=name, **data.validated_data))


class RoutingRuleSerializer(serializers.ModelSerializer[RoutingRule]):
    class Meta:
        model = RoutingRule
        fields = ("id", "match", "value", "venues", "enabled", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        validators: list[object] = []  # the service checks uniqueness (and a PATCH may send one field)


class RoutingRuleListApi(StaffApi):
    staff_permissions = {"GET": "providers.view_routingrule", "POST": "providers.add_routingrule"}

    @extend_schema(
        responses={200: _page_of(RoutingRuleSerializer, "RoutingRulePage")},
        operation_id="admin_routing_rules_list",
    )
    def get(self, request: Request) -> Response:
        return Response(
            {"results": RoutingRuleSerializer(RoutingRule.objects.all(), many=True).data, "next": None}
        )

    @extend_schema(
        request=RoutingRuleSerializer,
        responses={201: RoutingRuleSerializer},
        operation_id="admin_routing_rules_create",
    )
    def post(self, request: Request) -> Response:
        data = RoutingRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = routing_services.routing_rule_create(actor=request.user, **data.validated_data)
        return Response(RoutingRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RoutingRuleDetailApi(StaffApi):
    staff_permissions = {
        "GET": "providers.view_routingrule",
        "PATCH": "providers.change_routingrule",
        "DELETE": "providers.delete_routingrule",
    }

    @extend_schema(responses={200: RoutingRuleSerializer}, operation_id="admin_routing_rules_get")
    def get(self, request: Request, rule_id: str) -> Response:
        rule = RoutingRule.objects.filter(pk=rule_id).first()
        if rule is None:
            raise routing_services.RoutingRuleNotFound()
        return Response(RoutingRuleSerializer(rule).data)

    @extend_schema(
        request=RoutingRuleSerializer,
        responses={200: RoutingRuleSerializer},
        operation_id="admin_routing_rules_update",
    )
    def patch(self, request: Request, rule_id: str) -> Response:
        data = RoutingRuleSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = routing_services.routing_rule_update(
            rule_id=rule_id, actor=request.user, **data.validated_data
        )
        return Response(RoutingRuleSerializer(rule).data)

    @extend_schema(responses={204: None}, operation_id="admin_routing_rules_delete")
    def delete(self, request: Request, rule_id: str) -> Response:
        routing_services.routing_rule_delete(rule_id=rule_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RouteResolveApi(StaffApi):
    """Where a symbol would go now, and why the others were skipped (for operators)."""

    staff_permissions = {"GET": "providers.view_routingrule"}

    class FilterSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=32)
        category = serializers.ChoiceField(choices=sorted(settings.ROUTING_DEFAULTS))
        purpose = serializers.ChoiceField(choices=["price", "order"], default="price")

    @extend_schema(
        parameters=[FilterSerializer],
        # 503 no_venue_available: every venue the rules name is disabled or its breaker is open.
        responses={200: RouteDecisionSerializer, 503: ErrorSerializer},
        operation_id="admin_routing_resolve",
    )
    def get(self, request: Request) -> Response:
        data = self.FilterSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        decision = routing_services.route(**data.validated_data)
        return Response({"venues": decision.venues, "rule": decision.rule, "skipped": decision.skipped})


class ProviderProbeApi(StaffApi):
    """Run the provider's health check through its circuit breaker now."""

    staff_permissions = {"POST": "providers.manage_provider"}

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "ProbeResult", {"outcome": serializers.CharField(), "health": serializers.DictField()}
            )
        },
        operation_id="admin_providers_probe",
    )
    def post(self, request: Request, name: str) -> Response:
        if name not in settings.PROVIDERS:  # 404 as on the other provider endpoints, not a 500
            raise UnknownProvider(details={"provider": name, "known": sorted(settings.PROVIDERS)})
        registry.provider_kind(name)
        outcome = provider_probe(name)
        return Response({"outcome": outcome, "health": provider_stats(name)})
