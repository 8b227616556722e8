from django.urls import path

from ledger import admin_apis

urlpatterns = [
    path(
        "users/<uuid:user_id>/adjustments",
        admin_apis.AdminUserAdjustmentCreateApi.as_view(),
        name="admin-user-adjustments",
    ),
]
