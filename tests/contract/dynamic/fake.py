"""A fake of Dynamic's admin API for one environment: wallet creation and user reads.

It answers in the shapes Dynamic's OpenAPI documents (see providers/wallets/dynamic/client.py):

- ``POST /environments/{environmentId}/waas/create``: 201 with ``{"user": ...}`` the first
  time an email asks, 200 with the same user afterwards; or, with ``waas_enabled=False``,
  422 ``{"error", "code"}`` every time.
- ``POST /environments/{environmentId}/embeddedWallets`` (legacy): the same 201 / 200 pattern.
- ``GET /environments/{environmentId}/users/{userId}``: the user, or 404 ``{"error"}``.

The answers are the JSON files under ``fixtures/`` (one user, Ada). ``fail_next`` queues error
answers served before anything else; ``stall_creates`` makes that many creation requests do
their work and then sleep ``stall_seconds`` before answering, as a timeout seen from our side
(Dynamic made the wallet, the answer never arrived). The server must be threaded so that a
stalled handler does not hold up the client's retry.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Received:
    method: str
    path: str
    json: Any
    headers: dict[str, str]


@dataclass
class FakeDynamic:
    server: HTTPServer
    environment_id: str
    waas_enabled: bool = True
    waas_disabled_answer: str = "error_waas_not_enabled.json"
    waas_answer: str = "waas_wallet_created.json"
    legacy_answer: str = "embedded_wallet_created.json"
    stall_creates: int = 0
    stall_seconds: float = 0.5
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    # email -> user, per endpoint: what Dynamic holds once it has made the wallet
    waas_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    legacy_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        base = f"/api/v0/environments/{self.environment_id}"
        self.waas_path = f"{base}/waas/create"
        self.legacy_path = f"{base}/embeddedWallets"
        self.server.expect_request(self.waas_path, method="POST").respond_with_handler(self._waas_create)
        self.server.expect_request(self.legacy_path, method="POST").respond_with_handler(self._legacy_create)
        self.server.expect_request(re.compile(rf"^{base}/users/[^/]+$"), method="GET").respond_with_handler(
            self._get_user
        )

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    # --- handlers -----------------------------------------------------------------------

    def _waas_create(self, request: Request) -> Response:
        failure = self._receive(request)
        if failure is not None:
            return failure
        if not self.waas_enabled:
            return _json(fixture(self.waas_disabled_answer), 422)
        return self._create(request, self.waas_users, self.waas_answer)

    def _legacy_create(self, request: Request) -> Response:
        failure = self._receive(request)
        if failure is not None:
            return failure
        return self._create(request, self.legacy_users, self.legacy_answer)

    def _get_user(self, request: Request) -> Response:
        failure = self._receive(request)
        if failure is not None:
            return failure
        user_id = request.path.rsplit("/", 1)[-1]
        with self._lock:
            users = [*self.waas_users.values(), *self.legacy_users.values()]
        user = next((u for u in users if u["id"] == user_id), None)
        if user is None:
            return _json(fixture("error_user_not_found.json"), 404)
        return _json({"user": user}, 200)

    # --- behaviour ----------------------------------------------------------------------

    def _receive(self, request: Request) -> Response | None:
        with self._lock:
            self.received.append(
                Received(
                    method=request.method,
                    path=request.path,
                    json=request.get_json(silent=True),
                    headers=dict(request.headers),
                )
            )
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure is None:
            return None
        status, answer = failure
        return _json(fixture(answer), status)

    def _create(self, request: Request, users: dict[str, dict[str, Any]], answer: str) -> Response:
        email = str((request.get_json(silent=True) or {}).get("identifier"))
        with self._lock:
            if email in users:
                user, status = copy.deepcopy(users[email]), 200
                user["newUser"] = False
            else:
                user = fixture(answer)["user"]
                users[email] = copy.deepcopy(user)
                status = 201
            stall = self.stall_creates > 0
            if stall:
                self.stall_creates -= 1
        if stall:
            time.sleep(self.stall_seconds)
        return _json({"user": user}, status)


def _json(body: Any, status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
