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

from marqetfi.core.api_tags import path_tag


class BearerJWTScheme(SimpleJWTScheme):
    target_class = "marqetfi.core.authentication.JWTAuthentication"


class AutoSchema(_AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        """``LoginApi.InputSerializer`` becomes ``LoginInput`` rather than a clashing ``Input``."""
        cls = serializer if isinstance(serializer, type) else serializer.__class__
        outer, _, inner = cls.__qualname__.rpartition(".")
        return f"{outer.removesuffix('Api')}{inner}" if outer else inner

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
