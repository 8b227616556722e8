"""Where a webhook may be sent: never to this platform's own network.

A URL is refused when it is not https (outside DEBUG, ``WEBHOOK_REQUIRE_HTTPS``), carries
credentials, or when any address its host resolves to is loopback, private, link-local
(cloud metadata lives at 169.254.169.254 and fd00:ec2::254), shared (100.64/10), multicast,
reserved or unspecified, unless ``WEBHOOK_ALLOWED_NETWORKS`` (CIDRs) or
``WEBHOOK_ALLOWED_HOSTS`` (host names) permit it. The check runs when an endpoint is
saved and again before every attempt, after a fresh DNS resolution; the attempt then
connects to the address that passed (see ``services.delivery``), so a DNS answer that
changes between check and connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from webhooks.errors import WebhookUrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class CheckedTarget:
    """A URL that passed, with the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def configured_resolver() -> Resolver:
    """The resolver named by ``WEBHOOK_DNS_RESOLVER`` (the system's by default)."""
    resolver: Resolver = import_string(settings.WEBHOOK_DNS_RESOLVER)
    return resolver


def _address_forbidden(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return bool(
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE)
    )


def _allowed(host: str, address: IPAddress) -> bool:
    if host.lower() in {name.lower() for name in settings.WEBHOOK_ALLOWED_HOSTS}:
        return True
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.WEBHOOK_ALLOWED_NETWORKS
    )


def url_check(url: str, *, resolver: Resolver | None = None) -> CheckedTarget:
    """Resolve ``url``'s host now and return the address to use; raise ``WebhookUrlRefused`` otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlRefused("invalid_url", "Webhook URLs are http(s).")
    if scheme != "https" and settings.WEBHOOK_REQUIRE_HTTPS:
        raise WebhookUrlRefused("https_required", "Webhook URLs must use https.")
    if parts.username or parts.password:
        raise WebhookUrlRefused("invalid_url", "Webhook URLs may not carry credentials.")
    host = parts.hostname
    if not host:
        raise WebhookUrlRefused("invalid_url", "The URL has no host.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookUrlRefused("invalid_url", "The URL's port is not valid.") from exc
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a) for a in (resolver or configured_resolver())(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise WebhookUrlRefused("unresolvable_host", f"The host {host!r} does not resolve.") from exc
    if not addresses:
        raise WebhookUrlRefused("unresolvable_host", f"The host {host!r} does not resolve.")
    for address in addresses:
        if _address_forbidden(address) and not _allowed(host, address):
            raise WebhookUrlRefused(
                "forbidden_address",
                "Webhook URLs may not point at loopback, private, link-local or metadata addresses.",
            )
    return CheckedTarget(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))
