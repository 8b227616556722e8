"""The web process's wall clock jumps (an NTP step, a VM resumed) while clients keep their time.

A real daphne runs under Debian's libfaketime (``tests/e2e/install-faketime.sh``, run by
``make test``), reading its clock offset from a file on every call, so the test moves that
process's wall clock while it serves; its monotonic clock is left alone, as a clock step
leaves it. The test process, the database and Redis keep the true time. Everything is
observed from outside: HTTP answers, WebSocket close codes, the account rows.

What a user sees: an access token past its expiry by the server's clock is refused with 401
``token_not_valid`` (the stream closes with ``token_expired``), and the refresh token mints a
working one. Tokens minted while the clock was ahead are refused once it is set right, beyond
``JWT_LEEWAY_SECONDS``, and signing in again works at once. A Sign-In with Ethereum message
is refused as expired, or as not yet valid when the server's clock is behind, and goes through
once the clock is right again, its nonce still unused. Nothing is answered 500, nothing is
created by a refused sign-in, and no process is restarted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from websockets.exceptions import ConnectionClosed

from accounts.models import User
from streams.protocol import CloseCode
from tests.accounts.conftest import EthWallet
from tests.e2e.conftest import DaphneServer, start_daphne
from tests.e2e.test_streams import Socket

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
PASSWORD = "Clock-jump-passphrase-1"


class ServerClock:
    """The offset of the web process's wall clock, in seconds, read by libfaketime on every call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(0)

    def set(self, offset_seconds: int) -> None:
        # Written whole, then renamed: libfaketime never reads a half-written offset.
        partial = self.path.with_suffix(".partial")
        partial.write_text(f"{offset_seconds:+d}\n")
        partial.replace(self.path)


@pytest.fixture(scope="module")
def clock_and_server_of_module(
    e2e_env: dict[str, str], e2e_log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerClock, DaphneServer]]:
    if not LIBFAKETIME.exists():
        pytest.fail(f"{LIBFAKETIME} is missing: run tests/e2e/install-faketime.sh (make test does)")
    clock = ServerClock(tmp_path_factory.mktemp("clock") / "faketime-offset")
    env = {
        **e2e_env,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(clock.path),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    server = start_daphne(env, e2e_log_dir)
    try:
        yield clock, server
    finally:
        server.process.stop()


@pytest.fixture
def clock_and_server(
    clock_and_server_of_module: tuple[ServerClock, DaphneServer],
) -> Iterator[tuple[ServerClock, DaphneServer]]:
    """The module's server, its clock right at the start and at the end of each test."""
    clock, server = clock_and_server_of_module
    clock.set(0)
    yield clock, server
    clock.set(0)


def _error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    code: str = response.json()["error"]["code"]
    return code


def _sign_up(server: DaphneServer) -> dict[str, Any]:
    email = f"clock-{uuid.uuid4().hex[:8]}@clock.test"
    with server.client() as anonymous:
        response = anonymous.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _account(server: DaphneServer, access: str) -> httpx.Response:
    with server.client(headers={"Authorization": f"Bearer {access}"}) as client:
        return client.get("/api/v1/account")


def test_a_forward_jump_expires_access_tokens_and_the_refresh_token_recovers(
    clock_and_server: tuple[ServerClock, DaphneServer],
) -> None:
    clock, server = clock_and_server
    signed_up = _sign_up(server)
    access, refresh = signed_up["access"], signed_up["refresh"]
    assert _account(server, access).status_code == 200

    lifetime = int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())
    clock.set(lifetime + 60)

    assert _error_code(_account(server, access), 401) == "token_not_valid"
    socket = Socket(server)
    try:
        socket.send({"op": "auth", "token": access})
        received, code = socket.closed_code()
    except ConnectionClosed as closed:  # closed before the reader saw the error message
        received, code = [], closed.rcvd.code if closed.rcvd else None
    assert code == CloseCode.TOKEN_EXPIRED, received
    assert all(message.get("type") != "authenticated" for message in received)

    with server.client() as anonymous:
        refreshed = anonymous.post("/api/v1/auth/token/refresh", json={"refresh": refresh})
    assert refreshed.status_code == 200, refreshed.text
    new_access = refreshed.json()["access"]
    assert _account(server, new_access).status_code == 200

    # The clock is set right. The first token is good again (by the true time it never
    # expired); the ones minted while the clock was ahead are issued in the future by more than
    # the leeway, so refused, refresh included, until the true time catches up: the app signs
    # in again, and that works at once.
    clock.set(0)
    assert _account(server, access).status_code == 200
    assert _error_code(_account(server, new_access), 401) == "token_not_valid"
    with server.client() as anonymous:
        stale_refresh = anonymous.post(
            "/api/v1/auth/token/refresh", json={"refresh": refreshed.json()["refresh"]}
        )
        assert _error_code(stale_refresh, 401) == "token_not_valid"
        login = anonymous.post(
            "/api/v1/auth/login", json={"email": signed_up["user"]["email"], "password": PASSWORD}
        )
    assert login.status_code == 200, login.text
    assert _account(server, login.json()["access"]).status_code == 200


