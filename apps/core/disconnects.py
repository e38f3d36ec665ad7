"""
Clients that leave without saying goodbye: one place where every consumer meets them.

A consumer sends while its client is already gone all the time: the client reset the TCP
connection, failed the protocol, or sent its close frame while an echo or a group message was
on its way through the application. The ASGI server then raises inside the consumer's
`await send(...)` (sync consumers get the same error back through `async_to_sync`), the
consumer dies, and the server logs "Exception inside application" with a traceback
(channels#1820, open upstream). What each server raises:

- daphne: autobahn's `sendMessage` raises `autobahn.exception.Disconnected` ("Attempt to send
  on a closed protocol") whenever the protocol has left its OPEN state (the client's close
  frame arrived, or autobahn failed the connection) but the TCP connection is not closed yet,
  so daphne has not marked the connection as gone. With a client that stops reading, that
  window lasts until the client's socket finally dies.
- uvicorn: `ClientDisconnected` (an `OSError`) once the connection is lost, and a
  `RuntimeError` ("Unexpected ASGI message ... after sending 'websocket.close'") when uvicorn
  itself closed the socket: the client sent invalid data, or stopped answering pings.

`QuietDisconnectMiddleware` wraps `send` so that, once the client is gone or the socket is
closing, a send is dropped with one DEBUG line instead of raising. The consumer keeps running
until the server delivers `websocket.disconnect` (or `http.disconnect`), and ends the usual
way. Errors that are the application's own (a malformed event, an accept after accept) still
raise: only a send on a connection that can no longer carry it is dropped.

It also counts the application instances alive in this process, per scope type, for the
introspection view (`apps/core/stats.py`).
"""

import logging
from collections import Counter
from typing import Any

logger = logging.getLogger(__name__)

try:
    from autobahn.exception import Disconnected
except ImportError:  # a server without autobahn (uvicorn alone) never raises it

    class Disconnected(Exception):  # type: ignore[no-redef]
        """Stands in for autobahn's exception where autobahn is not installed."""


# What a server raises from `send` when the peer is gone: daphne (autobahn), and every server
# that reports a lost connection as an OSError (uvicorn's ClientDisconnected, resets, pipes).
PEER_GONE: tuple[type[BaseException], ...] = (Disconnected, OSError)
# Once the socket is open, a well-formed send or close can only fail because the connection
# cannot carry it any more; uvicorn says so with a RuntimeError when it closed the socket.
OPEN_SOCKET_GONE: tuple[type[BaseException], ...] = (*PEER_GONE, RuntimeError)

# Application instances running in this process right now, by scope type.
live: Counter[str] = Counter()


class QuietDisconnectMiddleware:
    """
    ASGI middleware: a send to a client that is gone, or to a socket that is closing, becomes
    a no-op (one DEBUG log line), instead of an exception inside the application.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Run the application with a `send` that tolerates a departed client."""
        kind = scope["type"]
        if kind not in ("websocket", "http"):
            return await self.app(scope, receive, send)
        state = {"accepted": False, "gone": None}

        def drop(event: dict[str, Any]) -> None:
            logger.debug(
                "%s %s: %s dropped, the connection %s",
                kind,
                scope.get("path"),
                event.get("type"),
                state["gone"],
            )

        async def guarded_receive() -> dict[str, Any]:
            event = await receive()
            if event["type"] in ("websocket.disconnect", "http.disconnect"):
                state["gone"] = state["gone"] or "was closed"
            return event

        async def guarded_send(event: dict[str, Any]) -> None:
            if state["gone"]:
                drop(event)
                return
            event_type = event.get("type")
            expected = PEER_GONE
            if kind == "websocket" and event_type in ("websocket.send", "websocket.close"):
                expected = OPEN_SOCKET_GONE if state["accepted"] else PEER_GONE
            try:
                await send(event)
            except expected as error:
                state["gone"] = f"is gone ({type(error).__name__}: {error})"
                drop(event)
                return
            if event_type == "websocket.accept":
                state["accepted"] = True
            elif event_type == "websocket.close":
                state["gone"] = "is closing (the application closed it)"

        live[kind] += 1
        try:
            return await self.app(scope, guarded_receive, guarded_send)
        finally:
            live[kind] -= 1
