"""Reference client for MarqetFi's real-time stream (``/ws``).

Self-contained: it needs Python 3.11+ and ``websockets`` (15 or newer) and imports nothing
from the back end, so an integrator can copy this one file into their own code.

What it does for you:

- connects, reads ``hello``, authenticates with ``{"op": "auth", "token": ...}`` (the token
  comes from a callable, called again on every connection, so it can be refreshed),
  subscribes to the channels you asked for and answers the server's ``ping`` with ``pong``;
- when the connection drops, reconnects with exponential backoff and full jitter, then
  re-authenticates, resubscribes, re-sends ``cancel_on_disconnect`` if you set it and sends
  ``{"op": "resume", "after_seq": N}`` with the last user-event ``seq`` it has taken in, so
  the server replays whatever happened while it was away;
- drops user events whose ``seq`` it has already passed on (a replay that overlaps what it
  already saw), so your code sees each event once, in ``seq`` order.

Usage::

    import asyncio

    from streams.client import StreamClient


    async def access_token() -> str:
        ...  # POST /api/v1/auth/login or /auth/token/refresh and return "access"


    async def main() -> None:
        async with StreamClient(
            "wss://api.example.com/ws",
            token_provider=access_token,
            channels=["prices:BTCUSD", "orders", "positions"],
        ) as client:
            async for message in client:
                if message["type"] == "price_update":
                    print(message["channel"], message["data"]["mid"])
                elif "seq" in message:
                    print(message["type"], message["seq"], message["data"])


    asyncio.run(main())

Or hand every message to a callback and wait: ``await StreamClient(url, ...,
on_message=handle).run()``.

Messages are the server's JSON objects as dicts. The client keeps ``hello``, ``ping`` and
``pong`` to itself and passes on everything else (``subscribed``, snapshots,
``price_update``, user events, ``error``). Snapshots (``"snapshot": true``) are passed on
as they come and do not move ``last_seq``.

To carry on across restarts of your program, store ``client.last_seq`` after handling each
event and pass it back as ``StreamClient(..., last_seq=stored)``: the first connection then
resumes after it too. Without it the first connection starts with live events only (the
snapshots give the current state).

Errors: a token provider that raises, or a token the server refuses twice in a row (an
``error`` message with an authentication code, or a close with an authentication close
code; one refusal is taken as an expired token and retried at once with a fresh one), ends
the client with :class:`StreamAuthError`. Running out of ``max_reconnect_attempts`` ends it
with :class:`StreamConnectionError`. Either is raised from the iterator (after the messages
already received) and from :meth:`StreamClient.run` / :meth:`StreamClient.wait_closed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidURI, WebSocketException

__all__ = [
    "DEFAULT_AUTH_CLOSE_CODES",
    "DEFAULT_AUTH_ERROR_CODES",
    "Message",
    "StreamAuthError",
    "StreamClient",
    "StreamClientError",
    "StreamConnectionError",
    "backoff_delay",
]

logger = logging.getLogger(__name__)

Message = dict[str, Any]
TokenProvider = Callable[[], str | Awaitable[str | None] | None]
MessageHandler = Callable[[Message], Awaitable[None] | None]

#: ``error`` codes that mean the token was not accepted.
DEFAULT_AUTH_ERROR_CODES: Final = frozenset(
    {
        "auth_failed",
        "authentication_failed",
        "invalid_token",
        "token_invalid",
        "token_expired",
        "token_not_valid",
        "not_authenticated",
        "unauthorized",
        "user_inactive",
    }
)
#: WebSocket close codes that mean the token was not accepted (or is no longer).
DEFAULT_AUTH_CLOSE_CODES: Final = frozenset({4001, 4003, 4401, 4403})

_INTERNAL_TYPES: Final = frozenset({"hello", "ping", "pong"})
_AUTH_REFUSALS_BEFORE_GIVING_UP: Final = 2
_RETRYABLE: Final = (OSError, EOFError, WebSocketException, asyncio.TimeoutError)


class StreamClientError(Exception):
    """Base class of the errors that end a :class:`StreamClient`."""


class StreamAuthError(StreamClientError):
    """The token provider failed, or the server refused the token (again after a fresh one)."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StreamConnectionError(StreamClientError):
    """The server could not be reached within ``max_reconnect_attempts``."""


