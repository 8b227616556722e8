from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backoffice.views import dashboard_view
from marqetfi.core.apis import EventListApi, HealthApi, MetricsApi
from marqetfi.core.throttling import login_form_throttled
from streams.apis import AsyncApiView

api_v1: list[URLPattern | URLResolver] = [
    path("health", HealthApi.as_view(), name="health"),
    path("events", EventListApi.as_view(), name="events"),
    path("admin/", include("marqetfi.core.app_settings.urls")),
    path("admin/", include("providers.urls")),
    path("admin/", include("pricing.admin_urls")),
    path("admin/", include("accounts.admin_urls")),
    path("admin/", include("backoffice.urls")),
    path("admin/", include("ledger.admin_urls")),
    path("admin/", include("trading.admin_urls")),
    path("admin/", include("deposits.admin_urls")),
    path("", include("accounts.urls")),
    path("", include("pricing.urls")),
    path("", include("trading.urls")),
    path("", include("webhooks.urls")),
    path("", include("deposits.urls")),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/asyncapi.yaml", AsyncApiView.as_view(format="yaml"), name="asyncapi"),
    path("api/asyncapi.json", AsyncApiView.as_view(format="json"), name="asyncapi-json"),
    # Before admin.site.urls, which would answer this path unthrottled.
    path("admin/login/", login_form_throttled(admin.site.login)),
    # admin_view: staff only, others go to the admin's login page.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    # django-prometheus's exposition, for staff and the scraper holding METRICS_TOKEN only.
    path("metrics", MetricsApi.as_view(), name="prometheus-django-metrics"),
]

handler400 = "marqetfi.core.api.bad_request"
handler403 = "marqetfi.core.api.permission_denied"
handler404 = "marqetfi.core.api.page_not_found"
handler500 = "marqetfi.core.api.server_error"
