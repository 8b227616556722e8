"""Views that fail in every way a real endpoint can, to check the one error shape."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marqetfi.core.errors import ApplicationError


class LeverageLimitExceeded(ApplicationError):
    code = "leverage_limit_exceeded"
    status_code = 422
    default_message = "Leverage is above the pair's maximum."


class EchoApi(APIView):
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=20, decimal_places=6)
        leverage = serializers.IntegerField(min_value=1)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["leverage"] > 50:
            raise LeverageLimitExceeded(
                details={"max_leverage": "50", "requested": str(data.validated_data["leverage"])}
            )
        return Response({"amount": str(data.validated_data["amount"])})


class StaffOnlyApi(APIView):
    permission_classes = [IsAdminUser]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class MissingApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise Http404("no such thing")


class CrashApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise RuntimeError("database password is hunter2; secret=topsecret")


def django_crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("plain Django view failed")


def django_missing(request: HttpRequest) -> HttpResponse:
    raise Http404("plain Django view found nothing")


class ExplodingMiddleware:
    """Fails on ``?explode=1``, to check errors raised outside any view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.GET.get("explode"):
            raise RuntimeError("middleware failed")
        return self.get_response(request)


urlpatterns = [
    path("t/echo", EchoApi.as_view()),
    path("t/staff", StaffOnlyApi.as_view()),
    path("t/missing", MissingApi.as_view()),
    path("t/crash", CrashApi.as_view()),
    path("t/django-crash", django_crash),
    path("api/t/django-crash", django_crash),
    path("api/t/django-missing", django_missing),
    path("", include("marqetfi.urls")),
]

handler400 = "marqetfi.core.api.bad_request"
handler403 = "marqetfi.core.api.permission_denied"
handler404 = "marqetfi.core.api.page_not_found"
handler500 = "marqetfi.core.api.server_error"
