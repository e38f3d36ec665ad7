"""
Building blocks for consumers of every app.

Channels (4.3) makes an async consumer's `dispatch` await `aclose_old_connections()` before
every handler: a hop to the thread-sensitive executor thread and back, so that consumers which
use Django's async ORM (`await Model.objects.aget(...)`, which runs on that thread) never reuse
a database connection that went stale or outlived `CONN_MAX_AGE` during a long-lived socket.
An async consumer that never touches the database pays that hop on every message for nothing;
`make bench` measures what it costs (docs/benchmarks.md).

A sync consumer pays two thread crossings per message: Channels runs each handler in the
worker thread (`database_sync_to_async`), and each `self.send` there goes back to the event
loop through `async_to_sync`, which blocks the thread until the loop has sent the message.
`QueuedSendMixin` removes the wait: the handler hands its messages to the loop in order and
carries on; the loop sends them oldest first. It keeps what a handler may do (ORM, blocking
code), the order of sends and closes, and every send's failure, which the handler's next
send, or the end of the handler, raises instead of the failing send itself. The setting
`SYNC_SEND` ("stock", the default, or "queued"; env-overridable) switches it for the whole
process. The catch: the handler's thread and the event loop now run at the same time and
take turns holding the GIL. With a core to spare that is +50-80% round trips; on a core that
other processes crowd, the loop waits for the GIL behind the busy worker thread and the
queued style can be several times slower. docs/styles.md, "What each choice costs", has the figures.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from django.conf import settings

logger = logging.getLogger(__name__)


class NoDatabaseMixin:
    """
    For async consumers that never touch the database: dispatch without the per-message
    database-connection cleanup (a thread hop).

    Put it first among the bases: `class Echo(NoDatabaseMixin, AsyncWebsocketConsumer)`.
    Do not use it on a consumer that calls the async ORM, or sync code through `sync_to_async`
    that queries: nothing would close their stale connections. `database_sync_to_async` is fine
    either way (it cleans up around each call in the thread). Sync consumers never need it:
    their handlers already run in that thread, where Channels cleans up around each one.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler named after the message's type, directly on the event loop."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class NoRouteConsumer(NoDatabaseMixin, AsyncConsumer):
    """
    The last route: refuses the handshake of a socket whose path no app serves.

    Without it URLRouter raises, which the server reports as HTTP 500 with a traceback in its
    log. A close before accept is the clean refusal (daphne answers HTTP 403).
    """

    async def websocket_connect(self, event: dict[str, Any]) -> None:
        """Refuse: no consumer serves this path."""
        logger.info("no WebSocket route for %s", self.scope["path"])
        await self.send({"type": "websocket.close"})

    async def websocket_disconnect(self, event: dict[str, Any]) -> None:
        """The refused socket is gone."""
        raise StopConsumer()


class Outbox:
    """
    The messages a sync handler sent, delivered in order by the event loop.

    The handler's thread only hands each message over (`put_threadsafe`, which never waits);
    the loop appends it and one task at a time awaits the real ASGI `send` for each, oldest
    first. The first exception a send raises is kept: nothing after it is sent, the handler's
    next `send` raises it, and the consumer's dispatch raises it when the handler returns.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[dict], Awaitable]) -> None:
        self.loop = loop
        self.send = send
        self.pending: deque[dict[str, Any]] = deque()
        self.task: asyncio.Task | None = None
        self.failure: BaseException | None = None
        self.empty = asyncio.Event()
        self.empty.set()

    def put_threadsafe(self, message: dict[str, Any]) -> None:
        """From the handler's thread: queue a message for the loop, without waiting for it."""
        if self.failure is not None:
            raise self.failure
        # Callbacks run in the order they were scheduled: that is what keeps sends in order.
        self.loop.call_soon_threadsafe(self.put, message)

    def put(self, message: dict[str, Any]) -> None:
        """On the loop: queue a message and make sure a task is delivering."""
        self.pending.append(message)
        if self.task is None:
            self.empty.clear()
            self.task = self.loop.create_task(self.deliver())

    async def deliver(self) -> None:
        """Send what is pending, oldest first, until nothing is."""
        try:
            while self.pending:
                message = self.pending.popleft()
                if self.failure is None:
                    try:
                        await self.send(message)
                    except Exception as exc:  # kept for the handler: see the class docstring
                        self.failure = exc
        finally:
            self.task = None
            self.empty.set()

    async def drained(self) -> None:
        """Wait until every message queued so far was sent; raise a send's exception."""
        await self.empty.wait()
        if self.failure is not None:
            raise self.failure


class QueuedSendMixin:
    """
    For sync consumers: `self.send(...)` in a handler queues the message for the event loop
    and returns at once, instead of waiting for the loop to send it (`SYNC_SEND = "queued"`).

    Put it first among the bases: `class Echo(QueuedSendMixin, WebsocketConsumer)`. Handlers
    still run in the worker thread and may do anything they did (ORM, blocking calls). Sends
    keep their order, a close after sends goes out after them, and every message a handler
    sent is out before the next event is dispatched. What changes: a send's exception (e.g.
    the server refusing a message) is raised by the handler's next `send`, or by dispatch once
    the handler returns, not by the `send` that caused it. `SYNC_SEND = "stock"` (or the
    class attribute `sync_send`) is Channels' own behaviour: the default, because the gain
    turns into a loss when the server's core is crowded (module docstring).
    """

    sync_send: str | None = None  # "queued" | "stock"; None: settings.SYNC_SEND

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        """Set up the outbox when this consumer queues its sends, then run as usual."""
        queued = (self.sync_send or settings.SYNC_SEND) == "queued"
        self.outbox = Outbox(asyncio.get_running_loop(), send) if queued else None
        await super().__call__(scope, receive, send)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Run the handler in the worker thread; return once everything it sent is out."""
        if self.outbox is None:
            return await super().dispatch(message)
        # AsyncConsumer.__call__ sets base_send to async_to_sync(send), which SyncConsumer.send
        # calls from the handler's thread and which blocks it until the loop has sent.
        self.base_send = self.outbox.put_threadsafe
        try:
            await super().dispatch(message)
        finally:
            await self.outbox.empty.wait()
        await self.outbox.drained()
