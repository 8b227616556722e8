from django.urls import path

from providers import apis

urlpatterns = [
    path("providers", apis.ProviderListApi.as_view(), name="admin-providers"),
    path("providers/<slug:name>", apis.ProviderDetailApi.as_view(), name="admin-provider"),
    path(
        "providers/<slug:name>/configs", apis.ProviderConfigListApi.as_view(), name="admin-provider-configs"
    ),
    path(
        "providers/<slug:name>/configs/diff",
        apis.ProviderConfigDiffApi.as_view(),
        name="admin-provider-configs-diff",
    ),
    path(
        "providers/<slug:name>/configs/<int:version>/activate",
        apis.ProviderConfigActivateApi.as_view(),
        name="admin-provider-config-activate",
    ),
    path(
        "providers/<slug:name>/rollback",
        apis.ProviderConfigRollbackApi.as_view(),
        name="admin-provider-rollback",
    ),
    path("providers/<slug:name>/probe", apis.ProviderProbeApi.as_view(), name="admin-provider-probe"),
    path("routing-rules", apis.RoutingRuleListApi.as_view(), name="admin-routing-rules"),
    path("routing-rules/<uuid:rule_id>", apis.RoutingRuleDetailApi.as_view(), name="admin-routing-rule"),
    path("routing/resolve", apis.RouteResolveApi.as_view(), name="admin-routing-resolve"),
]
