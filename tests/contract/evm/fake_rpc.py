"""A scripted JSON-RPC node for pytest-httpserver: answers each method as the test says."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

Answer = Callable[[dict[str, Any]], dict[str, Any]]


def json_rpc(answer: Answer) -> Callable[[Request], Response]:
    """A werkzeug handler answering each JSON-RPC call (single or batch) with ``answer(call)``."""

    def handler(request: Request) -> Response:
        payload = json.loads(request.get_data())
        calls = payload if isinstance(payload, list) else [payload]
        answers = [{"jsonrpc": "2.0", "id": call["id"], **answer(call)} for call in calls]
        body = answers if isinstance(payload, list) else answers[0]
        return Response(json.dumps(body), content_type="application/json")

    return handler


def node(answers: Mapping[str, dict[str, Any]], chain_id: int = 1) -> Answer:
    """Per method ``{"result": ...}`` or ``{"error": {...}}``; ``eth_chainId`` answers ``chain_id``
    unless scripted; any other method is "method not found"."""

    def answer(call: dict[str, Any]) -> dict[str, Any]:
        method = call["method"]
        if method in answers:
            return dict(answers[method])
        if method == "eth_chainId":
            return {"result": hex(chain_id)}
        return {"error": {"code": -32601, "message": f"the method {method} does not exist"}}

    return answer


def calls(log: list[tuple[Request, Response]]) -> list[dict[str, Any]]:
    """Every JSON-RPC call the server received, batches flattened, in order."""
    found: list[dict[str, Any]] = []
    for request, _ in log:
        payload = json.loads(request.get_data())
        found.extend(payload if isinstance(payload, list) else [payload])
    return found
