"""The AsyncAPI document of ``/ws``, beside the OpenAPI schema (``/api/schema/``)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.views import View
from drf_spectacular.renderers import OpenApiYamlRenderer

from streams.apidocs import asyncapi_document


class AsyncApiView(View):
    """``GET /api/asyncapi.yaml`` (or ``.json``): public, like the OpenAPI schema."""

    format = "yaml"

    def get(self, request: HttpRequest) -> HttpResponse:
        document = asyncapi_document(host=request.get_host(), secure=request.is_secure())
        if self.format == "json":
            return HttpResponse(json.dumps(document, indent=2), content_type="application/json")
        return HttpResponse(
            OpenApiYamlRenderer().render(document), content_type="application/yaml; charset=utf-8"
        )
