"""The direct write's framing against an independent implementation (the websockets library)."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from streams.transport import ServerSocket, text_frame


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_a_frame_is_what_a_websocket_library_sends_for_the_same_text(length: int) -> None:
    payload = ("é" * length).encode()[:length]  # multi-byte text, cut at any byte count
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_under_another_server_nothing_is_written_directly_and_no_backlog_is_known() -> None:
    async def send(message: dict[str, object]) -> None:  # an ASGI send that is not daphne's
        raise AssertionError("not called")

    socket = ServerSocket(send)
    assert socket.write_now("{}") is False
    assert socket.pending_bytes() == 0
