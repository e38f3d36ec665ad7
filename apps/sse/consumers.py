"""
Server-Sent Events from `AsyncHttpConsumer`: a response that stays open, and a consumer that
still hears its client and its channel layer while it streams.

Why the stock class cannot stream and listen at once (channels#1249, #1302, #1747):
`AsyncHttpConsumer.http_request` awaits `handle()` and, as soon as it returns, calls
`disconnect()` and raises `StopConsumer`. A `handle()` that returns to wait for group messages
is therefore stopped at once. One that loops inside `handle()` holds the consumer's only
dispatch loop: `http.disconnect` and group messages wait in their queues, unseen, until the
loop ends, so a client that leaves is noticed only at the next failed write, and a stream fed
by a group never hears it.

Our answer, `EventStreamConsumer`: `handle()` only *opens* the stream (status, headers, the
`retry:` hint, a first comment) and returns; `http_request` then returns too, without
`StopConsumer`, so the dispatch loop goes on. From then on the stream is driven by events,
handled one at a time by that loop: the client's `http.disconnect`, the channel layer's group
messages, and the consumer's own timers (`later()` drops an event into the consumer's inbox
after a delay: ticks, keep-alive comments). Nothing runs beside the loop, so writes never
interleave and no task can outlive the consumer; when the client goes, the next event handled
is `http.disconnect`, and the consumer cancels its timers, leaves its groups and ends.
"""

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings

from apps.core import lobby, origins
from apps.core.connections import OPEN
from apps.core.consumers import NoDatabaseMixin
from apps.core.outage import UNREACHABLE
from apps.core.sessions import user_group

logger = logging.getLogger(__name__)

MAX_CHAT_CHARS = 500
# How long EventSource should wait before it retries a stream the server could not serve.
UNAVAILABLE_RETRY_MS = 10_000
# Event ids are integers a browser holds exactly (JavaScript numbers, below 2**53).
MAX_EVENT_ID = 2**53 - 1


class BadRequest(Exception):
    """A request the stream refuses with a plain-text 4xx, before any event is sent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def format_event(data: Any, *, id: int | None = None, event: str | None = None) -> bytes:
    """One event in the text/event-stream format: optional `id:` and `event:`, one `data:`."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    # json.dumps escapes newlines inside strings, so the data always fits on one `data:` line.
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode()


def last_event_id(scope: dict[str, Any]) -> int | None:
    """The `Last-Event-ID` a reconnecting EventSource sends (the last `id:` it saw), or None."""
    for name, value in scope.get("headers", ()):
        if name == b"last-event-id":
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 16 or int(text) > MAX_EVENT_ID:
                raise BadRequest(400, f"Last-Event-ID must be an integer from 0 to {MAX_EVENT_ID}")
            return int(text)
    return None


