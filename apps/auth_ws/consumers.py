"""
The lobby: sockets that know who is on the other end.

`AuthMiddlewareStack` (config/asgi.py) reads the handshake's session cookie and puts the user in
`scope["user"]` once, before the consumer starts. Everything here trusts that value and nothing
the client says about itself. A user's sockets share a per-user group, so logging out over HTTP,
on any server process, reaches every one of them (apps/core/sessions.py).
"""

import asyncio
import contextlib
import logging
import os
import random
import weakref
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from apps.core import lobby, protocol, throttle
from apps.core.coalesce import Coalesced
from apps.core.consumers import NoDatabaseMixin
from apps.core.limits import Limiter
from apps.core.outage import ChannelLayerOutageMixin, is_unreachable
from apps.core.sessions import CLOSE_UNAUTHENTICATED, SessionEndedMixin, user_group

from .presence import Presence, get_presence

logger = logging.getLogger(__name__)

LOBBY = lobby.LOBBY_GROUP
# How long a socket of a shutting-down server may spend leaving the lobby (its presence entry,
# its groups) before the process exits regardless.
SHUTDOWN_LEAVE_SECONDS = 2.0
MAX_CHAT_CHARS = 500


def resume_after(scope: dict[str, Any]) -> int | None:
    """
    The last chat id the client saw, from `?after=<id>` in the socket's URL; None if absent.

    Raises BadMessage for anything but one decimal integer from 0 to lobby.MAX_ID.
    """
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    values = query.get("after")
    if values is None:
        return None
    value = values[-1] if len(values) == 1 else ""
    if not (value.isascii() and value.isdigit() and len(value) <= 16) or int(value) > lobby.MAX_ID:
        raise protocol.BadMessage(
            "invalid_after",
            f"after must be one chat id, an integer from 0 to {lobby.MAX_ID}; not resuming",
        )
    return int(value)


def _retrieve(task: asyncio.Task) -> None:
    # A leave nobody waited for to the end (a shutdown gave up on it) must not be reported
    # later as "Task exception was never retrieved", with a traceback.
    if not task.cancelled():
        task.exception()


# One notice per process and event loop for any number of presence changes that happen together:
# every socket that hears it reads the list fresh, so the last notice shows every change before
# it (apps/core/coalesce.py). A herd of a thousand sockets leaving would otherwise send a
# thousand notices, each to every socket still in the lobby.
_notices: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalesced[None]] = (
    weakref.WeakKeyDictionary()
)


async def tell_the_lobby() -> None:
    """Tell every lobby socket, on every process, that presence changed (coalesced)."""
    loop = asyncio.get_running_loop()
    notice = _notices.get(loop)
    if notice is None:
        notice = _notices[loop] = Coalesced(
            lambda: get_channel_layer().group_send(LOBBY, {"type": "presence.changed"})
        )
    await notice()


