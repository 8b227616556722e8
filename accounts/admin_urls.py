from django.urls import path

from accounts import admin_apis

urlpatterns = [
    path("users", admin_apis.AdminUserListApi.as_view(), name="admin-users"),
    path("users/<uuid:user_id>", admin_apis.AdminUserDetailApi.as_view(), name="admin-user"),
]
