from django.urls import path

from backoffice import apis

urlpatterns = [
    path("analytics", apis.AdminAnalyticsApi.as_view(), name="admin-analytics"),
    path("audit", apis.AdminAuditListApi.as_view(), name="admin-audit"),
]
