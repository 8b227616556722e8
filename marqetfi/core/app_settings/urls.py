from django.urls import path

from marqetfi.core.app_settings import apis

urlpatterns = [
    path("settings", apis.AppSettingListApi.as_view(), name="admin-settings"),
    path("settings/<slug:key>", apis.AppSettingDetailApi.as_view(), name="admin-setting"),
]
