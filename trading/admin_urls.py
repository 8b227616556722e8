from django.urls import path

from trading import admin_apis

urlpatterns = [
    path("risk-limits", admin_apis.RiskLimitListApi.as_view(), name="admin-risk-limits"),
    path(
        "risk-limits/<uuid:risk_limit_id>", admin_apis.RiskLimitDetailApi.as_view(), name="admin-risk-limit"
    ),
    path("positions", admin_apis.AdminPositionListApi.as_view(), name="admin-positions"),
]
