"""The AsyncAPI document of ``/ws``, beside the OpenAPI schema (``/api/schema/``)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.renderers import OpenApiYamlRenderer, OpenApiYamlRenderer2
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from streams.apidocs import asyncapi_document


class AsyncApiView(APIView):
    """``GET /api/asyncapi.yaml`` (or ``.json``): public, like the OpenAPI schema, and rate
    limited like it (a DRF view for its throttles; errors in the API's shape, JSON first)."""

    format = "yaml"
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, OpenApiYamlRenderer, OpenApiYamlRenderer2]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        document = asyncapi_document(host=request.get_host(), secure=request.is_secure())
        if self.format == "json":
            return HttpResponse(json.dumps(document, indent=2), content_type="application/json")
        return HttpResponse(
            OpenApiYamlRenderer().render(document), content_type="application/yaml; charset=utf-8"
        )
