from django.urls import path

from providers.venues.paper import apis

urlpatterns = [
    path("prices", apis.PaperPriceSetApi.as_view(), name="admin-paper-prices"),
]
