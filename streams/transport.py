"""What the stream needs from the server under a socket beyond ASGI: its backlog, a direct write.

ASGI's ``send`` never pushes back: daphne hands every message to Twisted, which buffers
what the client does not read, without bound. To drop a slow consumer instead, the consumer
asks the transport under daphne's ``send`` how many bytes wait in its buffer.

A price tick goes to every socket following the symbol at once, and the per-message cost of
the regular path (the socket's writer task, Channels' and daphne's ``send`` coroutines,
autobahn framing the same payload again for each socket, then Twisted registering the socket
for writing, waiting a loop turn and unregistering it: two ``epoll_ctl`` calls and a chain of
Python wrappers per message) is what bounds the fan-out's latency (BENCHMARKS.md). So when
nothing is waiting to go out on a socket (our queue, autobahn's send queue and Twisted's
buffer all empty), ``write_now`` sends the frame, framed once per tick for every socket,
straight to the TCP socket, and hands only what the kernel did not take to Twisted, which
then writes it in order as usual. Anything unusual (TLS terminated by daphne, per-message
compression, a socket closing, a server that is not daphne, a test communicator) declines,
and the message takes the regular path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

TEXT_FIN: Final = 0x81  # FIN bit + opcode 1 (text)


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked RFC 6455 text frame: how a server sends a message."""
    length = len(payload)
    if length < 126:
        header = bytes((TEXT_FIN, length))
    elif length < 1 << 16:
        header = bytes((TEXT_FIN, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((TEXT_FIN, 127)) + length.to_bytes(8, "big")
    return header + payload


class ServerSocket:
    """The daphne connection under one consumer's ``send`` (everything inert under another server)."""

    def __init__(self, send: Callable[..., Any]) -> None:
        # daphne's send is ``functools.partial(server.handle_reply, protocol)``
        args = getattr(send, "args", ())
        self.protocol: Any = args[0] if args else None
        server = getattr(getattr(send, "func", None), "__self__", None)
        connections = getattr(server, "connections", None)
        self.connections: dict[Any, dict[str, Any]] | None = (
            connections if isinstance(connections, dict) else None
        )
        self.transport: Any = getattr(self.protocol, "transport", None)

    def pending_bytes(self) -> int:
        """Bytes buffered for the client but not yet written to its TCP socket (0 when unknown)."""
        transport = self.transport
        if transport is None:
            return 0
        try:
            buffered = len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)
        except (AttributeError, TypeError):
            return 0
        return max(0, buffered)

    def write_now(self, text: str, frame: bytes | None = None) -> bool:
        """Send ``text`` straight away (``frame``: it already framed, shared by a tick's
        sockets); False, with nothing written, when it cannot."""
        protocol, transport = self.protocol, self.transport
        if protocol is None or transport is None or self.connections is None:
            return False
        try:
            connection = self.connections.get(protocol)
            if (
                connection is None
                or connection.get("disconnected")
                or protocol.state != protocol.STATE_OPEN
                or protocol._perMessageCompress is not None
                or protocol.send_queue
                or getattr(transport, "TLS", False)
                or transport.disconnecting
                or not transport.connected
                or transport.dataBuffer
                or transport._tempDataBuffer
            ):
                return False
            sock = transport.socket
        except AttributeError:  # another version of daphne, autobahn or Twisted
            return False
        if frame is None:
            frame = text_frame(text.encode())
        try:
            sent = sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False  # the regular path meets the same error and closes the socket properly
        if sent < len(frame):
            transport.write(frame[sent:])  # Twisted writes the rest when the socket can take it
        return True
