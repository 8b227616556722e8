from django.urls import path

from deposits import admin_apis

urlpatterns = [
    path("deposits", admin_apis.AdminDepositListApi.as_view(), name="admin-deposits"),
    path("deposits/<uuid:deposit_id>", admin_apis.AdminDepositDetailApi.as_view(), name="admin-deposit"),
    path(
        "deposits/<uuid:deposit_id>/retry",
        admin_apis.AdminDepositRetryApi.as_view(),
        name="admin-deposit-retry",
    ),
    path(
        "deposits/<uuid:deposit_id>/resolve",
        admin_apis.AdminDepositResolveApi.as_view(),
        name="admin-deposit-resolve",
    ),
]
