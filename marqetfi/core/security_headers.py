"""The security headers every response carries, Django's and those answered in front of it.

One header set, derived from Django's own settings (``SECURE_CONTENT_TYPE_NOSNIFF``,
``SECURE_REFERRER_POLICY``, ``SECURE_CROSS_ORIGIN_OPENER_POLICY``, ``X_FRAME_OPTIONS``,
``SECURE_HSTS_*``): Django's ``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` read the
same settings, ``SecurityHeadersMiddleware`` below adds what they do not write
(``Content-Security-Policy: frame-ancestors``) and fills in anything a response escaped them
with, and the answers written at the ASGI level (the cached price route, the 503
``server_busy`` of the admission gate) put ``asgi_security_headers`` in their own.

``Strict-Transport-Security`` goes only on a request that arrived over https: the ASGI
scheme, or ``X-Forwarded-Proto`` from the TLS proxy when ``SECURE_PROXY_SSL_HEADER`` is set
(``BEHIND_TLS_PROXY``), exactly as ``HttpRequest.is_secure`` decides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

_SETTINGS = frozenset(
    {
        "DEBUG",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_REFERRER_POLICY",
        "SECURE_CROSS_ORIGIN_OPENER_POLICY",
        "X_FRAME_OPTIONS",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
    }
)


@functools.cache
def security_headers(*, secure: bool) -> tuple[tuple[str, str], ...]:
    """The headers for a response to a request that came over https (``secure``) or not."""
    headers: list[tuple[str, str]] = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if policy := settings.SECURE_REFERRER_POLICY:
        value = policy if isinstance(policy, str) else ",".join(policy)
        headers.append(("Referrer-Policy", ",".join(part.strip() for part in value.split(","))))
    if opener := settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", opener))
    frame_options = str(settings.X_FRAME_OPTIONS or "").upper()
    if frame_options:
        headers.append(("X-Frame-Options", frame_options))
        # The modern form of the same rule, for browsers that ignore X-Frame-Options.
        ancestors = "'self'" if frame_options == "SAMEORIGIN" else "'none'"
        headers.append(("Content-Security-Policy", f"frame-ancestors {ancestors}"))
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    return tuple(headers)


@functools.cache
def asgi_security_headers(*, secure: bool) -> tuple[tuple[bytes, bytes], ...]:
    """``security_headers`` as an ASGI response's header list (lower-case names, bytes)."""
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in security_headers(secure=secure)
    )


def asgi_request_is_secure(scope: Mapping[str, Any], headers: Mapping[bytes, bytes]) -> bool:
    """``HttpRequest.is_secure`` for a raw ASGI request: the proxy's header when configured
    and present, else the connection's own scheme."""
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header:
        name, secure_value = proxy_header
        meta_name = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        forwarded = headers.get(meta_name)
        if forwarded is not None:
            return forwarded.decode("latin-1").split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") == "https"


@receiver(setting_changed)
def _security_headers_forget(*, setting: str, **kwargs: object) -> None:
    if setting in _SETTINGS:
        security_headers.cache_clear()
        asgi_security_headers.cache_clear()


class SecurityHeadersMiddleware:
    """Puts ``security_headers`` on every Django response that does not already carry them.

    Outermost but for the metrics, so it also covers answers written by the middleware
    below it (errors, maintenance, the https redirect). A view exempted from framing
    (``xframe_options_exempt``) keeps that exemption.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        framing_exempt = getattr(response, "xframe_options_exempt", False)
        for name, value in security_headers(secure=request.is_secure()):
            if framing_exempt and name in ("X-Frame-Options", "Content-Security-Policy"):
                continue
            response.headers.setdefault(name, value)
        return response
