from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings


class MobileFriendlyOriginValidator(OriginValidator):
    """Browsers must come from an allowed origin; native apps, which send no Origin, pass.

    Channels' stock validator refuses a missing Origin unless every origin is allowed, which
    would shut out the mobile clients this API is built for. Browser pages are still held to
    ``CORS_ALLOWED_ORIGINS`` and ``ALLOWED_HOSTS``.
    """

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def websocket_origin_validator(application: Any) -> MobileFriendlyOriginValidator:
    allowed = list(settings.ALLOWED_HOSTS) + list(settings.CORS_ALLOWED_ORIGINS)
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return MobileFriendlyOriginValidator(application, allowed)
