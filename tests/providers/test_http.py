"""The shared provider HTTP layer against a local fake server."""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.errors import ProviderError
from providers.http import ProviderHttpClient, user_agent

APP_ID = "clp8example0app0id0000000"
APP_SECRET = "privy-app-secret-5k2Jd9QwXr7TzL0pVb3N"
API_TOKEN = "dyn_Xq3oN8vR2mT5kL9wB4cZ7yH1jD6fG0sA"

MakeClient = Callable[..., ProviderHttpClient]


@pytest.fixture
def make_client(httpserver: HTTPServer) -> Iterator[MakeClient]:
    clients: list[ProviderHttpClient] = []

    def make(base_url: str | None = None, **options: Any) -> ProviderHttpClient:
        options.setdefault("backoff_seconds", 0.001)
        options.setdefault("timeout", 2.0)
        client = ProviderHttpClient("acme", base_url or httpserver.url_for("/"), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[HTTPServer]:
    """Threaded, so that a handler still sleeping after its client gave up blocks no one."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_get_retries_503_then_returns_the_json_body(httpserver: HTTPServer, make_client: MakeClient) -> None:
    for _ in range(2):
        httpserver.expect_oneshot_request("/v1/things/7").respond_with_json({"error": "busy"}, status=503)
    httpserver.expect_request("/v1/things/7").respond_with_json({"id": 7})

    assert make_client().request("GET", "/v1/things/7") == {"id": 7}

    assert len(httpserver.log) == 3


def test_attempts_stop_at_max_attempts_with_the_last_error(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_request("/v1/things").respond_with_json({"error": "down for maintenance"}, status=500)

    with pytest.raises(ProviderError) as caught:
        make_client(max_attempts=3).request("GET", "/v1/things")

    assert len(httpserver.log) == 3
    error = caught.value
    assert (error.provider, error.status_code, error.retryable) == ("acme", 500, True)
    assert error.response == {"error": "down for maintenance"}
    assert "down for maintenance" in str(error)


def test_post_is_not_retried_unless_marked_idempotent(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_oneshot_request("/v1/orders", method="POST").respond_with_json({}, status=503)
    httpserver.expect_request("/v1/orders", method="POST").respond_with_json({"id": "o1"})

    with pytest.raises(ProviderError) as caught:
        make_client().request("POST", "/v1/orders", json={"size": "1"})

    assert len(httpserver.log) == 1
    assert caught.value.status_code == 503 and caught.value.retryable


def test_post_marked_idempotent_is_retried(httpserver: HTTPServer, make_client: MakeClient) -> None:
    httpserver.expect_oneshot_request("/v1/orders", method="POST").respond_with_json({}, status=502)
    httpserver.expect_request("/v1/orders", method="POST").respond_with_json({"id": "o1"}, status=201)

    answer = make_client().request(
        "POST", "/v1/orders", json={"size": "1"}, headers={"Idempotency-Key": "k-1"}, idempotent=True
    )

    assert answer == {"id": "o1"}
    assert [request.get_json() for request, _ in httpserver.log] == [{"size": "1"}, {"size": "1"}]
    assert all(request.headers["Idempotency-Key"] == "k-1" for request, _ in httpserver.log)


def test_400_is_not_retried_and_carries_the_vendor_answer(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_request("/v1/things").respond_with_json({"error": "Invalid chain_type"}, status=400)

    with pytest.raises(ProviderError) as caught:
        make_client().request("GET", "/v1/things")

    assert len(httpserver.log) == 1
    error = caught.value
    assert (error.status_code, error.retryable) == (400, False)
    assert error.response == {"error": "Invalid chain_type"}
    assert str(error) == "acme: GET /v1/things answered HTTP 400: Invalid chain_type"


def test_429_waits_for_retry_after_then_succeeds(httpserver: HTTPServer, make_client: MakeClient) -> None:
    httpserver.expect_oneshot_request("/v1/things").respond_with_json(
        {"error": "Too many requests"}, status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_request("/v1/things").respond_with_json({"ok": True})

    started = time.monotonic()
    assert make_client().request("GET", "/v1/things") == {"ok": True}

    assert time.monotonic() - started >= 1.0
    assert len(httpserver.log) == 2


def test_429_with_a_past_http_date_retry_after_retries_at_once(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_oneshot_request("/v1/things").respond_with_json(
        {}, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    )
    httpserver.expect_request("/v1/things").respond_with_json({"ok": True})

    assert make_client().request("GET", "/v1/things") == {"ok": True}
    assert len(httpserver.log) == 2


def test_429_with_a_long_retry_after_gives_up_at_once_as_retryable(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_request("/v1/things").respond_with_json(
        {"error": "Too many requests"}, status=429, headers={"Retry-After": "120"}
    )

    with pytest.raises(ProviderError) as caught:
        make_client(max_retry_after=5.0).request("GET", "/v1/things")

    assert len(httpserver.log) == 1
    assert caught.value.status_code == 429 and caught.value.retryable
    assert caught.value.retry_after == 120
    assert "retry after 120 s" in str(caught.value)


def test_429_without_retry_after_waits_for_the_rate_limit_reset(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_request("/v1/things").respond_with_json(
        {"message": "Rate limit exceeded", "code": 1005},
        status=429,
        headers={"ratelimit-limit": "75", "ratelimit-remaining": "0", "ratelimit-reset": "7200"},
    )

    with pytest.raises(ProviderError) as caught:
        make_client(max_retry_after=5.0).request("GET", "/v1/things")

    assert len(httpserver.log) == 1
    assert caught.value.retryable and caught.value.retry_after == 7200


def test_a_timeout_is_a_retryable_provider_error(slow_server: HTTPServer, make_client: MakeClient) -> None:
    def too_slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("{}", content_type="application/json")

    slow_server.expect_request("/v1/slow").respond_with_handler(too_slow)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        make_client(slow_server.url_for("/"), timeout=0.1, max_attempts=2).request("GET", "/v1/slow")

    assert time.monotonic() - started < 0.5
    error = caught.value
    assert (error.status_code, error.retryable) == (None, True)
    assert "timed out" in str(error)


def test_connection_refused_is_a_retryable_provider_error(make_client: MakeClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ProviderError) as caught:
        make_client(f"http://127.0.0.1:{port}/", max_attempts=2).request("GET", "/v1/things")

    error = caught.value
    assert (error.status_code, error.retryable) == (None, True)
    assert "ConnectError" in str(error)


def test_a_success_body_that_is_not_json_is_a_provider_error(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_request("/v1/things").respond_with_data(
        "<html>maintenance</html>", content_type="text/html"
    )

    with pytest.raises(ProviderError) as caught:
        make_client().request("GET", "/v1/things")

    error = caught.value
    assert (error.status_code, error.retryable) == (200, False)
    assert error.response == "<html>maintenance</html>"


def test_an_empty_body_is_none(httpserver: HTTPServer, make_client: MakeClient) -> None:
    httpserver.expect_request("/v1/things/7", method="DELETE").respond_with_data("", status=204)

    assert make_client().request("DELETE", "/v1/things/7") is None


def test_a_large_error_body_is_truncated(httpserver: HTTPServer, make_client: MakeClient) -> None:
    httpserver.expect_request("/v1/things").respond_with_data("x" * 10_000, status=400)

    with pytest.raises(ProviderError) as caught:
        make_client().request("GET", "/v1/things")

    assert isinstance(caught.value.response, str)
    assert 2048 <= len(caught.value.response) < 2100


def test_requests_carry_user_agent_base_path_and_default_headers(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    httpserver.expect_request("/api/v0/things", query_string="limit=5").respond_with_json([])

    client = make_client(httpserver.url_for("/api/v0"), headers={"x-app": "marqetfi"})
    assert client.request("GET", "/things", params={"limit": 5}) == []

    request, _ = httpserver.log[0]
    assert request.headers["User-Agent"] == user_agent()
    assert user_agent().startswith("MarqetFi/")
    assert request.headers["x-app"] == "marqetfi"


def test_credentials_never_reach_the_logs(
    httpserver: HTTPServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_oneshot_request("/v1/wallets", method="POST").respond_with_json({}, status=503)
    httpserver.expect_request("/v1/wallets", method="POST").respond_with_json({"id": "w1"})
    httpserver.expect_request("/v1/users").respond_with_json({"error": "nope"}, status=401)
    basic = make_client(auth=(APP_ID, APP_SECRET))
    bearer = make_client(headers={"Authorization": f"Bearer {API_TOKEN}"})

    basic.request("POST", "/v1/wallets", json={"secret": APP_SECRET}, idempotent=True)
    with pytest.raises(ProviderError):
        bearer.request("GET", "/v1/users", headers={"privy-authorization-signature": "sig-" + APP_SECRET})

    assert any(record.name == "providers.http" for record in caplog.records)
    encoded = base64.b64encode(f"{APP_ID}:{APP_SECRET}".encode()).decode()
    logged = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    for secret in (APP_SECRET, API_TOKEN, encoded):
        assert secret not in logged


def test_credentials_echoed_by_the_vendor_are_masked_in_the_error(
    httpserver: HTTPServer, make_client: MakeClient
) -> None:
    def echo(request: Request) -> Response:
        message = f"bad credentials: {request.headers['Authorization']}"
        return Response(f'{{"error": "{message}"}}', status=401, content_type="application/json")

    httpserver.expect_request("/v1/users").respond_with_handler(echo)

    with pytest.raises(ProviderError) as caught:
        make_client(headers={"Authorization": f"Bearer {API_TOKEN}"}).request("GET", "/v1/users")

    assert API_TOKEN not in str(caught.value)
    assert API_TOKEN not in repr(caught.value.response)
    assert caught.value.response == {"error": "bad credentials: ***"}