class LobbyConsumer(
    ChannelLayerOutageMixin, SessionEndedMixin, NoDatabaseMixin, AsyncJsonWebsocketConsumer
):
    """
    Anonymous sockets are accepted, then closed with 4401; logged-in ones join the lobby.

    Async because a lobby socket mostly waits: for group messages from the channel layer, for
    Redis, for its heartbeat timer. Waiting on the event loop costs nothing, where a sync
    consumer would hop to a worker thread for every group message and could not keep a timer.
    JSON because every message, in and out, is an envelope with a "type". NoDatabaseMixin
    because its only database reads (the user, at connect and at each heartbeat) go through
    `channels.auth.get_user`, a `database_sync_to_async` that tidies connections itself (in
    docs/benchmarks.md, a broadcast reached 1,000 such sockets in 197 ms instead of 349 ms).
    """

    joined = False
    # A resume sent every chat message up to this id: live copies of them are dropped. Only
    # those: live messages from several processes may arrive out of id order, and each once.
    resumed_to = 0
    heartbeat: asyncio.Task | None = None
    leaving: asyncio.Task | None = None
    presence: Presence

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the consumer; its heartbeat must not outlive it, however it ends."""
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # Daphne cancels every application when it shuts down (SIGTERM), and waits for
            # them: a socket still in the lobby is told to come back later (4503, so the page
            # reconnects at once, to another process or this one restarted), and its presence
            # entry goes now rather than when it expires.
            if self.joined:
                logger.info("lobby socket of %s closed with 4503: shutting down", self.username)
                await self.close_unavailable()
                await self.leave_within(SHUTDOWN_LEAVE_SECONDS)
            elif self.leaving is not None and not self.leaving.done():
                # The socket was gone before the cancellation came (daphne's shutdown can drop
                # it first): no 4503 can be sent, but the leave must finish (bounded), or the
                # entry would keep the user online until it expires.
                logger.info("lobby socket of %s was leaving as the server shut down", self.username)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self.leaving), SHUTDOWN_LEAVE_SECONDS)
            raise
        finally:
            # A cancelled application never gets websocket.disconnect: without this its
            # heartbeat would keep a socket that no longer exists online forever.
            if self.heartbeat is not None:
                self.heartbeat.cancel()

    async def connect(self) -> None:
        """Accept; say hello and join the lobby if the session has a user, else close 4401."""
        self.user = self.scope["user"]
        await self.accept(protocol.select_subprotocol(self.scope))
        if not self.user.is_authenticated:
            # Accepted first: a close before accept would reach the browser as 1006, not 4401.
            await self.close(CLOSE_UNAUTHENTICATED, "log in first: this socket has no user")
            return
        self.username = self.user.get_username()
        self.limiter = Limiter("lobby")
        self.presence = get_presence()
        # `channel`: this socket's name in the channel layer, the one its groups hold (a load
        # test checks the lobby group against the channels of the sockets still open).
        await self.send_json(
            {
                "type": "hello",
                "user": self.username,
                "process": os.getpid(),
                "channel": self.channel_name,
            }
        )
        # Joined before the joining is done: a socket that goes (or a server that gives up on
        # it) halfway through must still leave whatever of the lobby it got into. It is in the
        # user's group already (SessionEndedMixin): a logout anywhere closes this socket.
        self.joined = True
        await self.channel_layer.group_add(LOBBY, self.channel_name)
        # In the group before reading the history: a message stored after the read arrives
        # live. Channels dispatches one message at a time, so live ones wait in the channel
        # layer until connect() returns, and lobby_chat drops those the history already sent.
        await self.resume()
        if await self.presence.join(self.channel_name, self.username):
            await tell_the_lobby()
        else:
            await self.send_presence()  # nobody else needs to hear of another tab
        self.heartbeat = asyncio.create_task(self.beat())

    async def resume(self) -> None:
        """
        Send what the client missed since `?after=<id>`, announced by a `resume` envelope; a
        fresh client (no `after`) gets the lobby's recent messages the same way, `"after":
        null`, as a fresh lobby stream does (apps/sse).
        """
        try:
            after = resume_after(self.scope)
        except protocol.BadMessage as bad:
            await self.send_json(bad.envelope)
            return
        found = await (lobby.recent() if after is None else lobby.since(after))
        await self.send_json(
            {
                "type": "resume",
                "after": after,
                "missed": len(found.messages),
                "complete": found.complete,
                "oldest": found.oldest,
            }
        )
        for message in found.messages:
            await self.send_chat(message)
        if found.messages:
            self.resumed_to = found.messages[-1]["id"]
        elif found.complete and after is not None:
            self.resumed_to = after  # live copies of what the client has seen are dropped

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Check limits and decode; bad input gets an error envelope, never a traceback."""
        if not self.joined:
            return  # a socket we are closing: whatever it still sends goes nowhere
        if refusal := self.limiter.check(text_data, bytes_data):
            await self.end(refusal.code, refusal.reason)
            return
        try:
            await self.receive_json(protocol.decode(text_data))
        except protocol.BadMessage as bad:
            await self.send_json(bad.envelope)

    async def receive_json(self, content: dict[str, Any]) -> None:
        """Act on one command: `chat`, `who` or `info`."""
        match content["type"]:
            case "chat":
                text = content.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise protocol.BadMessage("invalid_text", 'chat needs a non-empty "text"')
                if len(text) > MAX_CHAT_CHARS:
                    raise protocol.BadMessage(
                        "text_too_long", f"chat text is limited to {MAX_CHAT_CHARS} characters"
                    )
                if not await throttle.allow("lobby_per_user", throttle.of_user(self.user)):
                    # One budget for all of the user's sockets and POSTs, on every process:
                    # this socket stays open (another tab of the user may be the one flooding).
                    raise protocol.BadMessage(
                        "rate_limited", "too many lobby messages from you: slow down"
                    )
                # The sender is whoever the session says; a "user" field in content is ignored.
                try:
                    await lobby.publish(self.username, text)
                except lobby.NotSaved as error:
                    # Not announced: the sender's own `chat` envelope never comes (docs/
                    # reliability.md, "Redis failover").
                    raise protocol.BadMessage(error.code, str(error)) from None
            case "who":
                await self.send_presence()
            case "info":
                await self.send_json(protocol.info(self))
            case _:
                raise protocol.BadMessage(
                    "unknown_type", f"unknown type {content['type']!r}; try chat, who or info"
                )

    async def send_presence(self) -> None:
        """Send this socket the users online now, read fresh from the store."""
        await self.send_json({"type": "presence", "users": await self.presence.online()})

    # ---------------------------------------------------------- messages from the channel layer

    async def lobby_chat(self, event: dict[str, Any]) -> None:
        """Someone in the lobby said something (unless the resume already sent it)."""
        if self.joined and event["id"] > self.resumed_to:
            await self.send_chat(event)

    async def send_chat(self, message: dict[str, Any]) -> None:
        """Send one chat message, stored or live, as a `chat` envelope."""
        keys = ("id", "user", "text", "at")
        await self.send_json({"type": "chat", **{key: message[key] for key in keys}})

    async def presence_changed(self, event: dict[str, Any]) -> None:
        """Someone came or went: read the list now, so the last notice always shows the truth."""
        if self.joined:
            await self.send_presence()

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out somewhere (apps/core/sessions.py): leave the lobby, close 4401."""
        self.session_over = True
        await self.end(CLOSE_UNAUTHENTICATED, event["reason"])

    # ---------------------------------------------------------- staying, and leaving

    async def beat(self) -> None:
        """Every third of the TTL: check the session still holds, and refresh presence."""
        interval = settings.PRESENCE_TTL / 3
        # The first beat at a random point of the interval: sockets that arrived in a herd
        # would otherwise beat in a herd, every interval, for as long as they stay.
        await asyncio.sleep(random.uniform(0, interval))
        # `joined` is read after every step: leave() cancels this task, but on Python 3.11 a
        # Redis command can swallow the cancellation (redis-py's asyncio.wait_for around its
        # socket writes; python/cpython#86296), and a heartbeat that went on beating kept
        # leave() waiting until daphne killed the consumer, its leave never done.
        while self.joined:
            try:
                if not await self.session_holds():
                    await self.end(CLOSE_UNAUTHENTICATED, "session ended")
                    return
                # Also prunes expired entries: a dead process's users go offline here.
                if self.joined and await self.presence.join(self.channel_name, self.username):
                    await tell_the_lobby()
            except Exception as error:
                if is_unreachable(error):
                    # No heartbeat can keep this socket in the lobby: close it, 4503.
                    await self.layer_unreachable(error)
                    return
                logger.exception("lobby heartbeat of %s failed; next beat retries", self.username)
            if self.joined:
                await asyncio.sleep(interval)

    async def session_holds(self) -> bool:
        """Whether the session still logs in this user (not expired, flushed or re-keyed)."""
        store = import_module(settings.SESSION_ENGINE).SessionStore
        user = await get_user({"session": store(self.scope["session"].session_key)})
        return user.is_authenticated and user.pk == self.user.pk

    async def end(self, code: int, reason: str) -> None:
        """Close from the server's side, leaving the lobby first so nothing follows the close."""
        if self.joined:
            await self.leave()
            await self.close(code, reason)

    async def leave(self) -> None:
        """Stop the heartbeat, leave the groups, and drop this socket's presence entry."""
        if not self.joined:
            return
        self.joined = False
        # A task of its own, shielded, from stopping the heartbeat to the last Redis call:
        # cancelling this consumer at any point of it (a server shutting down, or daphne giving
        # up on a consumer whose leave waits its turn in a herd) must not stop it halfway, with
        # the socket's channel left in the groups or its presence entry still there.
        self.leaving = asyncio.ensure_future(self.forget(asyncio.current_task()))
        self.leaving.add_done_callback(_retrieve)
        await asyncio.shield(self.leaving)

    async def forget(self, caller: asyncio.Task | None = None) -> None:
        """Stop the heartbeat, leave the groups, drop the presence entry, tell the lobby."""
        if self.heartbeat is not None and self.heartbeat is not caller:
            self.heartbeat.cancel()
            await asyncio.wait({self.heartbeat})  # its last refresh must not follow our removal
        await self.channel_layer.group_discard(LOBBY, self.channel_name)
        # Channels leaves the consumer's groups at disconnect, which a shutdown never delivers.
        await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
        if await self.presence.leave(self.channel_name, self.username):
            await tell_the_lobby()

    async def leave_within(self, seconds: float) -> None:
        """Leave, giving up quietly after `seconds` or if Redis is unreachable."""
        try:
            await asyncio.wait_for(self.leave(), seconds)
        except Exception as error:
            logger.info("%s left without cleaning up: %r", self.channel_name, error)

    async def layer_unreachable(self, error: BaseException) -> None:
        """Redis is unreachable: forget the lobby without calling it, and close 4503."""
        self.joined = False  # leave() would call Redis; the presence entry expires by itself
        if self.heartbeat is not None and self.heartbeat is not asyncio.current_task():
            self.heartbeat.cancel()
        await super().layer_unreachable(error)

    async def disconnect(self, code: int) -> None:
        """The socket is gone, however it went."""
        await self.leave()


class StrictLobbyConsumer(LobbyConsumer):
    """The same lobby, but an anonymous handshake is refused before accept (HTTP 403)."""

    async def connect(self) -> None:
        """Refuse anonymous handshakes; let everyone else into the lobby."""
        if not self.scope["user"].is_authenticated:
            # A close before accept rejects the handshake: daphne answers HTTP 403, and the
            # browser reports `error`, then close 1006. The application's code never arrives.
            await self.close()
            return
        await super().connect()
