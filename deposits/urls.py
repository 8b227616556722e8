from django.urls import path

from deposits import apis

urlpatterns = [
    path("deposits", apis.DepositListCreateApi.as_view(), name="deposits"),
    # Before deposits/<uuid>: "address" is a path of its own, not an id.
    path("deposits/address", apis.DepositAddressApi.as_view(), name="deposit-address"),
    path("deposits/<uuid:deposit_id>", apis.DepositDetailApi.as_view(), name="deposit"),
]