def test_a_token_minted_by_a_clock_a_little_ahead_is_accepted(
    clock_and_server: tuple[ServerClock, DaphneServer],
) -> None:
    """Web machines' clocks differ by a little: within JWT_LEEWAY_SECONDS a token minted by
    one that is ahead works on one that is not (here: the same process, its clock set back)."""
    clock, server = clock_and_server
    skew = int(settings.SIMPLE_JWT["LEEWAY"]) // 2
    assert skew > 0
    clock.set(skew)
    signed_up = _sign_up(server)
    clock.set(0)
    assert _account(server, signed_up["access"]).status_code == 200
    with server.client() as anonymous:
        refreshed = anonymous.post("/api/v1/auth/token/refresh", json={"refresh": signed_up["refresh"]})
    assert refreshed.status_code == 200, refreshed.text


def _siwe_verify(server: DaphneServer, wallet: EthWallet, message: str) -> httpx.Response:
    with server.client() as anonymous:
        return anonymous.post(
            "/api/v1/auth/siwe/verify", json={"message": message, "signature": wallet.sign(message)}
        )


def _siwe_nonce(server: DaphneServer) -> str:
    with server.client() as anonymous:
        response = anonymous.post("/api/v1/auth/siwe/nonce")
    assert response.status_code == 200, response.text
    nonce: str = response.json()["nonce"]
    return nonce


def test_sign_in_with_ethereum_follows_the_servers_clock_and_keeps_the_nonce(
    clock_and_server: tuple[ServerClock, DaphneServer],
) -> None:
    clock, server = clock_and_server
    wallet = EthWallet()
    message = wallet.siwe_message(_siwe_nonce(server))  # issued now, by the wallet's true clock

    # The server is ahead by more than a message may age: expired, nothing created.
    clock.set(settings.SIWE_MAX_MESSAGE_AGE_SECONDS + 60)
    assert _error_code(_siwe_verify(server, wallet, message), 401) == "siwe_message_expired"
    assert not User.objects.filter(identities__subject=wallet.address).exists()

    # Set right again, the same message signs in: the refusal did not spend its nonce.
    clock.set(0)
    signed_in = _siwe_verify(server, wallet, message)
    assert signed_in.status_code == 201, signed_in.text
    assert _account(server, signed_in.json()["access"]).status_code == 200

    # The server is behind: a message the wallet issued now is from the server's future.
    behind = -(settings.OIDC_LEEWAY_SECONDS + 600)
    clock.set(behind)
    fresh = wallet.siwe_message(_siwe_nonce(server))
    assert _error_code(_siwe_verify(server, wallet, fresh), 401) == "siwe_message_not_yet_valid"
    clock.set(0)
    again = _siwe_verify(server, wallet, fresh)
    assert again.status_code == 200, again.text
    assert again.json()["user"]["id"] == signed_in.json()["user"]["id"]
