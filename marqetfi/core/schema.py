"""OpenAPI generation details: our bearer authentication, unique names for the
``InputSerializer`` / ``OutputSerializer`` classes nested in views (the house style), one tag
per operation chosen by path, and the error envelope every status >= 400 answers with."""

from __future__ import annotations

from typing import Any, Final

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.drainage import warn
from drf_spectacular.openapi import AutoSchema as _AutoSchema
from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated

from marqetfi.core.api_tags import path_tag


class BearerJWTScheme(SimpleJWTScheme):
    target_class = "marqetfi.core.authentication.JWTAuthentication"


# DRF's permission classes overload ``|`` (to combine permissions), so a tuple, not a union.
ANONYMOUS_OR_SIGNED_IN: Final = (AllowAny, IsAuthenticated)


class AutoSchema(_AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        """``LoginApi.InputSerializer`` becomes ``LoginInput`` rather than a clashing ``Input``."""
        cls = serializer if isinstance(serializer, type) else serializer.__class__
        outer, _, inner = cls.__qualname__.rpartition(".")
        return f"{outer.removesuffix('Api')}{inner}" if outer else inner

    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        """A field declared ``required=False`` is optional in the document too. drf-spectacular
        lists every read-only field as required, which is wrong for the output fields an answer
        carries only sometimes (a rejected order preview has no ``entry_price``)."""
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        optional = {
            name for name, field in serializer.fields.items() if field._kwargs.get("required") is False
        }
        if "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in optional]
            if not schema["required"]:
                del schema["required"]
        return schema

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        """The view's own responses, then the errors it can answer, each in the error shape
        (API.md: every status >= 400), so a client and a contract test know what to expect."""
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status_code in self._error_statuses():
            responses.setdefault(status_code, self._get_response_for_code(ErrorSerializer, status_code))
        return responses

    def _error_statuses(self) -> list[str]:
        """400 when the operation reads a body or a query, 401 when it needs a signed-in
        caller, 403 when it needs more (staff), 404 when its path names a resource, 429 when
        it is rate limited, and ``default`` for the rest (405, 409, 413, 415, 503...)."""
        permissions = self.view.get_permissions()
        query_parameters = [p for p in self._get_parameters() if p.get("in") == "query"]
        statuses = []
        if self.method in ("POST", "PUT", "PATCH") or query_parameters:
            statuses.append("400")
        if not all(isinstance(p, AllowAny) for p in permissions):
            statuses.append("401")
        if any(not isinstance(p, ANONYMOUS_OR_SIGNED_IN) for p in permissions):
            statuses.append("403")
        if "{" in self.path:
            statuses.append("404")
        if self.view.get_throttles():
            statuses.append("429")
        statuses.append("default")
        return statuses

    def get_tags(self) -> list[str]:
        """One tag per operation from its path (PATH_TAGS), so a new view needs no decorator.
        A path no prefix covers is a generation warning (``spectacular --fail-on-warn`` fails)."""
        tag = path_tag(self.path)
        if tag is None:
            warn(f"no tag maps the path {self.path!r}: add its prefix to marqetfi.core.schema.PATH_TAGS")
            return super().get_tags()
        return [tag]


ErrorSerializer = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(
                    help_text="Stable snake_case code, e.g. leverage_limit_exceeded."
                ),
                "message": serializers.CharField(help_text="Human-readable; may change."),
                "details": serializers.DictField(
                    help_text="Context of the error; for validation errors, the messages per field."
                ),
            },
        )
    },
)

ERROR_EXAMPLES: Final = [
    OpenApiExample(
        "Validation error",
        value={
            "error": {
                "code": "validation_error",
                "message": "Invalid input.",
                "details": {"leverage": ["Ensure this value is greater than 0."]},
            }
        },
        response_only=True,
        status_codes=["400"],
    ),
    OpenApiExample(
        "Domain error",
        value={
            "error": {
                "code": "leverage_limit_exceeded",
                "message": "The leverage asked for is above the limit for this pair or account.",
                "details": {"leverage": "100", "max_leverage": "50"},
            }
        },
        response_only=True,
        status_codes=["400"],
    ),
]
