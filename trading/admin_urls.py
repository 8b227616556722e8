from django.urls import path

from trading import admin_apis

urlpatterns = [
    path("risk-limits", admin_apis.RiskLimitListApi.as_view(), name="admin-risk-limits"),
    path(
        "risk-limits/<uuid:risk_limit_id>", admin_apis.RiskLimitDetailApi.as_view(), name="admin-risk-limit"
    ),
    path("positions", admin_apis.AdminPositionListApi.as_view(), name="admin-positions"),
    path(
        "reconciliation/drifts",
        admin_apis.ReconciliationDriftListApi.as_view(),
        name="admin-reconciliation-drifts",
    ),
    path(
        "reconciliation/drifts/<uuid:drift_id>/resolve",
        admin_apis.ReconciliationDriftResolveApi.as_view(),
        name="admin-reconciliation-drift-resolve",
    ),
    path("reconciliation/run", admin_apis.ReconciliationRunApi.as_view(), name="admin-reconciliation-run"),
]
