"""The event journal's two stores: process memory, and Redis shared by every process."""

import json

import pytest
import redis

from apps.core import journal

ID = "journal-test-0123456789"


async def test_memory_store_keeps_the_latest_events_in_order(settings) -> None:
    settings.REDIS_URL = ""
    for n in range(journal.MAX_EVENTS + 5):
        await journal.record(ID, "received", {"type": "websocket.receive", "text": str(n)})
    events = await journal.read(ID)
    assert [e["text"] for e in events] == [str(n) for n in range(5, journal.MAX_EVENTS + 5)]
    assert await journal.read("another-id-0123456789") == []


async def test_redis_store_is_capped_expires_and_is_readable_by_any_process(
    settings, redis_url: str
) -> None:
    settings.REDIS_URL = redis_url
    try:
        await journal.record(ID, "sent", {"type": "websocket.accept", "subprotocol": None})
        for n in range(journal.MAX_EVENTS + 2):
            await journal.record(ID, "sent", {"type": "websocket.send", "bytes": bytes([n % 256])})
        events = await journal.read(ID)
    finally:
        await journal.close_journal()
    assert len(events) == journal.MAX_EVENTS
    assert [e["bytes"] for e in events[:2]] == ["02", "03"]  # the oldest made room
    assert events[-1] == {**events[-1], "direction": "sent", "type": "websocket.send"}
    # Another process reads the same list: plain Redis, no state of this one.
    other = redis.Redis.from_url(redis_url)
    key = journal.REDIS_PREFIX + ID
    try:
        assert [json.loads(item) for item in other.lrange(key, 0, -1)] == events
        assert 0 < other.ttl(key) <= journal.EXPIRY_SECONDS
        # Nothing of the journal lives in this process's memory.
        assert ID not in journal._journals
    finally:
        other.delete(key)
        other.close()


async def test_a_redis_outage_loses_journal_events_not_the_socket(settings, caplog) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    try:
        await journal.record(ID, "received", {"type": "websocket.connect"})
    finally:
        await journal.close_journal()
    assert "event not recorded" in caplog.text


@pytest.fixture(autouse=True)
def _empty_memory_store() -> None:
    journal._journals.clear()
