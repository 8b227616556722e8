from django.urls import path

from webhooks import apis

urlpatterns = [
    path("webhooks/endpoints", apis.EndpointListCreateApi.as_view(), name="webhook-endpoints"),
    path("webhooks/endpoints/<uuid:endpoint_id>", apis.EndpointDetailApi.as_view(), name="webhook-endpoint"),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/rotate-secret",
        apis.EndpointSecretRotateApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/test",
        apis.EndpointTestApi.as_view(),
        name="webhook-endpoint-test",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/recover",
        apis.EndpointRecoverApi.as_view(),
        name="webhook-endpoint-recover",
    ),
    path("webhooks/deliveries", apis.DeliveryListApi.as_view(), name="webhook-deliveries"),
    path("webhooks/deliveries/<uuid:delivery_id>", apis.DeliveryDetailApi.as_view(), name="webhook-delivery"),
    path(
        "webhooks/deliveries/<uuid:delivery_id>/redeliver",
        apis.DeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
    path("webhooks/recoveries/<uuid:recovery_id>", apis.RecoveryDetailApi.as_view(), name="webhook-recovery"),
]
