"""Origins and authorities compared as RFC 3986 has them (scheme, host, port), never as text
prefixes: ``https://app.example.com.evil.example`` is not ``https://app.example.com``.

Pure functions with no Django import, so settings modules can validate their values too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})  # noqa: S104 (compared, not bound)

Origin = tuple[str, str, int | None]


def origin_of(uri: str) -> Origin | None:
    """``(scheme, host, port)`` of an absolute URI, the default port filled in; None when it has
    none, or carries user info (``https://ours@evil.example``)."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or "@" in parts.netloc:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def authority_of(domain: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of an EIP-4361 ``domain`` (an RFC 3986 authority without user info)."""
    return _split_authority(domain.strip())


def _split_authority(authority: str) -> tuple[str, int | None] | None:
    if not authority or "@" in authority or "/" in authority:
        return None
    try:
        parts = urlsplit(f"//{authority}")
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname.lower(), port) if parts.hostname else None


def is_bare_origin(uri: str) -> bool:
    """An origin and nothing else: no path (but ``/``), query or fragment."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        return False
    return origin_of(uri) is not None and parts.path in ("", "/") and not parts.query and not parts.fragment


def is_local_host(host: str) -> bool:
    host = host.lower().strip("[]")
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def siwe_production_problems(*, domains: list[str], uri_origins: list[str]) -> list[str]:
    """What makes Sign-In with Ethereum settings unfit for production: local or malformed
    domains, and URI origins that are not bare ``https`` origins of a public host."""
    problems: list[str] = []
    for domain in domains:
        authority = authority_of(domain)
        if authority is None or is_local_host(authority[0]):
            problems.append(f"SIWE_DOMAINS: {domain!r} is not a public host")
    for uri in uri_origins:
        origin = origin_of(uri)
        if origin is None or not is_bare_origin(uri):
            problems.append(f"SIWE_URI_ORIGINS: {uri!r} is not an origin (scheme://host[:port])")
        elif origin[0] != "https":
            problems.append(f"SIWE_URI_ORIGINS: {uri!r} is not https")
        elif is_local_host(origin[1]):
            problems.append(f"SIWE_URI_ORIGINS: {uri!r} is not a public host")
    return problems
