"""
Open sockets and event streams per user and per client address, in this server process.

Without a cap, one user held 600 lobby sockets and one address 800 echo sockets (issue 21):
each costs the server about 40 KiB and a share of every broadcast. `settings.WS_LIMITS
["connections"]` sets `per_user` (a logged-in user's sockets and streams) and `per_address`
(everyone's from one client address: behind nginx, the browser's, thanks to daphne's
--proxy-headers); 0 turns one off.

The count is per server process, on purpose: it must be exact when a process dies (a count
kept in Redis would keep a dead process's connections), and it costs nothing per handshake.
With N processes behind nginx a user may hold up to N times `per_user`; nginx's round robin
spreads them, so each process sees its share.

A socket over the limit is accepted, then closed with 4429: a refused handshake reaches the
browser as 1006, which says nothing; 4429 says "too many", as for messages (limits.py), and
the reason which limit (clients of servers that send reasons see it). A stream gets HTTP 429.
"""

import logging
from collections import Counter
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from . import protocol
from .limits import CLOSE_RATE_LIMITED
from .throttle import address, of_user, setting

logger = logging.getLogger(__name__)


class OpenConnections:
    """How many sockets and streams each user and each address has open in this process."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def keys(self, scope: dict[str, Any]) -> list[tuple[str, int]]:
        """What this connection counts towards, each with its limit (0: none)."""
        keys = []
        user = scope.get("user")
        if user is not None and user.is_authenticated:
            keys.append((of_user(user), int(setting("connections", "per_user"))))
        if where := address(scope):
            keys.append((where, int(setting("connections", "per_address"))))
        return keys

    def admit(self, scope: dict[str, Any]) -> str | None:
        """Count the connection in, or say which limit it is over (then nothing is counted)."""
        keys = self.keys(scope)
        for key, limit in keys:
            if limit and self.counts[key] >= limit:
                kind = key.split(":", 1)[0]
                return f"too many open connections: at most {limit} per {kind}"
        self.counts.update(key for key, _ in keys)
        return None

    def release(self, scope: dict[str, Any]) -> None:
        """Count the connection out (it was admitted)."""
        for key, _ in self.keys(scope):
            self.counts[key] -= 1
            if self.counts[key] <= 0:
                del self.counts[key]


OPEN = OpenConnections()


class TooManyConnections(AsyncWebsocketConsumer):
    """Accepts, then closes with 4429: the browser sees the code, not a bare 1006."""

    async def connect(self) -> None:
        """Accept and close at once, saying which limit."""
        await self.accept(protocol.select_subprotocol(self.scope))
        await self.close(CLOSE_RATE_LIMITED, self.scope["connection_refusal"])


class ConnectionLimitMiddleware:
    """
    ASGI middleware for sockets (inside AuthMiddlewareStack: it needs the user): counts each
    socket while its application runs, and turns away those over the limit with 4429.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Run the socket's application if the user and address are under their limits."""
        if refusal := OPEN.admit(scope):
            logger.info("socket to %s closed with 4429: %s", scope.get("path"), refusal)
            scope = {**scope, "connection_refusal": refusal}
            return await TooManyConnections()(scope, receive, send)
        try:
            return await self.app(scope, receive, send)
        finally:
            OPEN.release(scope)