class EventStreamConsumer(NoDatabaseMixin, AsyncHttpConsumer):
    """
    An `AsyncHttpConsumer` whose response stays open: events come from the client, the
    channel layer and the consumer's own timers, through one dispatch loop.

    Subclasses implement `handle()`: refuse with `BadRequest`, or call `open_stream()` and
    return. Then `send_event()` from any handler; `end_stream()` finishes the response.
    """

    # Only consumers that join groups need a channel (and a receive on the layer).
    uses_channel_layer = False
    groups: tuple[str, ...] = ()
    streaming = False
    counted = False  # among the user's and address's open connections (connections.py)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one request: dispatch the client's, the channel layer's and our own events."""
        self.scope = scope
        self.base_send = send
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.joined: list[str] = []
        sources = [receive, self.inbox.get]
        self.channel_layer = None
        if self.uses_channel_layer:
            self.channel_layer = get_channel_layer(self.channel_layer_alias)
            self.channel_name = await self.channel_layer.new_channel()
            sources.append(functools.partial(self.channel_layer.receive, self.channel_name))
        try:
            # await_many_dispatch cancels and awaits its receive tasks however it ends.
            await await_many_dispatch(sources, self.dispatch)
        except StopConsumer:
            pass
        except UNREACHABLE as error:
            await self.unavailable(error)
        finally:
            # Also when the server cancels us: no timer fires and no group keeps our channel.
            await self.stop()
            if self.counted:
                OPEN.release(scope)

    async def http_request(self, message: dict[str, Any]) -> None:
        """Collect the body, then let `handle()` open the stream; stay alive if it did."""
        if "body" in message:
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        try:
            if self.scope["method"] not in ("GET", "HEAD"):
                raise BadRequest(405, "an event stream is read with GET")
            if not origins.stream_allowed(self.scope):
                # Another origin's page (another port or scheme of this host, too) would get
                # the visitor's cookie along: as for sockets, only the site's own pages may ask.
                raise BadRequest(403, "this stream is for this site's own pages")
            if refusal := OPEN.admit(self.scope):
                raise BadRequest(429, refusal)
            self.counted = True
            await self.handle(b"".join(self.body))
        except BadRequest as refusal:
            await self.send_response(
                refusal.status,
                f"{refusal}\n".encode(),
                headers=[(b"content-type", b"text/plain; charset=utf-8")],
            )
        if not self.streaming:
            raise StopConsumer()
        # Streaming: return without StopConsumer, so the loop keeps dispatching events.

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        """The client went away (or the response ended): stop at once."""
        raise StopConsumer()

    # ---------------------------------------------------------------- the stream

    async def open_stream(self) -> None:
        """Send the status, headers, the retry hint and a first comment (it flushes them)."""
        await self.send_headers(
            status=200,
            headers=[
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                # Proxies (nginx) would otherwise buffer the stream and deliver it in lumps.
                (b"x-accel-buffering", b"no"),
            ],
        )
        self.streaming = True
        retry = f"retry: {settings.SSE_RETRY_MS}\n: stream opened by process {os.getpid()}\n\n"
        await self.send_body(retry.encode(), more_body=True)
        self.later(settings.SSE_KEEPALIVE_SECONDS, {"type": "sse.keepalive"})

    async def send_event(
        self, data: Any, *, id: int | None = None, event: str | None = None
    ) -> None:
        """Write one event to the open stream."""
        await self.send_body(format_event(data, id=id, event=event), more_body=True)

    async def end_stream(self) -> None:
        """Finish the response (the browser's EventSource reconnects by itself) and stop."""
        self.streaming = False
        await self.send_body(b"", more_body=False)
        raise StopConsumer()

    async def unavailable(self, error: BaseException) -> None:
        """
        Redis is unreachable: end the stream with an `unavailable` event and a longer `retry:`,
        so EventSource comes back later (and resumes with Last-Event-ID). One log line.
        """
        logger.info("ending %s: channel layer unreachable (%r)", self.scope["path"], error)
        if not self.streaming:
            await self.open_stream()
        notice = format_event({"retry_ms": UNAVAILABLE_RETRY_MS}, event="unavailable")
        await self.send_body(f"retry: {UNAVAILABLE_RETRY_MS}\n".encode() + notice)
        self.streaming = False

    def later(self, delay: float, event: dict[str, Any]) -> None:
        """Dispatch `event` to this consumer after `delay` seconds (one timer per event type)."""
        if previous := self.timers.get(event["type"]):
            previous.cancel()
        loop = asyncio.get_running_loop()
        self.timers[event["type"]] = loop.call_later(delay, self.inbox.put_nowait, event)

    async def sse_keepalive(self, event: dict[str, Any]) -> None:
        """A comment line: EventSource ignores it, but proxies see the response is alive."""
        await self.send_body(b": keep-alive\n\n", more_body=True)
        self.later(settings.SSE_KEEPALIVE_SECONDS, event)

    # ---------------------------------------------------------------- groups, and the end

    async def join(self, group: str) -> None:
        """Receive this group's messages for as long as the stream lives."""
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def stop(self) -> None:
        """Cancel every timer and leave every group; safe to call more than once."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        while self.joined:
            group = self.joined.pop()
            # Redis gone: nothing to tell it; channels-redis expires the membership itself.
            with contextlib.suppress(*UNREACHABLE):
                await self.channel_layer.group_discard(group, self.channel_name)


class TicksConsumer(EventStreamConsumer):
    """A tick a second: `id:` counts from 1, and `Last-Event-ID: k` resumes at k + 1."""

    async def handle(self, body: bytes) -> None:
        """Open the stream at the id after the client's last; `?per_stream=N` ends it after N."""
        resumed_from = last_event_id(self.scope)
        self.next_id = (resumed_from or 0) + 1
        self.per_stream = query_int(self.scope, "per_stream", default=0, maximum=1000)
        self.sent = 0
        await self.open_stream()
        # A named event: only addEventListener("hello", ...) sees it, never onmessage.
        await self.send_event(
            {
                "process": os.getpid(),
                "resumed_from": resumed_from,
                "first_id": self.next_id,
                "per_stream": self.per_stream,
                "interval": settings.SSE_TICK_SECONDS,
            },
            event="hello",
        )
        self.later(settings.SSE_TICK_SECONDS, {"type": "sse.tick"})

    async def sse_tick(self, event: dict[str, Any]) -> None:
        """Send the next tick; after `per_stream` of them, say bye and end the response."""
        await self.send_event({"n": self.next_id, "at": time.time()}, id=self.next_id)
        self.next_id += 1
        self.sent += 1
        if self.per_stream and self.sent >= self.per_stream:
            await self.send_event(
                {"last_id": self.next_id - 1, "retry_ms": settings.SSE_RETRY_MS}, event="bye"
            )
            await self.end_stream()
        self.later(settings.SSE_TICK_SECONDS, event)


