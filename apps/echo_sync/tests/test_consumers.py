"""
The sync consumers against the shared echo contract, plus what is particular to them.

Every test here runs twice: with the project's queued sends and with Channels' stock ones
(SYNC_SEND, apps/core/consumers.py), so neither may break the contract.
"""

import threading
import time
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator

from apps.core.tests.contract import (
    EchoContract,
    JsonContract,
    NotesContract,
    OriginContract,
    command,
    communicator,
    echoes_during_block,
    json_connected,
    lift_json_rate_limit,
)
from apps.echo_sync.consumers import SyncEchoConsumer

PREFIX = "/ws/sc/"
JSON = PREFIX + "json/"


@pytest.fixture(params=["queued", "stock"], autouse=True)
def sync_send(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.SYNC_SEND = request.param
    return request.param


class TestEcho(EchoContract):
    prefix = PREFIX


class TestJson(JsonContract):
    prefix = PREFIX
    consumer_name = "SyncJsonConsumer"


class TestOrigin(OriginContract):
    prefix = PREFIX


class TestNotes(NotesContract):
    prefix = PREFIX
    ways = ("orm",)


async def test_handlers_run_in_a_worker_thread() -> None:
    comm = communicator(PREFIX + "json/")
    await comm.connect()
    await comm.send_json_to({"type": "info"})
    info = await comm.receive_json_from()
    assert info["thread"] != threading.main_thread().name
    await comm.disconnect()


async def test_raw_consumer_speaks_asgi_events() -> None:
    """The exact events of the ASGI spec, in both directions, with no Channels helper between."""
    scope = {"type": "websocket", "path": PREFIX, "subprotocols": ["showcase.v1"], "headers": []}
    app = ApplicationCommunicator(SyncEchoConsumer.as_asgi(), scope)
    await app.send_input({"type": "websocket.connect"})
    assert await app.receive_output() == {
        "type": "websocket.accept",
        "subprotocol": "showcase.v1",
        "headers": [(b"x-showcase-consumer", b"SyncEchoConsumer")],
    }
    await app.send_input({"type": "websocket.receive", "text": "hi", "bytes": None})
    assert await app.receive_output() == {"type": "websocket.send", "text": "hi"}
    await app.send_input({"type": "websocket.receive", "bytes": b"\x00\x01"})
    assert await app.receive_output() == {"type": "websocket.send", "bytes": b"\x00\x01"}
    await app.send_input({"type": "websocket.disconnect", "code": 1001})
    await app.wait(timeout=1)  # StopConsumer: the application returned


# ---------------------------------------------------------------------------- blocking


@pytest.mark.django_db(transaction=True)
async def test_two_sync_sockets_of_one_process_take_turns_on_block() -> None:
    """
    Two sockets block 0.6 s at once. Their handlers share the process's one sync thread, so
    the server-side sleeps follow each other: the intervals cannot overlap, however loaded
    the machine is, and the second answer comes after both sleeps.
    """
    a, b = await json_connected(JSON), await json_connected(JSON)
    started = time.perf_counter()
    await a.send_json_to({"type": "block", "seconds": 0.6})
    await b.send_json_to({"type": "block", "seconds": 0.6})
    replies = [await a.receive_json_from(timeout=5), await b.receive_json_from(timeout=5)]
    elapsed = time.perf_counter() - started
    first, second = sorted(replies, key=lambda r: r["started"])
    assert first["ended"] <= second["started"], (first, second)  # one after the other
    assert all(r["waited"] >= 0.6 for r in replies)
    assert elapsed >= 1.2
    for comm in (a, b):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_sync_block_stalls_every_other_sync_socket(settings) -> None:
    """
    The sleep holds the one sync thread: another socket pinging its echo gets no answer for
    the whole sleep: the echo in flight waits for it to end.
    """
    lift_json_rate_limit(settings)
    a, b = await json_connected(JSON), await json_connected(JSON)
    reply, trips = await echoes_during_block(a, b, {"type": "block", "seconds": 0.6})
    assert (reply["how"], reply["waited"] >= 0.6) == ("time.sleep in the sync thread", True)
    # Not one echo went and came back while the sleep lasted...
    assert not [t for t in trips if reply["started"] < t[0] and t[1] < reply["ended"]], trips
    # ... and the echo in flight meanwhile waited for most of it.
    assert any(got >= reply["ended"] and got - sent >= 0.4 for sent, got in trips), trips
    for comm in (a, b):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_sync_endpoint_knows_only_the_plain_orm_and_no_loop() -> None:
    comm = await json_connected(JSON)
    for content, code in (
        ({"type": "notes", "via": "async_orm"}, "invalid_via"),
        ({"type": "note", "text": "t", "via": "database_sync_to_async"}, "invalid_via"),
        ({"type": "block", "seconds": 0.1, "on_loop": True}, "invalid_on_loop"),
        ({"type": "block", "seconds": 0.1, "on_loop": "yes"}, "invalid_on_loop"),
        ({"type": "notes.unsafe"}, "unknown_type"),
    ):
        reply = await command(comm, content)
        assert (reply["type"], reply["code"]) == ("error", code), content
    await comm.disconnect()
