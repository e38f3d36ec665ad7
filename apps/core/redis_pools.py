"""
Redis connections: bounded per process, and waited for when they are all in use.

redis-py's asyncio `ConnectionPool` opens a connection per concurrent command, up to
`max_connections` (100 by default), and past that raises `MaxConnectionsError` instead of
waiting. A thousand sockets that leave together (a proxy restart, a network blip) each call
Redis at the same moment: the 101st got the error, its `group_discard` never ran, and the
server logged a traceback per socket. `BlockingConnectionPool` has the same bound but makes the
101st command wait for a connection to come back (up to a timeout), which is what a herd needs:
each command takes well under a millisecond, so the queue drains in moments.

Every pool here is one: the channel layer's (apps/core/layers.py) and the one client that the
project's own Redis users share (the lobby's history, presence, the event journal), one per
event loop (a connection belongs to the loop that opened it). Each process names its
connections (`CLIENT SETNAME`, settings.REDIS_CLIENT_NAME), so Redis's `CLIENT LIST` tells
which process holds how many (`make storm` prints the peak).
"""

import asyncio
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool


class WaitingConnectionPool(BlockingConnectionPool):
    """
    redis-py's blocking pool, minus a lost wakeup: each returned connection wakes one waiter
    through an `asyncio.Condition`, and before Python 3.13 a waiter that is cancelled (its
    socket left, a heartbeat stopped) or times out after being woken drops that wakeup
    (python/cpython#112202). In a herd of leaving sockets that left connections idle while
    others waited out the whole pool timeout. A waiter that gives up passes the wakeup on.
    """

    _passing_on: set[asyncio.Task[None]]

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection, waiting for one if all are in use (see the class)."""
        try:
            return await super().get_connection(*args, **kwargs)
        except BaseException:
            # In a task of its own: this one may be cancelled, and must not wait for the lock.
            passing_on = self.__dict__.setdefault("_passing_on", set())
            task = asyncio.get_running_loop().create_task(self._wake_one())
            passing_on.add(task)
            task.add_done_callback(passing_on.discard)
            raise

    async def _wake_one(self) -> None:
        async with self._condition:
            self._condition.notify()


class BlockingSentinelConnectionPool(SentinelConnectionPool, WaitingConnectionPool):
    """Sentinel's pool (it follows the current primary) with the waiting pool's bound."""


def bounded_pool(
    host: dict[str, Any], max_connections: int, timeout: float | None
) -> ConnectionPool:
    """
    A waiting pool of at most `max_connections` for one channels-redis style `hosts` entry:
    {"address": URL, **connection kwargs}, {"master_name", "sentinels", "sentinel_kwargs",
    **connection kwargs} or plain connection kwargs. A command that finds every connection in
    use waits for one: as long as it takes (None), or up to `timeout` seconds, then fails with
    ConnectionError("No connection available."), which apps/core/outage.py treats like an
    unreachable Redis.
    """
    host = dict(host)
    limits = {"max_connections": max_connections, "timeout": timeout}
    if "address" in host:
        return WaitingConnectionPool.from_url(host.pop("address"), **limits, **host)
    if "master_name" in host:
        service = host.pop("master_name")
        kwargs = host.pop("sentinel_kwargs", None)
        watchers = Sentinel(host.pop("sentinels"), sentinel_kwargs=kwargs)
        return BlockingSentinelConnectionPool(service, watchers, **limits, **host)
    return WaitingConnectionPool(**limits, **host)


def connection(role: str) -> dict[str, Any]:
    """How this process connects to REDIS_URL for one role ("layer", "app"), named for it."""
    return {
        "address": settings.REDIS_URL,
        **settings.REDIS_OPTIONS,
        "client_name": f"{settings.REDIS_CLIENT_NAME}.{role}",
    }


# The project's own client, one per event loop: a server process has one loop; a test suite
# has one per test.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()


def get_client() -> Redis:
    """
    The running loop's client for the project's own Redis users (strings, not bytes), on one
    bounded, waiting pool: settings.REDIS_MAX_CONNECTIONS, settings.REDIS_POOL_TIMEOUT.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        host = {**connection("app"), "decode_responses": True}
        pool = bounded_pool(host, settings.REDIS_MAX_CONNECTIONS, settings.REDIS_POOL_TIMEOUT)
        client = _clients[loop] = Redis.from_pool(pool)  # closing the client closes the pool
    return client


async def close_client() -> None:
    """Close the running loop's client and its connections, if it has one (tests call this)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
