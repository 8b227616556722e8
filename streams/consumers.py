"""``/ws``: prices and the user's outbox events over one socket (README, "WebSocket").

The consumer opens no Channels layer channel: messages come from this process's
``stream_hub`` (one Redis subscription per channel, fanned out in memory) and go out
through a bounded per-socket queue drained by one writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from marqetfi.core.api import json_too_deep
from marqetfi.core.formats import timestamp_text
from marqetfi.core.realtime import user_stream_channel
from marqetfi.core.stream_hub import StreamHub, StreamMessage, stream_hub
from streams import presence, protocol, selectors
from streams.auth import SocketAuthFailed, socket_authenticate
from streams.db import stream_db
from streams.protocol import CloseCode
from streams.tasks import cancel_on_disconnect_schedule
from streams.transport import ServerSocket, text_frame

logger = logging.getLogger(__name__)

MAX_CHANNELS_PER_REQUEST = 200
EMPTY_REPLAY_RETRIES = 3
# Ops a socket may have waiting for their turn (the rate limit keeps a client far below it).
INBOUND_QUEUE_MAX = 64
SLOW_MESSAGE = "The client does not keep up."


def _now_ms() -> int:
    return int(time.time() * 1000)


class StreamConsumer(AsyncWebsocketConsumer):
    # No Channels layer: the stream's fan-out is the hub, so no layer channel is opened and
    # no blocking layer receive runs beside the socket.
    channel_layer_alias = None

    # --- lifecycle ----------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message ``aclose_old_connections``.

        That call hops to a worker thread for every frame a client sends (every ``pong``), to
        close database connections this thread never opens: the consumer's database work runs
        in ``streams.db.stream_db``, which closes stale connections around each call itself.
        Under load, those hops queue behind the GIL and delay every socket of the process."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.user: User | None = None
        self.expires_handle: asyncio.TimerHandle | None = None
        self.subscriptions: set[str] = set()
        self.hub: StreamHub = stream_hub()
        self.hub_channels: set[str] = set()
        self.closing = False
        self.outbound: asyncio.Queue[str] = asyncio.Queue()
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=INBOUND_QUEUE_MAX)
        self.held: list[dict[str, Any]] = []
        self.replaying = False
        self.last_seq: int | None = None
        # A ``resume`` sent before any user channel: the replay starts when one is subscribed.
        self.resume_after: int | None = None
        self.price_sent_at: dict[str, float] = {}
        self.price_sent_key: dict[str, tuple[Any, Any]] = {}
        self.price_pending: dict[str, StreamMessage] = {}
        self.price_timers: dict[str, asyncio.TimerHandle] = {}
        self.inbound_window = 0.0
        self.inbound_count = 0
        self.cod_timeout_ms = 0
        self.pong_at = time.monotonic()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.server_socket = ServerSocket(self.base_send)
        self.outbound_queue_max = settings.STREAM_OUTBOUND_QUEUE_MAX
        self.outbound_buffer_max = settings.STREAM_OUTBOUND_BUFFER_MAX_BYTES
        self.price_interval = 1.0 / max(settings.STREAM_PRICE_MAX_PER_SECOND, 0.001)
        await self.accept()
        await self.send(text_data=protocol.encode(self.hello()))
        self.writer = asyncio.ensure_future(self.write_loop())
        self.heartbeat = asyncio.ensure_future(self.heartbeat_loop())
        self.ops = asyncio.ensure_future(self.op_loop())
        token = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("token")
        if token:
            await self.authenticate(token[0])

    def hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "session_id": self.session_id,
            "server_time": protocol.now_text(),
            "heartbeat_ms": settings.STREAM_HEARTBEAT_MS,
            "max_subscriptions": settings.STREAM_MAX_SUBSCRIPTIONS,
            "limits": {
                "pong_timeout_ms": settings.STREAM_PONG_TIMEOUT_MS,
                "max_subscriptions": settings.STREAM_MAX_SUBSCRIPTIONS,
                "max_messages_per_second": settings.STREAM_MAX_MESSAGES_PER_SECOND,
                "max_message_bytes": settings.STREAM_MAX_MESSAGE_BYTES,
                "max_sockets_per_user": settings.STREAM_MAX_SOCKETS_PER_USER,
                "price_updates_per_second": settings.STREAM_PRICE_MAX_PER_SECOND,
                "outbound_queue": settings.STREAM_OUTBOUND_QUEUE_MAX,
            },
        }

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            await self.cleanup()
        finally:
            raise StopConsumer()

    async def cleanup(self) -> None:
        self.closing = True
        running = (getattr(self, name, None) for name in ("writer", "heartbeat", "ops"))
        for task in (*running, *self.tasks):
            if task is not None:
                task.cancel()
        for handle in (self.expires_handle, *self.price_timers.values()):
            if handle is not None:
                handle.cancel()
        self.price_timers.clear()
        await self.hub.unsubscribe_all(self, self.hub_channels)
        self.hub_channels.clear()
        if self.user is not None:
            user_id = self.user.pk
            try:
                await sync_to_async(presence.socket_leave, thread_sensitive=False)(
                    user_id=user_id, session_id=self.session_id
                )
                if self.cod_timeout_ms:
                    await sync_to_async(cancel_on_disconnect_schedule, thread_sensitive=False)(
                        user_id=user_id, session_id=self.session_id
                    )
            except Exception:  # Redis down while closing: the socket entry lapses on its own
                logger.exception("stream socket %s of %s not cleaned up", self.session_id, user_id)

    async def close_with(self, code: CloseCode, error_code: str | None = None, message: str = "") -> None:
        """Say why (an ``error``) when there is something to say, then close with ``code``."""
        if self.closing:
            return
        self.closing = True
        logger.info("stream socket %s closed by the server: %s (%s)", self.session_id, code.name, int(code))
        with contextlib.suppress(Exception):
            if error_code:
                await self.send(text_data=protocol.encode(protocol.error(error_code, message)))
            await self.close(code=int(code))

    def close_soon(self, code: CloseCode, error_code: str | None = None, message: str = "") -> None:
        if not self.closing:
            self.spawn(self.close_with(code, error_code, message))

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- outbound -----------------------------------------------------------------------

    def backlog_exceeded(self) -> bool:
        return self.server_socket.pending_bytes() > self.outbound_buffer_max

    def enqueue(self, message: str, frame: bytes | None = None) -> None:
        """Send a message, or queue it for the writer; a socket whose backlog is full is closed.

        ``frame`` is the message already framed, shared by every socket a tick goes to."""
        if self.closing:
            return
        if self.outbound.qsize() >= self.outbound_queue_max or self.backlog_exceeded():
            self.close_soon(CloseCode.SLOW_CONSUMER, "slow_consumer", SLOW_MESSAGE)
            return
        # Nothing queued means nothing of ours unsent ahead of this message (the writer's send
        # never suspends under daphne); write_now checks the server's own buffers.
        if self.outbound.empty() and self.server_socket.write_now(message, frame):
            return
        self.outbound.put_nowait(message)

    async def enqueue_waiting(self, message: str) -> None:
        """Queue a message, waiting for room (replays: the producer is ours to slow down)."""
        while not self.closing and self.outbound.qsize() >= settings.STREAM_OUTBOUND_QUEUE_MAX:
            if self.backlog_exceeded():
                await self.close_with(
                    CloseCode.SLOW_CONSUMER, "slow_consumer", "The client does not keep up."
                )
                return
            await asyncio.sleep(0.01)
        if not self.closing:
            self.outbound.put_nowait(message)

    def reply(self, message: dict[str, Any]) -> None:
        self.enqueue(protocol.encode(message))

    async def write_loop(self) -> None:
        while True:
            message = await self.outbound.get()
            if self.closing:
                return
            if self.backlog_exceeded():
                await self.close_with(
                    CloseCode.SLOW_CONSUMER, "slow_consumer", "The client does not keep up."
                )
                return
            await self.send(text_data=message)

    # --- heartbeat ----------------------------------------------------------------------

    async def heartbeat_loop(self) -> None:
        interval = settings.STREAM_HEARTBEAT_MS / 1000
        timeout = settings.STREAM_PONG_TIMEOUT_MS / 1000
        # The first ping comes a random 50-100 % of the interval in, so the sockets opened
        # together (a reconnect wave after a deploy) do not ping, pong and renew in one burst.
        wait = interval * (0.5 + random.random() / 2)  # noqa: S311 - spreading load, not crypto
        while not self.closing:
            await asyncio.sleep(wait)
            wait = interval
            sent_at = time.monotonic()
            self.reply({"type": "ping", "ts": protocol.now_text()})
            if self.user is not None:
                with contextlib.suppress(Exception):
                    await presence.socket_admit(
                        user_id=self.user.pk, session_id=self.session_id, now_ms=_now_ms()
                    )
            await asyncio.sleep(max(0.0, timeout - (time.monotonic() - sent_at)))
            if self.pong_at < sent_at:
                await self.close_with(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat_timeout", "No pong in time.")
                return

    # --- inbound ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        size = len(text_data) if text_data is not None else len(bytes_data or b"")
        if size > settings.STREAM_MAX_MESSAGE_BYTES:
            await self.close_with(
                CloseCode.MESSAGE_TOO_BIG,
                "message_too_large",
                f"Messages are at most {settings.STREAM_MAX_MESSAGE_BYTES} bytes.",
            )
            return
        content = self.inbound_content(text_data)
        if content is None:
            return
        if content.get("op") == "pong":
            # Noted on arrival: a pong must not wait behind this socket's slower ops (a
            # snapshot queued behind a reconnect wave's), or a healthy client times out.
            self.pong_at = time.monotonic()
        elif self.inbound.full():
            self.close_soon(CloseCode.RATE_LIMITED, "rate_limited", "Too many requests waiting; closing.")
        else:
            self.inbound.put_nowait(content)

    def inbound_content(self, text_data: str | None) -> dict[str, Any] | None:
        """The frame as a JSON object, or None after answering (or closing) for a bad one."""
        if not self.inbound_allowed():
            return None
        if text_data is None:
            self.reply(protocol.error("invalid_message", "Messages are JSON text frames."))
            return None
        try:
            if json_too_deep(text_data):  # the decoder would recurse once per level
                raise ValueError("nested too deeply")
            content = json.loads(text_data)
        except ValueError:
            content = None
        if not isinstance(content, dict):
            self.reply(protocol.error("invalid_message", "Messages are JSON objects."))
            return None
        return content

    async def op_loop(self) -> None:
        """The socket's ops, one at a time in the order sent (auth before subscribe, ...)."""
        while not self.closing:
            content = await self.inbound.get()
            try:
                await self.handle(content)
            except Exception:  # a failed op (the database away, a bug) must not deafen the socket
                logger.exception("stream op %r failed on socket %s", content.get("op"), self.session_id)
                self.reply(protocol.error("internal_error", "The request failed; try again."))

    def inbound_allowed(self) -> bool:
        """At most STREAM_MAX_MESSAGES_PER_SECOND per second: beyond, an error per message; at
        twice the limit within one second, the socket is closed."""
        now = time.monotonic()
        if now - self.inbound_window >= 1.0:
            self.inbound_window, self.inbound_count = now, 0
        self.inbound_count += 1
        limit = settings.STREAM_MAX_MESSAGES_PER_SECOND
        if self.inbound_count <= limit:
            return True
        if self.inbound_count > 2 * limit:
            self.close_soon(CloseCode.RATE_LIMITED, "rate_limited", "Too many messages; closing.")
        else:
            self.reply(protocol.error("rate_limited", f"At most {limit} messages per second."))
        return False

    async def handle(self, content: dict[str, Any]) -> None:
        op = content.get("op")
        if op == "pong":
            self.pong_at = time.monotonic()
        elif op == "ping":
            self.reply({"type": "pong", "ts": protocol.now_text()})
        elif op == "auth":
            await self.authenticate(content.get("token"))
        elif op == "subscribe":
            await self.subscribe(content.get("channels"))
        elif op == "unsubscribe":
            await self.unsubscribe(content.get("channels"))
        elif op == "resume":
            await self.resume(content.get("after_seq"))
        elif op == "cancel_on_disconnect":
            await self.cancel_on_disconnect(content.get("timeout_ms"))
        else:
            shown = op if isinstance(op, str) and len(op) <= 64 else None
            self.reply(protocol.error("unknown_op", f"Unknown op {shown!r}."))

    # --- auth ---------------------------------------------------------------------------

    async def authenticate(self, token: Any) -> None:
        try:
            identity = await stream_db(socket_authenticate)(token=token)
        except SocketAuthFailed as failure:
            await self.close_with(failure.close_code, failure.code, failure.message)
            return
        user = identity.user
        if self.user is not None and self.user.pk != user.pk:
            self.reply(protocol.error("already_authenticated", "This socket is signed in as another user."))
            return
        if self.user is None:
            admitted = await presence.socket_admit(
                user_id=user.pk, session_id=self.session_id, now_ms=_now_ms()
            )
            if not admitted:
                await self.close_with(
                    CloseCode.TOO_MANY_SOCKETS,
                    "too_many_sockets",
                    f"At most {settings.STREAM_MAX_SOCKETS_PER_USER} sockets per user.",
                )
                return
        self.user = user
        if self.expires_handle is not None:
            self.expires_handle.cancel()
            self.expires_handle = None
        if identity.expires_at is not None:
            delay = (identity.expires_at - timezone.now()).total_seconds()
            self.expires_handle = asyncio.get_running_loop().call_later(
                max(0.0, delay),
                self.close_soon,
                CloseCode.TOKEN_EXPIRED,
                "token_expired",
                "The token has expired; sign in again.",
            )
        self.reply(
            {
                "type": "authenticated",
                "user_id": str(user.pk),
                "expires_at": timestamp_text(identity.expires_at) if identity.expires_at else None,
            }
        )

    # --- subscriptions ------------------------------------------------------------------

    def channel_list(self, channels: Any) -> list[str] | None:
        if (
            not isinstance(channels, list)
            or not channels
            or len(channels) > MAX_CHANNELS_PER_REQUEST
            or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in channels)
        ):
            self.reply(protocol.error("invalid_message", "channels: a non-empty list of channel names."))
            return None
        return list(dict.fromkeys(protocol.channel_normalize(c) for c in channels))

    async def subscribe(self, channels: Any) -> None:
        wanted = self.channel_list(channels)
        if wanted is None:
            return
        new = [c for c in wanted if c not in self.subscriptions]
        user_channels = [c for c in new if protocol.is_user_channel(c)]
        symbols = [s for c in new if (s := protocol.price_symbol(c)) is not None]
        unknown = [c for c in new if not protocol.is_user_channel(c) and protocol.price_symbol(c) is None]
        if user_channels and self.user is None:
            self.reply(
                protocol.error(
                    "auth_required", "Sign in to subscribe to these channels.", channels=user_channels
                )
            )
            user_channels = []
        active = await stream_db(selectors.symbols_active)(symbols) if symbols else set()
        unknown += [protocol.PRICE_PREFIX + s for s in symbols if s not in active]
        if unknown:
            self.reply(protocol.error("unknown_channel", "No such channel.", channels=unknown))
        accepted = user_channels + [protocol.PRICE_PREFIX + s for s in symbols if s in active]
        if len(self.subscriptions) + len(accepted) > settings.STREAM_MAX_SUBSCRIPTIONS:
            self.reply(
                protocol.error(
                    "too_many_subscriptions",
                    f"At most {settings.STREAM_MAX_SUBSCRIPTIONS} subscriptions per socket.",
                )
            )
            accepted = []
        for channel in accepted:
            self.subscriptions.add(channel)
            if protocol.price_symbol(channel) is not None:
                await self.hub_subscribe(channel)
        resume_after = self.resume_after if user_channels and self.user is not None else None
        if resume_after is not None:
            # Live events are held from the moment the user's stream is joined, so the replay
            # that follows the snapshots has no seam: nothing is sent ahead of it.
            self.resume_after, self.replaying = None, True
        if user_channels and self.user is not None:
            await self.hub_subscribe(user_stream_channel(self.user.pk))
        self.reply({"type": "subscribed", "channels": sorted(self.subscriptions)})
        for channel in accepted:
            await self.snapshot(channel)
        if resume_after is not None:
            await self.replay_and_report(resume_after)

    async def unsubscribe(self, channels: Any) -> None:
        unwanted = self.channel_list(channels)
        if unwanted is None:
            return
        for channel in unwanted:
            if channel not in self.subscriptions:
                continue
            self.subscriptions.discard(channel)
            if protocol.price_symbol(channel) is not None:
                await self.hub_unsubscribe(channel)
                self.price_pending.pop(channel, None)
                self.price_sent_key.pop(channel, None)
                if (handle := self.price_timers.pop(channel, None)) is not None:
                    handle.cancel()
        if self.user is not None and not any(protocol.is_user_channel(c) for c in self.subscriptions):
            await self.hub_unsubscribe(user_stream_channel(self.user.pk))
            self.last_seq = None
        self.reply({"type": "subscribed", "channels": sorted(self.subscriptions)})

    async def hub_subscribe(self, channel: str) -> None:
        if channel not in self.hub_channels:
            self.hub_channels.add(channel)
            await self.hub.subscribe(channel, self)

    async def hub_unsubscribe(self, channel: str) -> None:
        if channel in self.hub_channels:
            self.hub_channels.discard(channel)
            await self.hub.unsubscribe(channel, self)

    async def snapshot(self, channel: str) -> None:
        symbol = protocol.price_symbol(channel)
        if symbol is not None:
            price = await stream_db(selectors.price_snapshot)(symbol)
            if price is not None:
                self.price_sent_key[channel] = (price["bid"], price["ask"])
                self.price_sent_at[channel] = asyncio.get_running_loop().time()
            message = protocol.price_message(channel, price or {}, snapshot=True)
            if price is None:
                message["data"] = None
            self.reply(message)
            return
        user = self.user
        assert user is not None
        seq, data = await stream_db(user_snapshot)(user=user, channel=channel)
        if self.last_seq is None and not self.replaying:
            self.last_seq = seq  # live events from here on are checked for gaps
        self.reply({"type": "snapshot", "channel": channel, "snapshot": True, "seq": seq, "data": data})

    # --- hub sink -----------------------------------------------------------------------

    def stream_message(self, message: StreamMessage) -> None:
        if self.closing:
            return
        if message.channel.startswith(protocol.PRICE_PREFIX):
            self.price_tick(message)
        else:
            self.user_event(message.data)

    def stream_resync(self, channel: str) -> None:
        if not channel.startswith(protocol.PRICE_PREFIX) and self.last_seq is not None and not self.replaying:
            self.spawn(self.catch_up(self.last_seq))

    # --- prices: conflated per socket and symbol ----------------------------------------

    def price_tick(self, message: StreamMessage) -> None:
        channel = message.channel
        if channel not in self.subscriptions:
            return
        key = (message.data.get("bid"), message.data.get("ask"))
        if key == self.price_sent_key.get(channel):
            self.price_pending.pop(channel, None)
            return
        now = asyncio.get_running_loop().time()
        interval = self.price_interval
        last = self.price_sent_at.get(channel)
        if last is None or now - last >= interval:
            self.price_send(message, now)
            return
        self.price_pending[channel] = message  # the latest wins
        if channel not in self.price_timers:
            self.price_timers[channel] = asyncio.get_running_loop().call_later(
                last + interval - now, self.price_flush, channel
            )

    def price_flush(self, channel: str) -> None:
        self.price_timers.pop(channel, None)
        message = self.price_pending.pop(channel, None)
        if message is not None and channel in self.subscriptions and not self.closing:
            self.price_send(message, asyncio.get_running_loop().time())

    def price_send(self, message: StreamMessage, now: float) -> None:
        wire = message.memo.get("wire")
        if wire is None:  # encoded and framed once per tick for every socket of the process
            wire = message.memo["wire"] = protocol.encode(
                protocol.price_message(message.channel, message.data)
            )
            message.memo["frame"] = text_frame(wire.encode())
        self.price_sent_at[message.channel] = now
        self.price_sent_key[message.channel] = (message.data.get("bid"), message.data.get("ask"))
        self.enqueue(wire, message.memo["frame"])

    # --- user events: in order, no gap, no duplicate ------------------------------------

    def user_event(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if not isinstance(seq, int):
            return
        if self.replaying:
            self.held.append(event)
            if len(self.held) > settings.STREAM_OUTBOUND_QUEUE_MAX:
                self.close_soon(CloseCode.SLOW_CONSUMER, "slow_consumer", SLOW_MESSAGE)
            return
        if self.last_seq is not None:
            if seq <= self.last_seq:
                return
            if seq > self.last_seq + 1:  # an earlier event is still on its way: read it from the outbox
                self.held.append(event)
                self.replaying = True
                self.spawn(self.catch_up(self.last_seq))
                return
        self.deliver(event)
        self.last_seq = seq

    def event_text(self, event: dict[str, Any]) -> str | None:
        route = protocol.event_route(str(event.get("type", "")))
        if route is None or not protocol.event_wanted(route, self.subscriptions):
            return None
        return protocol.encode(protocol.event_message(route, event))

    def deliver(self, event: dict[str, Any]) -> None:
        if (text := self.event_text(event)) is not None:
            self.enqueue(text)

    async def resume(self, after_seq: Any) -> None:
        if self.user is None:
            self.reply(protocol.error("auth_required", "Sign in before resume."))
            return
        if not isinstance(after_seq, int) or isinstance(after_seq, bool) or after_seq < 0:
            self.reply(protocol.error("invalid_message", "after_seq: a non-negative integer."))
            return
        if not any(protocol.is_user_channel(c) for c in self.subscriptions):
            # Sent before subscribing (the order the reference client uses): the replay runs
            # right after the user channels' snapshots, before any live event.
            self.resume_after = after_seq
            return
        if self.replaying:
            self.reply(protocol.error("resume_in_progress", "A replay is already running."))
            return
        self.replaying = True
        await self.replay_and_report(after_seq)

    async def replay_and_report(self, after_seq: int) -> None:
        replayed = await self.catch_up(after_seq)
        self.reply(
            {"type": "resumed", "after_seq": after_seq, "replayed": replayed, "last_seq": self.last_seq}
        )

    async def catch_up(self, after_seq: int) -> int:
        """Send every event after ``after_seq`` from the outbox, then the live ones held meanwhile,
        in order, each once. Returns how many were read from the outbox."""
        assert self.user is not None
        user_id = self.user.pk
        self.replaying = True
        cursor, replayed, empty_reads = after_seq, 0, 0
        try:
            while not self.closing:
                batch = await stream_db(selectors.events_after)(
                    user_id=user_id, after_seq=cursor, limit=protocol.RESUME_BATCH
                )
                for event in batch:
                    if (text := self.event_text(event)) is not None:
                        await self.enqueue_waiting(text)
                    cursor, replayed = event["seq"], replayed + 1
                if len(batch) == protocol.RESUME_BATCH:
                    continue
                empty_reads = 0 if batch else empty_reads + 1
                # No await from here to the end of the loop body: nothing is added to ``held`` meanwhile.
                held, self.held = sorted(self.held, key=lambda e: e["seq"]), []
                waiting: list[dict[str, Any]] = []
                for event in held:
                    if event["seq"] <= cursor:
                        continue
                    if waiting or (event["seq"] != cursor + 1 and empty_reads <= EMPTY_REPLAY_RETRIES):
                        waiting.append(event)
                        continue
                    self.deliver(event)
                    cursor = event["seq"]
                if not waiting:
                    self.last_seq = cursor
                    return replayed
                self.held = waiting + self.held
                if empty_reads:
                    await asyncio.sleep(0.05)
            return replayed
        finally:
            self.replaying = False
            if self.last_seq is None or self.last_seq < cursor:
                self.last_seq = cursor

    # --- cancel-on-disconnect -----------------------------------------------------------

    async def cancel_on_disconnect(self, timeout_ms: Any) -> None:
        if self.user is None:
            self.reply(protocol.error("auth_required", "Sign in before cancel_on_disconnect."))
            return
        low, high = protocol.CANCEL_ON_DISCONNECT_MIN_MS, protocol.CANCEL_ON_DISCONNECT_MAX_MS
        if (
            not isinstance(timeout_ms, int)
            or isinstance(timeout_ms, bool)
            or (timeout_ms != 0 and not low <= timeout_ms <= high)
        ):
            self.reply(protocol.error("invalid_message", f"timeout_ms: 0 (off) or {low} to {high}."))
            return
        if timeout_ms:
            await sync_to_async(presence.cod_enable, thread_sensitive=False)(
                user_id=self.user.pk, session_id=self.session_id, timeout_ms=timeout_ms
            )
        else:
            await sync_to_async(presence.cod_disable, thread_sensitive=False)(
                user_id=self.user.pk, session_id=self.session_id
            )
        self.cod_timeout_ms = timeout_ms
        self.reply({"type": "cancel_on_disconnect", "enabled": bool(timeout_ms), "timeout_ms": timeout_ms})


def user_snapshot(*, user: User, channel: str) -> tuple[int, list[dict[str, Any]]]:
    """The user's last event number, then the channel's current objects (at least that new)."""
    seq = selectors.stream_last_seq(user=user)
    if channel == "orders":
        return seq, selectors.orders_open_snapshot(user=user)
    if channel == "positions":
        return seq, selectors.positions_open_snapshot(user=user)
    return seq, selectors.deposits_pending_snapshot(user=user)
