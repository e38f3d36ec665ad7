"""
The event journal's two stores (process memory, and Redis shared by every process), and whose
a journal is: the browser whose owner cookie opened it (apps/core/journal.py).
"""

import json
from collections.abc import AsyncIterator

import pytest
import redis
from django.test import AsyncClient

from apps.core import journal
from apps.core.tests.contract import communicator

ID = "journal-test-0123456789"
ALICE = "alice-owner-cookie-0123456789abcdef"
MALLORY = "mallory-owner-cookie-0123456789abcdef"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, settings) -> AsyncIterator[str]:
    """Each test once with the journal in memory and once in the session's redis-server."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/4"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        settings.REDIS_URL = url
    else:
        settings.REDIS_URL = ""
    yield request.param
    await journal.close_journal()


@pytest.fixture(autouse=True)
def _empty_memory_store() -> None:
    journal._journals.clear()


async def opened(owner: str, journal_id: str, address: str = "192.0.2.1") -> str:
    key = await journal.claim(owner, address, journal_id)
    assert key is not None
    return key


async def test_the_latest_events_are_kept_in_order(store: str) -> None:
    key = await opened(ALICE, ID)
    for n in range(journal.MAX_EVENTS + 5):
        await journal.record(key, "received", {"type": "websocket.receive", "text": str(n)})
    events = await journal.read(ALICE, ID)
    assert [e["text"] for e in events] == [str(n) for n in range(5, journal.MAX_EVENTS + 5)]
    assert await journal.read(ALICE, "another-id-0123456789") == []


async def test_only_the_owner_reads_it_and_nobody_else_writes_into_it(store: str) -> None:
    key = await opened(ALICE, ID)
    await journal.record(key, "received", {"type": "websocket.receive", "text": "alice's hello"})
    assert await journal.read(MALLORY, ID) == []
    assert await journal.read(None, ID) == []
    # Mallory opens "the same" id: it is a journal of hers, alice's is untouched.
    theirs = await opened(MALLORY, ID, address="198.51.100.7")
    await journal.record(theirs, "received", {"type": "websocket.receive", "text": "injected"})
    assert [e["text"] for e in await journal.read(ALICE, ID)] == ["alice's hello"]
    assert [e["text"] for e in await journal.read(MALLORY, ID)] == ["injected"]


@pytest.mark.parametrize("fresh_owners", [False, True], ids=["one-owner", "an-owner-per-id"])
async def test_a_flood_of_new_ids_evicts_only_the_flooders_own(
    store: str, fresh_owners: bool
) -> None:
    # Issue 21: 260 new ids emptied alice's journal in 0.5 s. Now a client makes room among
    # its own journals (per owner cookie, and per address for one that drops its cookie).
    key = await opened(ALICE, ID, address="192.0.2.1")
    await journal.record(key, "received", {"type": "websocket.receive", "text": "alice's hello"})
    for n in range(260):
        owner = f"{MALLORY}-{n:04d}" if fresh_owners else MALLORY
        flooded = await journal.claim(owner, "198.51.100.7", f"flood-{n:016d}")
        if flooded is not None:
            await journal.record(flooded, "received", {"type": "websocket.connect"})
    assert [e["text"] for e in await journal.read(ALICE, ID)] == ["alice's hello"]
    if not fresh_owners:
        kept = [n for n in range(260) if await journal.read(MALLORY, f"flood-{n:016d}")]
        assert kept == list(range(260 - journal.PER_OWNER, 260))  # the newest of its own


async def test_a_full_memory_store_refuses_new_journals_instead_of_evicting(settings) -> None:
    settings.REDIS_URL = ""
    key = await opened(ALICE, ID)
    for n in range(journal.MAX_JOURNALS - 1):
        await opened(f"{MALLORY}-{n:04d}", f"flood-{n:016d}", address=f"10.0.{n // 250}.{n % 250}")
    assert await journal.claim(MALLORY, "198.51.100.7", "one-more-0123456789") is None
    assert key in journal._journals


async def test_redis_journals_expire_and_are_readable_by_any_process(
    settings, redis_url: str
) -> None:
    settings.REDIS_URL = redis_url
    try:
        key = await opened(ALICE, ID)
        await journal.record(key, "sent", {"type": "websocket.accept", "subprotocol": None})
        events = await journal.read(ALICE, ID)
    finally:
        await journal.close_journal()
    # Another process reads the same list: plain Redis, no state of this one.
    other = redis.Redis.from_url(redis_url)
    try:
        assert [json.loads(i) for i in other.lrange(journal.REDIS_PREFIX + key, 0, -1)] == events
        assert 0 < other.ttl(journal.REDIS_PREFIX + key) <= journal.EXPIRY_SECONDS
        assert key not in journal._journals  # nothing of it lives in this process's memory
    finally:
        other.delete(journal.REDIS_PREFIX + key)
        other.close()


async def test_a_redis_outage_loses_journal_events_not_the_socket(settings, caplog) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    try:
        assert await journal.claim(ALICE, None, ID) is None
        await journal.record(journal.storage_key(ALICE, ID), "received", {"type": "x"})
    finally:
        await journal.close_journal()
    assert "journal not opened" in caplog.text
    assert "journal event not recorded" in caplog.text


@pytest.mark.django_db
async def test_a_page_gives_its_browser_an_owner_and_the_socket_journals_for_it(settings) -> None:
    settings.REDIS_URL = ""
    page = await AsyncClient().get("/async/")
    owner = page.cookies[journal.OWNER_COOKIE]
    assert owner["httponly"] and owner["samesite"] == "Lax"
    cookie = f"{journal.OWNER_COOKIE}={owner.value}".encode()
    comm = communicator(f"/ws/ac/?journal={ID}", cookie=cookie)
    assert (await comm.connect())[0]
    await comm.send_to(text_data="hello")
    assert await comm.receive_from() == "hello"
    await comm.disconnect()

    mine = AsyncClient()
    mine.cookies[journal.OWNER_COOKIE] = owner.value
    events = (await mine.get(f"/journal/{ID}/")).json()["events"]
    assert [e["type"] for e in events][:4] == [
        "websocket.connect",
        "websocket.accept",
        "websocket.receive",
        "websocket.send",
    ]
    assert (await AsyncClient().get(f"/journal/{ID}/")).json()["events"] == []
    other = AsyncClient()
    other.cookies[journal.OWNER_COOKIE] = MALLORY
    assert (await other.get(f"/journal/{ID}/")).json()["events"] == []
    # A socket without the owner cookie is not journaled at all (nowhere to put it).
    comm = communicator(f"/ws/ac/?journal={ID}-x")
    assert (await comm.connect())[0]
    await comm.disconnect()
    assert len(journal._journals) == 1


@pytest.mark.django_db
async def test_the_probe_another_client_cannot_read_fill_or_evict_alices_journal(settings) -> None:
    # Issue 21's probe, through the sockets and the feed only: alice's page journals her
    # socket; another client knows the id, reads it, writes into it and opens 260 new ids.
    settings.REDIS_URL = ""
    alice, mallory = AsyncClient(), AsyncClient()
    await alice.get("/async/")
    await mallory.get("/async/")

    def cookies(client: AsyncClient) -> bytes:
        return "; ".join(f"{k}={v.value}" for k, v in client.cookies.items()).encode()

    comm = communicator(f"/ws/ac/?journal={ID}", cookie=cookies(alice))
    assert (await comm.connect())[0]
    await comm.send_to(text_data="alice's hello")
    await comm.receive_from()
    await comm.disconnect()
    hers = (await alice.get(f"/journal/{ID}/")).json()["events"]
    assert "alice's hello" in [e.get("text") for e in hers]

    assert (await mallory.get(f"/journal/{ID}/")).json()["events"] == []
    comm = communicator(f"/ws/ac/?journal={ID}", cookie=cookies(mallory))
    assert (await comm.connect())[0]
    await comm.send_to(text_data="injected")
    await comm.receive_from()
    await comm.disconnect()
    for n in range(260):
        comm = communicator(f"/ws/ac/?journal=flood-{n:016d}", cookie=cookies(mallory))
        assert (await comm.connect())[0]
        await comm.disconnect()
    assert (await alice.get(f"/journal/{ID}/")).json()["events"] == hers