class _ProtocolViolation(Exception):
    """The server said something this client cannot follow (e.g. no ``hello`` first)."""


class _AuthRefused(Exception):
    def __init__(self, message: str, code: str | int | None) -> None:
        super().__init__(message)
        self.code = code


def backoff_delay(
    attempt: int, *, initial: float, maximum: float, factor: float = 2.0, rng: random.Random | None = None
) -> float:
    """Full-jitter backoff: a uniform draw in ``[0, min(maximum, initial * factor ** (attempt - 1))]``.

    ``attempt`` counts from 1 (the first retry after a failure).
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(maximum, initial * factor ** (attempt - 1))
    return (rng or random).uniform(0.0, ceiling)


class StreamClient:
    """A reconnecting, resuming client of the ``/ws`` stream.

    Args:
        url: ``ws://`` or ``wss://`` URL of the stream (``.../ws``).
        token_provider: returns the access JWT (or ``None`` to stay anonymous: prices only);
            plain or async; called before every connection, so return a fresh token when the
            old one is about to expire. ``None``: anonymous.
        channels: channels to subscribe to on every connection (``prices:BTCUSD``, ``orders``,
            ``positions``, ``deposits``). Change them later with :meth:`subscribe` and
            :meth:`unsubscribe`.
        cancel_on_disconnect_ms: when set, sends ``{"op": "cancel_on_disconnect",
            "timeout_ms": N}`` on every authenticated connection.
        last_seq: the last user-event ``seq`` already handled (from an earlier run): resume
            after it on the first connection too.
        on_message: called (and awaited if async) with each message, in order, instead of
            queueing it for the iterator. An exception it raises ends the client.
        backoff_initial, backoff_max, backoff_factor: reconnect delays, in seconds: attempt
            ``k`` waits a uniform random time in ``[0, min(backoff_max, backoff_initial *
            backoff_factor ** (k - 1))]`` (full jitter). The count restarts once a connection
            is set up (its subscription was answered, or ``hello`` arrived when there is
            nothing to subscribe to).
        max_reconnect_attempts: give up (``StreamConnectionError``) after this many failed
            attempts in a row; ``None``: never.
        hello_timeout: seconds to wait for ``hello`` after the handshake.
        max_buffer: messages held for the iterator before the client stops reading the
            socket (the server may then drop it as a slow consumer, and the client resumes).
        auth_error_codes, auth_close_codes: what counts as a refused token.
        connect_options: passed to ``websockets.asyncio.client.connect`` (``open_timeout``,
            ``additional_headers``, ``ssl``, ``ping_interval``, ...).
        rng: random source for the jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        url: str,
        *,
        token_provider: TokenProvider | None = None,
        channels: Iterable[str] = (),
        cancel_on_disconnect_ms: int | None = None,
        last_seq: int | None = None,
        on_message: MessageHandler | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        backoff_factor: float = 2.0,
        max_reconnect_attempts: int | None = None,
        hello_timeout: float = 10.0,
        max_buffer: int = 10_000,
        auth_error_codes: Iterable[str] = DEFAULT_AUTH_ERROR_CODES,
        auth_close_codes: Iterable[int] = DEFAULT_AUTH_CLOSE_CODES,
        connect_options: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if backoff_initial < 0 or backoff_max < backoff_initial or backoff_factor < 1:
            raise ValueError("need 0 <= backoff_initial <= backoff_max and backoff_factor >= 1")
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.url = url
        self.token_provider = token_provider
        self.cancel_on_disconnect_ms = cancel_on_disconnect_ms
        self.on_message = on_message
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff_factor = backoff_factor
        self.max_reconnect_attempts = max_reconnect_attempts
        self.hello_timeout = hello_timeout
        self.max_buffer = max_buffer
        self.auth_error_codes = frozenset(auth_error_codes)
        self.auth_close_codes = frozenset(auth_close_codes)
        self.connect_options = dict(connect_options or {})
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

        self._channels: list[str] = list(dict.fromkeys(channels))
        self._accepted_seq = last_seq  # highest seq let through (queued or handed over)
        self._last_seq = last_seq  # highest seq handed to the application

        #: The latest ``hello`` message (session id, heartbeat, limits); ``None`` before one.
        self.hello: Message | None = None
        #: Connections made (the first included) and reconnect attempts after a drop.
        self.connections = 0
        self.reconnects = 0

        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()
        self._finished = False
        self._error: BaseException | None = None
        self._error_raised = False
        self._buffer: deque[Message] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._connected = asyncio.Event()

    # --- public API -------------------------------------------------------------------

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last user event handed to the application (``None``: none yet)."""
        return self._last_seq

    @property
    def channels(self) -> list[str]:
        """The channels subscribed on every (re)connection."""
        return list(self._channels)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def start(self) -> None:
        """Start connecting in the background (``async with`` and ``run()`` call it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-client")

    async def run(self) -> None:
        """Start and wait until the client ends: returns after :meth:`close`, raises its error."""
        self.start()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the client ends; raise the error that ended it, if any."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)
        if self._error is not None:
            self._error_raised = True
            raise self._error

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a connection has greeted us (``hello`` received)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def subscribe(self, channels: Iterable[str]) -> None:
        """Add channels: sent now if connected, and on every reconnection."""
        new = [c for c in dict.fromkeys(channels) if c not in self._channels]
        self._channels += new
        if new:
            await self._send_if_connected({"op": "subscribe", "channels": new})

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        """Remove channels: sent now if connected, and no longer subscribed on reconnection."""
        gone = [c for c in dict.fromkeys(channels) if c in self._channels]
        self._channels = [c for c in self._channels if c not in gone]
        if gone:
            await self._send_if_connected({"op": "unsubscribe", "channels": gone})

    async def close(self) -> None:
        """Stop reconnecting, close the socket (code 1000) and end the iteration."""
        self._closing = True
        self._stop.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(*_RETRYABLE):
                await ws.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish(None)

    async def __aenter__(self) -> StreamClient:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Message]:
        self.start()
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._buffer:
                message = self._buffer.popleft()
                if len(self._buffer) < self.max_buffer:
                    self._writable.set()
                self._note_handled(message)
                return message
            if self._finished:
                if self._error is not None and not self._error_raised:
                    self._error_raised = True
                    raise self._error
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()

    # --- connection loop ---------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0  # failed attempts in a row, for the backoff
        auth_refusals = 0  # refused tokens in a row
        try:
            while not self._closing:
                delay: float | None = None
                try:
                    established = await self._session()
                    if established:
                        failures = auth_refusals = 0
                except _AuthRefused as refused:
                    auth_refusals += 1
                    if auth_refusals >= _AUTH_REFUSALS_BEFORE_GIVING_UP:
                        raise StreamAuthError(str(refused), code=refused.code) from None
                    logger.info("stream token refused (%s); reconnecting with a fresh one", refused.code)
                    delay = 0.0
                except (*_RETRYABLE, _ProtocolViolation) as exc:
                    if isinstance(exc, InvalidURI):
                        raise
                    logger.info("stream connection lost: %r", exc)
                finally:
                    self._ws = None
                    self._connected.clear()
                if self._closing:
                    break
                if delay is None:
                    failures += 1
                    delay = self._retry_delay(failures)
                self.reconnects += 1
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        except asyncio.CancelledError:
            self._finish(None)
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the application
            self._finish(exc)
        else:
            self._finish(None)

    def _retry_delay(self, failures: int) -> float:
        if self.max_reconnect_attempts is not None and failures > self.max_reconnect_attempts:
            raise StreamConnectionError(
                f"could not reach {self.url} in {self.max_reconnect_attempts} attempts"
            )
        return backoff_delay(
            failures,
            initial=self.backoff_initial,
            maximum=self.backoff_max,
            factor=self.backoff_factor,
            rng=self._rng,
        )

    async def _session(self) -> bool:
        """One connection, from handshake to close. Returns whether it was fully set up."""
        token = await self._token()
        self.connections += 1
        async with connect(self.url, **self.connect_options) as ws:
            hello = self._decode(await asyncio.wait_for(ws.recv(), self.hello_timeout))
            if hello is None or hello.get("type") != "hello":
                raise _ProtocolViolation(f"expected hello, got {hello!r}")
            self.hello = hello
            self._ws = ws
            self._connected.set()
            established = not self._channels
            for op in self._setup_ops(token):
                await ws.send(json.dumps(op, separators=(",", ":")))
            try:
                async for raw in ws:
                    message = self._decode(raw)
                    if message is None:
                        continue
                    kind = message.get("type")
                    if kind == "ping":
                        await ws.send('{"op":"pong"}')
                        continue
                    if kind == "error" and token and message.get("code") in self.auth_error_codes:
                        await ws.close()
                        raise _AuthRefused(str(message.get("message") or "token refused"), message["code"])
                    if kind == "subscribed":
                        established = True
                    if kind in _INTERNAL_TYPES:
                        continue
                    await self._deliver(message)
            except WebSocketException:
                if not self._auth_closed(ws, token):
                    raise
            if self._auth_closed(ws, token):
                raise _AuthRefused(ws.close_reason or "token refused", ws.close_code)
            if not self._closing:
                logger.info("stream closed by the server: %s %s", ws.close_code, ws.close_reason)
        return established

    def _setup_ops(self, token: str | None) -> list[Message]:
        ops: list[Message] = []
        if token:
            ops.append({"op": "auth", "token": token})
        # ``resume`` before ``subscribe``: the server then replays right after the snapshots and
        # before any live event, so no live event can overtake the replay.
        if token and self._accepted_seq is not None:
            ops.append({"op": "resume", "after_seq": self._accepted_seq})
        if self._channels:
            ops.append({"op": "subscribe", "channels": list(self._channels)})
        if token and self.cancel_on_disconnect_ms is not None:
            ops.append({"op": "cancel_on_disconnect", "timeout_ms": self.cancel_on_disconnect_ms})
        return ops

    def _auth_closed(self, ws: ClientConnection, token: str | None) -> bool:
        return bool(token) and ws.close_code in self.auth_close_codes

    async def _token(self) -> str | None:
        if self.token_provider is None:
            return None
        try:
            token = self.token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as exc:
            raise StreamAuthError(f"token provider failed: {exc!r}") from exc
        return token

    # --- delivery ------------------------------------------------------------------------

    async def _deliver(self, message: Message) -> None:
        seq = message.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and not message.get("snapshot"):
            if self._accepted_seq is not None and seq <= self._accepted_seq:
                logger.debug("dropping seq %s (already at %s)", seq, self._accepted_seq)
                return
            self._accepted_seq = seq
        if self.on_message is not None:
            result = self.on_message(message)
            if inspect.isawaitable(result):
                await result
            self._note_handled(message)
            return
        while len(self._buffer) >= self.max_buffer:
            self._writable.clear()
            await self._writable.wait()
        self._buffer.append(message)
        self._readable.set()

    def _note_handled(self, message: Message) -> None:
        seq = message.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and not message.get("snapshot"):
            self._last_seq = seq

    async def _send_if_connected(self, op: Message) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(*_RETRYABLE):
                await ws.send(json.dumps(op, separators=(",", ":")))

    @staticmethod
    def _decode(raw: str | bytes) -> Message | None:
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("ignoring a frame that is not JSON")
            return None
        return message if isinstance(message, dict) else None

    def _finish(self, error: BaseException | None) -> None:
        if not self._finished:
            self._finished = True
            self._error = error
            if self._closing:
                self._buffer.clear()
        self._readable.set()
        self._writable.set()
