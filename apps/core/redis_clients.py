"""
How every part of the showcase reaches Redis: the one place that builds Redis clients.

Redis comes in one of two forms (docs/settings.md):

- `REDIS_URL` names one server (`make run` with Redis, the tests). If it stops, the lobby stops
  until someone restarts it.
- `REDIS_SENTINELS` ("host:port,host:port,...") names the Redis Sentinels that watch a primary
  and its replicas, and `REDIS_MASTER_NAME` the group they watch (`make cluster`). A client asks
  the Sentinels which server is the primary whenever it (re)connects, so after a failover its
  next connection goes to the promoted replica. `REDIS_PASSWORD` is the group's password (the
  servers' and the Sentinels').

The channel layer (channels-redis, configured in settings.py with `layer_host`, its pool built
here: apps/core/layers.py), the lobby's history (lobby.py), presence (apps/auth_ws/presence.py)
and the journal (journal.py) all get their clients from here.

Every pool is bounded, and waited for. redis-py's asyncio `ConnectionPool` opens a connection per
concurrent command, up to `max_connections` (100 by default), and past that raises
`MaxConnectionsError` instead of waiting. A thousand sockets that leave together (a proxy
restart, a network blip) each call Redis at the same moment: the 101st got the error, its
`group_discard` never ran, and the server logged a traceback per socket. A `BlockingConnectionPool`
has a bound too but makes the command wait for a connection to come back, which is what a herd
needs: each command takes well under a millisecond, so the queue drains in moments. So each
process has two pools of `settings.REDIS_MAX_CONNECTIONS`: the channel layer's, and the one
client per event loop (`shared()`) that the project's own Redis users share. Each names its
connections (`CLIENT SETNAME`, settings.REDIS_CLIENT_NAME), so Redis's `CLIENT LIST` tells which
process holds how many (`make storm` prints the peak).
"""

import asyncio
import copy
import weakref
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

Address = tuple[str, int]

# How long a client waits for a Sentinel: they answer in microseconds, and one that does not
# must not hold up the question, which goes to the next Sentinel.
SENTINEL_TIMEOUT = 1.0


class FailoverAwareConnection(SentinelManagedConnection):
    """
    A connection to the group's primary that asks the Sentinels where the primary is at every
    (re)connect. redis-py's own reconnects a dropped connection from `send_packed_command`
    straight to the address it had (redis/redis-py#3874): after a failover, that is the old
    primary, which comes back as a replica, so every write met READONLY until the retries ran
    out (a `runworker` died of it, and the lobby's receive loops with it).
    """

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """
        Connect to the current primary, wherever the Sentinels say it is now, asking them again
        at every attempt. redis-py's own retry of the socket's connect tries one address again
        and again: the primary that was just killed, for the whole retry budget (20 s behind
        Sentinel), while another had been promoted; a runworker's receive loop died of it under
        back-to-back failovers (`make bench-hosts`).
        """
        if not self.connection_pool.is_master:
            await super().connect_check_health(
                check_health=check_health, retry_socket_connect=retry_socket_connect
            )
            return
        if self.is_connected:
            return

        async def to_the_primary() -> None:
            self.host, self.port = await self.connection_pool.get_master_address()
            await SentinelManagedConnection.connect_check_health(
                self, check_health=check_health, retry_socket_connect=False
            )

        if retry_socket_connect:
            await self.retry.call_with_retry(to_the_primary, lambda error: self.disconnect())
        else:
            await to_the_primary()


def parse_sentinels(text: str) -> list[Address]:
    """ "host:port,host:port" (the REDIS_SENTINELS setting) as a list of addresses."""
    addresses = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"REDIS_SENTINELS: {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def sentinel_options(password: str = "") -> dict[str, Any]:
    """The connection options for talking to the Sentinels themselves."""
    options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
    }
    if password:
        options["password"] = password
    return options


