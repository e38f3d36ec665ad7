"""
The lobby's shared history (apps/core/lobby.py), in memory and in a real redis-server.

Each test gets a fresh history: the memory one lives per event loop (one per test), and the
Redis one in a database of the session's redis-server emptied first.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest
from channels.layers import get_channel_layer
from redis.asyncio import Redis

from apps.core import lobby


@pytest.fixture(params=["memory", "redis"])
async def history(request: pytest.FixtureRequest, settings) -> AsyncIterator[str]:
    """Point the lobby at memory or at database 4 of the session's Redis; keep 5 messages."""
    settings.LOBBY_HISTORY = 5
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/4"
        settings.REDIS_URL = url
        async with Redis.from_url(url) as client:
            await client.flushdb()
    else:
        settings.REDIS_URL = ""
    yield request.param
    await lobby.close_history()


async def say(*texts: str) -> list[int]:
    return [(await lobby.publish("alice", text))["id"] for text in texts]


async def test_publish_numbers_stores_and_sends_to_the_group(history: str) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(lobby.LOBBY_GROUP, channel)
    sent = await lobby.publish("alice", "hi")
    assert set(sent) == {"type", "id", "user", "text", "at"}
    assert (sent["type"], sent["user"], sent["text"]) == ("lobby.chat", "alice", "hi")
    assert await asyncio.wait_for(layer.receive(channel), 2) == sent
    assert (await lobby.since(0)).messages == [sent]
    await layer.group_discard(lobby.LOBBY_GROUP, channel)


async def test_ids_count_up_by_one_and_since_returns_what_follows_in_order(history: str) -> None:
    ids = await say("one", "two", "three")
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    found = await lobby.since(ids[0])
    assert [m["text"] for m in found.messages] == ["two", "three"]
    assert (found.complete, found.oldest) == (True, ids[0])
    assert await lobby.since(ids[-1]) == lobby.Resume([], True, ids[0])
    assert (await lobby.since(0)).complete  # nothing trimmed yet: from the start is all


async def test_a_resume_older_than_the_history_says_so(history: str) -> None:
    ids = await say(*(f"m{n}" for n in range(8)))  # 8 into a history of 5: 3 dropped
    kept = ids[3:]
    found = await lobby.since(ids[1])  # the client saw m0 and m1 and missed m2 for good
    assert [m["id"] for m in found.messages] == kept
    assert (found.complete, found.oldest) == (False, kept[0])
    assert (await lobby.since(ids[2])).complete  # missed m3 onwards: all still kept
    assert not (await lobby.since(0)).complete


async def test_a_new_history_starts_above_any_earlier_one(history: str, settings) -> None:
    earlier = await say("before the restart")
    await lobby.close_history()
    if history == "redis":
        async with Redis.from_url(settings.REDIS_URL) as client:
            await client.flushdb()  # a Redis that lost its data
    else:
        lobby._histories.clear()  # a restarted process
    later = await say("after")
    assert later[0] > earlier[0]
    # The client's id is from the earlier history: it may have missed that one's last words.
    found = await lobby.since(earlier[0])
    assert [m["text"] for m in found.messages] == ["after"]
    assert not found.complete


async def test_ids_from_nowhere_and_empty_histories(history: str) -> None:
    assert await lobby.since(0) == lobby.Resume([], True, None)
    assert await lobby.since(7) == lobby.Resume([], False, None)
    ids = await say("x")
    assert await lobby.since(ids[0] + 10) == lobby.Resume([], False, ids[0])


@pytest.mark.parametrize("bad", [-1, 2**53, 1.5, "3", True, None])
async def test_since_refuses_what_is_not_an_id(bad: object) -> None:
    with pytest.raises(ValueError):
        await lobby.since(bad)  # type: ignore[arg-type]


async def test_concurrent_publishers_get_distinct_consecutive_ids(history: str) -> None:
    messages = await asyncio.gather(*(lobby.publish("bob", str(n)) for n in range(5)))
    ids = sorted(m["id"] for m in messages)
    assert ids == list(range(ids[0], ids[0] + 5))
    assert [m["id"] for m in (await lobby.since(0)).messages] == ids


async def test_recent_is_the_newest_kept_messages_oldest_first(history: str) -> None:
    assert await lobby.get_history().recent(3) == lobby.Resume([], True, None)
    ids = await say("a", "b")
    found = await lobby.get_history().recent(3)
    # Fewer than asked for: all of them, and nothing was said before them.
    assert ([m["id"] for m in found.messages], found.complete, found.oldest) == (ids, True, ids[0])
    ids += await say(*(f"m{n}" for n in range(6)))  # 8 said, 5 kept
    found = await lobby.get_history().recent(3)
    assert [m["id"] for m in found.messages] == ids[-3:]
    assert [m["text"] for m in found.messages] == ["m3", "m4", "m5"]
    assert (found.complete, found.oldest) == (False, ids[3])
    assert (await lobby.get_history().recent(0)).messages == []


async def test_recent_reads_lobby_recent(history: str, settings) -> None:
    settings.LOBBY_RECENT = 2
    ids = await say("a", "b", "c")
    assert [m["id"] for m in (await lobby.recent()).messages] == ids[1:]
