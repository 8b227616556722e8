from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication

from marqetfi.core.logging import bind_user


class JWTAuthentication(_JWTAuthentication):
    """simplejwt's bearer authentication that also tags the request's log lines with the user."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is not None:
            bind_user(result[0].pk)
        return result