def layer_host(
    url: str, sentinels: list[Address], master_name: str, password: str = "", **options: Any
) -> dict[str, Any]:
    """
    One entry of channels-redis's `hosts`: `address` for one server, or channels-redis's
    Sentinel form (`sentinels` + `master_name`), with the connection `options` either way.
    """
    if sentinels:
        if password:
            options["password"] = password
        return {
            "sentinels": sentinels,
            "master_name": master_name,
            "sentinel_kwargs": sentinel_options(password),
            "connection_class": FailoverAwareConnection,
            **options,
        }
    return {"address": url, **options}


class WaitingConnectionPool(BlockingConnectionPool):
    """
    redis-py's blocking pool, minus a lost wakeup: each returned connection wakes one waiter
    through an `asyncio.Condition`, and before Python 3.13 a waiter that is cancelled (its
    socket left, a heartbeat stopped) or times out after being woken drops that wakeup
    (python/cpython#112202). In a herd of leaving sockets that left connections idle while
    others waited. A waiter that gives up passes the wakeup on.
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


class WaitingSentinelConnectionPool(SentinelConnectionPool, WaitingConnectionPool):
    """Sentinel's pool (it follows the current primary) with the waiting pool's bound."""


def bounded_pool(
    host: dict[str, Any], max_connections: int, timeout: float | None
) -> ConnectionPool:
    """
    A waiting pool of at most `max_connections` for one channels-redis style `hosts` entry
    (`layer_host`'s: {"address": URL, **options} or {"sentinels", "master_name",
    "sentinel_kwargs", **options}). A command that finds every connection in use waits for
    one: as long as it takes (None), or up to `timeout` seconds, then fails with
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
        return WaitingSentinelConnectionPool(service, watchers, **limits, **host)
    return WaitingConnectionPool(**limits, **host)


def configured() -> bool:
    """Whether Redis is configured at all (else everything lives in process memory)."""
    return bool(settings.REDIS_URL or getattr(settings, "REDIS_SENTINELS", None))


def connect(decode_responses: bool = False, role: str = "app") -> Redis:
    """
    A new client for the configured Redis, the primary of the Sentinels' group or the server
    REDIS_URL names, on a bounded pool of its own that makes a command wait for a free
    connection (settings.REDIS_MAX_CONNECTIONS, REDIS_POOL_TIMEOUT), its connections named for
    this process and `role`. They belong to the event loop that first uses it.
    """
    sentinels = getattr(settings, "REDIS_SENTINELS", None)
    if not (sentinels or settings.REDIS_URL):
        raise ImproperlyConfigured("no Redis configured: set REDIS_URL or REDIS_SENTINELS")
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        "client_name": f"{settings.REDIS_CLIENT_NAME}.{role}",
    }
    if retry := getattr(settings, "REDIS_RETRY", None):
        # Through a failover, as the channel layer does; redis-py's default (10 retries,
        # about 5 s) otherwise.
        options["retry"] = copy.deepcopy(retry)
    if socket_timeout := getattr(settings, "REDIS_SOCKET_TIMEOUT", None):
        options["socket_timeout"] = socket_timeout
    host = layer_host(
        settings.REDIS_URL,
        sentinels or [],
        getattr(settings, "REDIS_MASTER_NAME", ""),
        getattr(settings, "REDIS_PASSWORD", ""),
        **options,
    )
    pool = bounded_pool(host, settings.REDIS_MAX_CONNECTIONS, settings.REDIS_POOL_TIMEOUT)
    return Redis.from_pool(pool)  # closing the client closes its pool


# The project's own client, one per event loop: a server process has one loop; a test suite
# has one per test.
_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()


def shared() -> Redis:
    """
    The running loop's one client (strings, not bytes) for the project's own Redis users: the
    lobby's history, presence and the journal share its bounded pool.
    """
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None:
        client = _shared[loop] = connect(decode_responses=True)
    return client


async def close_shared() -> None:
    """Close the running loop's shared client and its connections, if any (tests call this)."""
    client = _shared.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await disconnect(client)


async def disconnect(client: Redis) -> None:
    """Close a client from `connect`, and its connections to the Sentinels if it has them."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        await manager.aclose()


def replicated() -> bool:
    """Whether the configured Redis has replicas a write can wait for (the Sentinel form)."""
    return bool(getattr(settings, "REDIS_SENTINELS", None))
