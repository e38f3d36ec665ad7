"""The presence stores, in memory and in a real redis-server, held to the same behaviour."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from apps.auth_ws.presence import REDIS_KEY, MemoryPresence, Presence, RedisPresence
from apps.core.tests.clock import Clock


@pytest.fixture
async def redis_db(redis_url: str) -> AsyncIterator[str]:
    """Database 2 of the session's redis-server, emptied."""
    url = redis_url.rsplit("/", 1)[0] + "/2"
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Presence]:
    if request.param == "memory":
        yield MemoryPresence()
        return
    url = redis_url.rsplit("/", 1)[0] + "/2"
    client = Redis.from_url(url, decode_responses=True)
    await client.flushdb()
    yield RedisPresence(client)
    await client.aclose()


async def test_first_socket_of_a_user_changes_the_list(store: Presence) -> None:
    assert await store.online() == []
    assert await store.join("c1", "alice") is True
    assert await store.join("c2", "bob") is True
    assert await store.online() == ["alice", "bob"]


async def test_more_tabs_of_a_user_count_once(store: Presence) -> None:
    assert await store.join("c1", "alice") is True
    assert await store.join("c2", "alice") is False
    assert await store.join("c1", "alice") is False  # a heartbeat
    assert await store.online() == ["alice"]
    assert await store.leave("c1", "alice") is False  # still open in c2
    assert await store.online() == ["alice"]
    assert await store.leave("c2", "alice") is True
    assert await store.online() == []


async def test_leaving_twice_changes_nothing(store: Presence) -> None:
    await store.join("c1", "alice")
    assert await store.leave("c1", "alice") is True
    assert await store.leave("c1", "alice") is False


async def test_usernames_with_the_separator_survive(store: Presence) -> None:
    await store.join("specific.x!y", "a|b")
    assert await store.online() == ["a|b"]


async def test_entries_without_heartbeat_expire(
    store: Presence, settings, presence_clock: Clock
) -> None:
    settings.PRESENCE_TTL = 30
    await store.join("c1", "alice")
    await store.join("c2", "bob")
    presence_clock.advance(20)
    assert await store.join("c2", "bob") is False  # bob's heartbeat; alice has none
    presence_clock.advance(20)
    # Reading never shows an expired user, even before anyone prunes.
    assert await store.online() == ["bob"]
    # The next change prunes alice and says the list changed, so the lobby hears of it.
    assert await store.join("c2", "bob") is True
    assert await store.join("c2", "bob") is False


async def test_a_heartbeat_after_expiry_brings_the_user_back(
    store: Presence, settings, presence_clock: Clock
) -> None:
    settings.PRESENCE_TTL = 30
    await store.join("c1", "alice")
    presence_clock.advance(31)
    assert await store.online() == []
    assert await store.join("c1", "alice") is False  # was listed, and is listed again
    assert await store.online() == ["alice"]


async def test_redis_tabs_opening_at_once_are_announced_exactly_once(redis_db: str) -> None:
    """Two processes, each with its own connection: one transaction sees the user come online."""
    clients = [Redis.from_url(redis_db, decode_responses=True) for _ in range(8)]
    stores = [RedisPresence(client) for client in clients]
    changed = await asyncio.gather(
        *(store.join(f"c{n}", "alice") for n, store in enumerate(stores))
    )
    assert sorted(changed) == [False] * 7 + [True]
    left = await asyncio.gather(*(store.leave(f"c{n}", "alice") for n, store in enumerate(stores)))
    assert sorted(left) == [False] * 7 + [True]
    for client in clients:
        await client.aclose()


async def test_redis_key_expires_when_every_process_is_gone(redis_db: str, settings) -> None:
    settings.PRESENCE_TTL = 5
    client = Redis.from_url(redis_db, decode_responses=True)
    await RedisPresence(client).join("c1", "alice")
    assert 0 < await client.ttl(REDIS_KEY) <= 10
    await client.aclose()
