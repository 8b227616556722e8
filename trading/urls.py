from django.urls import path

from trading import apis
from trading.analytics_apis import AnalyticsApi

urlpatterns = [
    path("account", apis.AccountApi.as_view(), name="account"),
    path("orders/preview", apis.OrderPreviewApi.as_view(), name="orders-preview"),
    path("orders", apis.OrderListCreateApi.as_view(), name="orders"),
    path("orders/<uuid:order_id>", apis.OrderDetailApi.as_view(), name="order"),
    path("positions", apis.PositionListApi.as_view(), name="positions"),
    path("positions/<uuid:position_id>", apis.PositionDetailApi.as_view(), name="position"),
    path("positions/<uuid:position_id>/close", apis.PositionCloseApi.as_view(), name="position-close"),
    path("trades", apis.TradeListApi.as_view(), name="trades"),
    path("analytics", AnalyticsApi.as_view(), name="analytics"),
]
