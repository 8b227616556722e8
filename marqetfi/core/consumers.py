from __future__ import annotations

import uuid
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from marqetfi.core.api import json_too_deep
from marqetfi.core.formats import timestamp_text

HEARTBEAT_MS = 30_000
MAX_SUBSCRIPTIONS = 100


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """``/ws``: greets with ``hello`` and answers ``ping``; the full stream protocol builds on it."""

    async def connect(self) -> None:
        self.session_id = uuid.uuid4().hex
        await self.accept()
        await self.send_json(
            {
                "type": "hello",
                "session_id": self.session_id,
                "server_time": timestamp_text(timezone.now()),
                "heartbeat_ms": HEARTBEAT_MS,
                "max_subscriptions": MAX_SUBSCRIPTIONS,
            }
        )

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            await self.send_error("invalid_message", "Messages are JSON text frames.")
            return
        try:
            if json_too_deep(text_data):  # the decoder would recurse once per level
                raise ValueError("nested too deeply")
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_error("invalid_message", "Messages are JSON objects.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        op = content.get("op") if isinstance(content, dict) else None
        if op == "ping":
            await self.send_json({"type": "pong", "ts": timestamp_text(timezone.now())})
        elif op == "pong":
            return
        else:
            await self.send_error("unknown_op", f"Unknown op {op!r}.")

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})
