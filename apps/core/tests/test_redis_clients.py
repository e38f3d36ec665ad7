"""
The project's Redis connections (apps/core/redis_clients.py, apps/core/layers.py): bounded per
process, waited for when all are busy, named per process, against the session's redis-server.
"""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from django.conf import settings
from redis.asyncio import Redis

from apps.core.redis_clients import WaitingConnectionPool, bounded_pool, close_shared, shared


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[WaitingConnectionPool]:
    """A waiting pool of one connection to the session's Redis."""
    made = bounded_pool({"address": redis_url}, max_connections=1, timeout=5)
    yield made
    await made.disconnect()


async def test_a_herd_waits_for_the_connections_instead_of_failing(redis_url: str) -> None:
    client = Redis.from_pool(bounded_pool({"address": redis_url}, max_connections=3, timeout=10))
    # 300 commands at once through 3 connections: redis-py's own pool raises past its bound.
    assert await asyncio.gather(*(client.ping() for _ in range(300))) == [True] * 300
    assert len(client.connection_pool._in_use_connections) == 0
    assert len(client.connection_pool._available_connections) <= 3
    await client.aclose()


async def test_a_waiter_cancelled_as_it_is_woken_passes_the_connection_on(
    pool: WaitingConnectionPool,
) -> None:
    held = await pool.get_connection()
    first = asyncio.create_task(pool.get_connection())
    second = asyncio.create_task(pool.get_connection())
    await asyncio.sleep(0.05)  # both wait now, first in line first
    await pool.release(held)  # wakes the first waiter...
    first.cancel()  # ...which gives up before it runs (its socket left)
    # Without passing the wakeup on, the second waits out the pool's whole timeout (5 s).
    connection = await asyncio.wait_for(second, 1)
    await pool.release(connection)
    assert first.cancelled()


async def test_the_shared_client_is_one_per_loop_named_for_this_process(
    redis_url: str, settings
) -> None:
    settings.REDIS_URL = redis_url
    client = shared()
    assert shared() is client
    await client.ping()
    names = {c["name"] for c in await client.client_list()}
    assert f"{settings.REDIS_CLIENT_NAME}.app" in names
    pool = client.connection_pool
    assert isinstance(pool, WaitingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (
        settings.REDIS_MAX_CONNECTIONS,
        settings.REDIS_POOL_TIMEOUT,
    )
    await close_shared()
    assert shared() is not client
    await close_shared()


PROBE = """
import json, django
django.setup()
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
layer = get_channel_layer()
pool = layer.create_pool(0)
print(json.dumps({"class": type(pool).__name__, "max": pool.max_connections,
                  "timeout": pool.timeout, "name": pool.connection_kwargs.get("client_name"),
                  "socket_timeout": pool.connection_kwargs.get("socket_timeout"),
                  "brpop_timeout": RedisChannelLayer.brpop_timeout}))
"""


def test_the_channel_layer_waits_for_its_bounded_named_connections() -> None:
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:6399/0",
        "CHANNEL_LAYER": "core",
        "REDIS_MAX_CONNECTIONS": "7",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    done = subprocess.run(  # noqa: S603 - our own interpreter on a fixed probe
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # No timeout: a herd waits as long as it takes (settings.py says why).
    assert (found["class"], found["max"], found["timeout"]) == ("WaitingConnectionPool", 7, None)
    assert found["name"].endswith(".layer")  # "<host>-<pid>.layer": CLIENT LIST tells who
    # Redis reads outlast BZPOPMIN's 5 s wait (settings.py says why).
    assert found["socket_timeout"] >= found["brpop_timeout"] + 5, found


async def test_a_connect_retry_asks_the_sentinels_again(redis_server) -> None:
    """The first answer is a primary just killed; a retry must not go back to it."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from apps.core.redis_clients import FailoverAwareConnection
    from tools.servers import free_port

    answers = [("127.0.0.1", free_port()), ("127.0.0.1", redis_server.port)]
    asked = []

    class Sentinels:
        """The part of a Sentinel pool a connection asks: where the primary is now."""

        is_master = True
        check_connection = False

        async def get_master_address(self) -> tuple[str, int]:
            asked.append(answers[min(len(asked), 1)])
            return asked[-1]

    connection = FailoverAwareConnection(connection_pool=Sentinels(), retry=Retry(NoBackoff(), 3))
    try:
        await connection.connect_check_health(check_health=False)
        assert connection.port == redis_server.port
        assert asked == answers
    finally:
        await connection.disconnect()
