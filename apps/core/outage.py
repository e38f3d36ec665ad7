"""
When the channel layer's Redis is unreachable: close sockets with 4503, log one line, no traceback.

Without this, `RedisChannelLayer` raises a connection error from the consumer's receive loop
(Channels' `await_many_dispatch` awaits `channel_layer.receive()` beside the socket's own
events), the server logs "Exception inside application" with a traceback for every socket,
and the client sees 1011. `RedisPubSubChannelLayer` keeps its receive loop alive (its reader
task retries, logging a traceback a second), but every `group_send`, `group_add` and every
other Redis call of the consumer fails. Either way the error reaches the consumer's
`__call__`: `ChannelLayerOutageMixin` catches it there, once for every handler, and closes the
socket with 4503 so the client reconnects with backoff (static/js/console.js).

`QuietWhenUnreachable` is a logging filter for channels-redis's own records about the same
outage (the pub/sub reader, and the unsubscribe of a consumer that ends during it): one
warning line each, without the traceback. That includes one race of the reconnect: the Pub/Sub
layer's reader task reads its connection without the lock its subscribes and unsubscribes
take, so when Redis comes back, the reader's retry and a subscribe can both reconnect the one
connection and both wait for a reply on it, and asyncio refuses the second reader with
`RuntimeError: readuntil() called while another coroutine is already waiting for incoming
data` (the family of redis/redis-py#2540). The reader logs it and tries again a second later,
as it does for the outage itself; the lobby flows on (apps/auth_ws/tests/test_faults.py saw it
once, under load).
"""

import asyncio
import logging
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .limits import CLOSE_UNAVAILABLE

logger = logging.getLogger(__name__)

# What "Redis is unreachable" raises: redis-py's own errors once its retries are spent, and
# the socket errors and timeouts under them.
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    asyncio.TimeoutError,
)


def is_unreachable(error: BaseException | None) -> bool:
    """Whether this error, or one it was raised from or during, says Redis is unreachable."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, UNREACHABLE):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


class ChannelLayerOutageMixin:
    """
    For consumers of the channel layer: when Redis is unreachable, close with 4503.

    Put it first among the bases. A subclass that keeps state in Redis overrides
    `layer_unreachable` to forget it without calling Redis, then calls super().
    """

    accepted = False
    closing = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the consumer; a Redis outage anywhere inside it closes the socket with 4503."""

        async def watched_send(message: dict[str, Any]) -> None:
            # Whether the socket was accepted, or its close already sent, decides how to end.
            if message["type"] == "websocket.accept":
                self.accepted = True
            elif message["type"] == "websocket.close":
                self.closing = True
            await send(message)

        # Channels sets self.base_send only after the pub/sub layer has subscribed (which
        # may be what fails), so keep our own handle on the server's send.
        self.outage_send = watched_send
        try:
            await super().__call__(scope, receive, watched_send)  # type: ignore[misc]
        except Exception as error:
            if not is_unreachable(error):
                raise
            await self.layer_unreachable(error)

    async def layer_unreachable(self, error: BaseException) -> None:
        """Close the socket with 4503, saying why in one log line."""
        logger.info(
            "closing %s with %d: channel layer unreachable (%s: %s)",
            self.scope.get("path"),  # type: ignore[attr-defined]
            CLOSE_UNAVAILABLE,
            type(error).__name__,
            error,
        )
        await self.close_unavailable()

    async def close_unavailable(self) -> None:
        """Send close 4503 (accepting first, or the client would only see a refused handshake)."""
        if self.closing:
            return
        try:
            if not self.accepted:
                # RedisPubSubChannelLayer subscribes the consumer's channel before connect().
                await self.outage_send({"type": "websocket.accept"})
            await self.outage_send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
        except Exception as error:  # the client left first: nothing to tell it
            logger.debug("close %d not sent: %r", CLOSE_UNAVAILABLE, error)


# What asyncio says when a second coroutine reads a stream another one is reading.
READER_RACE = "called while another coroutine is already waiting for incoming data"


class QuietWhenUnreachable(logging.Filter):
    """Turn channels-redis's tracebacks about an unreachable Redis into one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record; strip the traceback from channels-redis's outage records."""
        if not (record.name.startswith("channels_redis") and record.exc_info):
            return True
        error = record.exc_info[1]
        # A consumer that ends during an outage may be cancelled while channels-redis retries
        # its unsubscribe: the same outage, seen from the cleanup.
        if is_unreachable(error):
            why = "Redis unreachable"
        elif isinstance(error, asyncio.CancelledError):
            why = "cancelled while cleaning up"
        elif isinstance(error, RuntimeError) and READER_RACE in str(error):
            why = "two readers of one reconnecting connection"
        else:
            why = ""
        if why:
            record.msg = f"{record.getMessage()} ({why}: {type(error).__name__}: {error})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.WARNING
            record.levelname = "WARNING"
        return True
