"""Which webhook URLs are refused, at creation and before each attempt."""

from __future__ import annotations

import pytest
from django.test import override_settings

from webhooks.errors import WebhookUrlRefused
from webhooks.ssrf import url_check

PUBLIC = "93.184.216.34"


def resolving_to(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fe80::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "224.0.0.1",
    ],
)
@override_settings(WEBHOOK_REQUIRE_HTTPS=True, WEBHOOK_ALLOWED_HOSTS=[], WEBHOOK_ALLOWED_NETWORKS=[])
def test_internal_addresses_are_refused_by_name_and_by_literal(address: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        url_check("https://hooks.example.com/in", resolver=resolving_to(address))
    assert refused.value.code == "forbidden_address"
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(WebhookUrlRefused):
        url_check(f"https://{literal}/in")


@override_settings(WEBHOOK_REQUIRE_HTTPS=True, WEBHOOK_ALLOWED_HOSTS=[], WEBHOOK_ALLOWED_NETWORKS=[])
def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(WebhookUrlRefused):
        url_check("https://hooks.example.com/", resolver=resolving_to(PUBLIC, "10.0.0.5"))


@override_settings(WEBHOOK_REQUIRE_HTTPS=True, WEBHOOK_ALLOWED_HOSTS=[], WEBHOOK_ALLOWED_NETWORKS=[])
def test_a_public_address_passes_and_is_the_one_to_connect_to() -> None:
    target = url_check("https://hooks.example.com:8443/in?x=1", resolver=resolving_to(PUBLIC))
    assert (target.host, target.port, target.address, target.scheme) == (
        "hooks.example.com",
        8443,
        PUBLIC,
        "https",
    )


@override_settings(WEBHOOK_REQUIRE_HTTPS=True, WEBHOOK_ALLOWED_HOSTS=[], WEBHOOK_ALLOWED_NETWORKS=[])
def test_https_credentials_and_schemes() -> None:
    cases = {
        "http://hooks.example.com/": "https_required",
        "ftp://hooks.example.com/": "invalid_url",
        "https://user:pw@hooks.example.com/": "invalid_url",
        "https:///nohost": "invalid_url",
        "https://hooks.example.com:99999/": "invalid_url",
    }
    for url, code in cases.items():
        with pytest.raises(WebhookUrlRefused) as refused:
            url_check(url, resolver=resolving_to(PUBLIC))
        assert refused.value.code == code, url


@override_settings(WEBHOOK_REQUIRE_HTTPS=False, WEBHOOK_ALLOWED_HOSTS=[], WEBHOOK_ALLOWED_NETWORKS=[])
def test_a_host_that_does_not_resolve_is_refused() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(WebhookUrlRefused) as refused:
        url_check("http://nowhere.invalid/", resolver=failing)
    assert refused.value.code == "unresolvable_host"


@override_settings(
    WEBHOOK_REQUIRE_HTTPS=False,
    WEBHOOK_ALLOWED_HOSTS=["receiver.internal"],
    WEBHOOK_ALLOWED_NETWORKS=["127.0.0.0/8"],
)
def test_the_allow_lists_permit_a_network_or_a_host_name() -> None:
    assert url_check("http://127.0.0.1:9000/").address == "127.0.0.1"
    assert url_check("http://receiver.internal/", resolver=resolving_to("10.9.9.9")).address == "10.9.9.9"
    with pytest.raises(WebhookUrlRefused):
        url_check("http://other.internal/", resolver=resolving_to("10.9.9.9"))
