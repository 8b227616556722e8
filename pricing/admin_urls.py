from django.urls import path

from pricing import paper_apis

urlpatterns = [
    path("paper/prices", paper_apis.PaperPriceSetApi.as_view(), name="admin-paper-prices"),
]
