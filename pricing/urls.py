from django.urls import path

from pricing import apis

urlpatterns = [
    path("pairs", apis.PairListApi.as_view(), name="pairs"),
    path("prices", apis.PriceListApi.as_view(), name="prices"),
    path("prices/<str:symbol>", apis.PriceDetailApi.as_view(), name="price"),
]
