"""How much a socket's server has not managed to write to the client yet.

ASGI's ``send`` never pushes back: daphne hands every message to Twisted, which buffers
what the client does not read, without bound. To drop a slow consumer instead, the consumer
asks the transport under daphne's ``send`` how many bytes wait in its buffer. Any other
server (or a test communicator) reports nothing and the bounded queue alone applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _daphne_transport(send: Callable[..., Any]) -> Any:
    # daphne's send is ``functools.partial(server.handle_reply, protocol)``
    args = getattr(send, "args", ())
    protocol = args[0] if args else None
    return getattr(protocol, "transport", None)


def pending_write_bytes(send: Callable[..., Any]) -> int:
    """Bytes buffered for the client but not yet written to its TCP socket (0 when unknown)."""
    transport = _daphne_transport(send)
    if transport is None:
        return 0
    try:
        buffered = len(transport.dataBuffer) - int(transport.offset) + int(transport._tempDataLen)
    except (AttributeError, TypeError):
        return 0
    return max(0, buffered)
