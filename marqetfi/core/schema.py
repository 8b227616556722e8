"""OpenAPI generation details: our bearer authentication, and unique names for the
``InputSerializer`` / ``OutputSerializer`` classes nested in views (the house style)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema as _AutoSchema


class BearerJWTScheme(SimpleJWTScheme):
    target_class = "marqetfi.core.authentication.JWTAuthentication"


class AutoSchema(_AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        """``LoginApi.InputSerializer`` becomes ``LoginInput`` rather than a clashing ``Input``."""
        cls = serializer if isinstance(serializer, type) else serializer.__class__
        outer, _, inner = cls.__qualname__.rpartition(".")
        return f"{outer.removesuffix('Api')}{inner}" if outer else inner
