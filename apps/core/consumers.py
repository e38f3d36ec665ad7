"""
Building blocks for consumers of every app.

Channels (4.3) makes an async consumer's `dispatch` await `aclose_old_connections()` before
every handler: a hop to the thread-sensitive executor thread and back, so that consumers which
use Django's async ORM (`await Model.objects.aget(...)`, which runs on that thread) never reuse
a database connection that went stale or outlived `CONN_MAX_AGE` during a long-lived socket.
An async consumer that never touches the database pays that hop on every message for nothing;
`make bench` measures what it costs (docs/benchmarks.md).
"""

import logging
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer

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