class LobbyStreamConsumer(EventStreamConsumer):
    """The lobby's chat as `chat` events for a logged-in user; `Last-Event-ID` resumes it."""

    uses_channel_layer = True

    async def handle(self, body: bytes) -> None:
        """Refuse anonymous requests (403); join the lobby, then replay what the client missed."""
        user = self.scope["user"]
        if not user.is_authenticated:
            raise BadRequest(403, "log in first: the lobby stream is for logged-in users")
        resumed_from = last_event_id(self.scope)
        # The user's group: a logout on any process ends this stream at once (session_ended).
        await self.join(user_group(user.pk))
        # Join before reading the history: a message published in between arrives both ways,
        # and the id check in lobby_chat drops the second copy.
        await self.join(lobby.LOBBY_GROUP)
        await self.open_stream()
        await self.send_event(
            {"user": user.get_username(), "process": os.getpid(), "resumed_from": resumed_from},
            event="hello",
        )
        self.last_id = resumed_from or 0
        if resumed_from is None:
            # A fresh stream: the lobby's recent messages, as a fresh socket gets them.
            for message in (await lobby.recent()).messages:
                await self.send_chat(message)
        else:
            await self.catch_up(report_gap=True)
        self.later(settings.SSE_SESSION_CHECK_SECONDS, {"type": "sse.session_check"})

    async def session_ended(self, event: dict[str, Any]) -> None:
        """
        The user logged out, on this process or another (apps/core/sessions.py): say `bye` and
        end the stream (EventSource reconnects, gets 403, and stops).
        """
        await self.send_event({"reason": event.get("reason", "session ended")}, event="bye")
        await self.end_stream()

    async def sse_session_check(self, event: dict[str, Any]) -> None:
        """
        The user was read once, at the request. A logout ends the stream through the user's
        group; a session that ends otherwise (expired, flushed from the database) is found
        here: every few seconds, check the session still logs this user in.
        """
        store = import_module(settings.SESSION_ENGINE).SessionStore
        user = await get_user({"session": store(self.scope["session"].session_key)})
        if not user.is_authenticated or user.pk != self.scope["user"].pk:
            await self.send_event({"reason": "the session ended"}, event="bye")
            await self.end_stream()
        self.later(settings.SSE_SESSION_CHECK_SECONDS, event)

    async def catch_up(self, report_gap: bool) -> None:
        """Send, from the history, every message after the last one this client has."""
        resume = await lobby.since(self.last_id)
        if report_gap and not resume.complete:
            # The history no longer reaches back that far: say what is lost, then go on.
            await self.send_event({"after": self.last_id, "oldest": resume.oldest}, event="gap")
        for message in resume.messages:
            await self.send_chat(message)

    async def send_chat(self, message: dict[str, Any]) -> None:
        """One chat message, its lobby id as the event id."""
        if message["id"] <= self.last_id:
            return  # already sent: from the history, or an earlier copy
        await self.send_event(
            {key: message[key] for key in ("id", "user", "text", "at")},
            id=message["id"],
            event="chat",
        )
        self.last_id = message["id"]

    async def lobby_chat(self, event: dict[str, Any]) -> None:
        """A message from the lobby group (a socket, or the POST view, published it)."""
        if self.last_id and event["id"] > self.last_id + 1:
            # One or more messages are still on their way (or were lost): read them from the
            # history first, so this client always sees ids in order, each once.
            await self.catch_up(report_gap=True)
        await self.send_chat(event)

    async def presence_changed(self, event: dict[str, Any]) -> None:
        """The socket lobby's notice to the same group: presence is not part of this stream."""


def query_int(scope: dict[str, Any], name: str, *, default: int, maximum: int) -> int:
    """An integer query parameter within 0..maximum, or a 400."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    if not values:
        return default
    text = values[-1]
    if not text.isdigit() or int(text) > maximum:
        raise BadRequest(400, f"{name} must be an integer from 0 to {maximum}")
    return int(text)
