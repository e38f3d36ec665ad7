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

The channel layer (channels-redis, configured in settings.py with `layer_host`), the lobby's
history (lobby.py), presence (apps/auth_ws/presence.py) and the journal (journal.py) all get
their clients from here.
"""

import copy
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection

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
        """Connect to the current primary, wherever the Sentinels say it is now."""
        if self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


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


def configured() -> bool:
    """Whether Redis is configured at all (else everything lives in process memory)."""
    return bool(settings.REDIS_URL or getattr(settings, "REDIS_SENTINELS", None))


def connect(decode_responses: bool = False) -> Redis:
    """
    A new client for the configured Redis: the primary of the Sentinels' group, or the server
    REDIS_URL names. Its connections belong to the event loop that first uses it.
    """
    sentinels = getattr(settings, "REDIS_SENTINELS", None)
    if sentinels:
        password = getattr(settings, "REDIS_PASSWORD", "") or None
        watchers = Sentinel(sentinels, sentinel_kwargs=sentinel_options(password or ""))
        options: dict[str, Any] = {}
        if retry := getattr(settings, "REDIS_RETRY", None):
            # Through a failover, as the channel layer does; redis-py's default (10 retries,
            # about 5 s) otherwise.
            options["retry"] = copy.deepcopy(retry)
        return watchers.master_for(
            settings.REDIS_MASTER_NAME,
            decode_responses=decode_responses,
            password=password,
            connection_class=FailoverAwareConnection,
            **options,
        )
    if not settings.REDIS_URL:
        raise ImproperlyConfigured("no Redis configured: set REDIS_URL or REDIS_SENTINELS")
    return Redis.from_url(settings.REDIS_URL, decode_responses=decode_responses)


async def disconnect(client: Redis) -> None:
    """Close a client from `connect`, and its connections to the Sentinels if it has them."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        await manager.aclose()


def replicated() -> bool:
    """Whether the configured Redis has replicas a write can wait for (the Sentinel form)."""
    return bool(getattr(settings, "REDIS_SENTINELS", None))
