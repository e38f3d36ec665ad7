"""The async consumers against the shared echo contract, plus what is particular to them."""

import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator as PlainCommunicator
from channels.testing import ApplicationCommunicator
from django.conf import settings
from django.db import connections, router

from apps.core.consumers import NoDatabaseMixin
from apps.core.models import Note
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
from apps.echo_async.consumers import AsyncEchoConsumer, AsyncJsonConsumer

PREFIX = "/ws/ac/"
JSON = PREFIX + "json/"
SCOPE = {"type": "websocket", "path": JSON, "subprotocols": [], "headers": []}


class TestEcho(EchoContract):
    prefix = PREFIX


class TestJson(JsonContract):
    prefix = PREFIX
    consumer_name = "AsyncJsonConsumer"


class TestOrigin(OriginContract):
    prefix = PREFIX


class TestNotes(NotesContract):
    prefix = PREFIX
    ways = ("async_orm", "database_sync_to_async")


async def test_handlers_run_on_the_event_loop_thread() -> None:
    comm = communicator(PREFIX + "json/")
    await comm.connect()
    await comm.send_json_to({"type": "info"})
    info = await comm.receive_json_from()
    assert info["thread"] == threading.main_thread().name
    await comm.disconnect()


async def test_raw_consumer_speaks_asgi_events() -> None:
    """The exact events of the ASGI spec, in both directions, with no Channels helper between."""
    scope = {"type": "websocket", "path": PREFIX, "subprotocols": ["showcase.v1"], "headers": []}
    app = ApplicationCommunicator(AsyncEchoConsumer.as_asgi(), scope)
    await app.send_input({"type": "websocket.connect"})
    assert await app.receive_output() == {
        "type": "websocket.accept",
        "subprotocol": "showcase.v1",
        "headers": [(b"x-showcase-consumer", b"AsyncEchoConsumer")],
    }
    await app.send_input({"type": "websocket.receive", "text": "hi", "bytes": None})
    assert await app.receive_output() == {"type": "websocket.send", "text": "hi"}
    await app.send_input({"type": "websocket.receive", "bytes": b"\x00\x01"})
    assert await app.receive_output() == {"type": "websocket.send", "bytes": b"\x00\x01"}
    await app.send_input({"type": "websocket.disconnect", "code": 1001})
    await app.wait(timeout=1)  # StopConsumer: the application returned


# ---------------------------------------------------------------------------- the ORM, blocking


@pytest.fixture
async def _close_thread_connections() -> AsyncIterator[None]:
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.usefixtures("_close_thread_connections")
async def test_notes_unsafe_answers_the_synchronous_only_operation(database: str) -> None:
    """The ORM evaluated on the event loop: Django refuses, the socket gets the lesson."""
    await Note.objects.acreate(text="there is one")
    comm = await json_connected(JSON)
    reply = await command(comm, {"type": "notes.unsafe"})
    assert (reply["type"], reply["code"]) == ("error", "synchronous_only_operation")
    assert "You cannot call this from an async context" in reply["message"]
    assert "database_sync_to_async" in reply["message"]
    assert "Traceback" not in reply["message"]
    assert (await command(comm, {"type": "notes"}))["notes"][0]["text"] == "there is one"
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_two_async_sockets_of_one_process_block_at_the_same_time() -> None:
    """
    Two sockets `await asyncio.sleep(0.6)` at once: the loop runs both, so the server-side
    sleeps overlap (each starts before the other ends), and both answers arrive long before
    the 1.2 s two sleeps in turn would take.
    """
    a, b = await json_connected(JSON), await json_connected(JSON)
    started = time.perf_counter()
    await a.send_json_to({"type": "block", "seconds": 0.6})
    await b.send_json_to({"type": "block", "seconds": 0.6})
    replies = [await a.receive_json_from(timeout=5), await b.receive_json_from(timeout=5)]
    elapsed = time.perf_counter() - started
    first, second = sorted(replies, key=lambda r: r["started"])
    assert second["started"] < first["ended"], (first, second)  # at the same time
    assert all(r["how"] == "await asyncio.sleep" and r["waited"] >= 0.6 for r in replies)
    assert elapsed < 1.2
    for comm in (a, b):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_block_on_the_loop_stalls_every_other_socket(settings) -> None:
    """
    `time.sleep` on the event loop: another socket pinging its echo gets no answer for the
    whole sleep: the echo in flight waits for it to end.
    """
    lift_json_rate_limit(settings)
    a, b = await json_connected(JSON), await json_connected(JSON)
    block = {"type": "block", "seconds": 0.6, "on_loop": True}
    reply, trips = await echoes_during_block(a, b, block)
    assert (reply["how"], reply["waited"] >= 0.6) == ("time.sleep on the event loop", True)
    # Not one echo went and came back while the sleep lasted...
    assert not [t for t in trips if reply["started"] < t[0] and t[1] < reply["ended"]], trips
    # ... and the echo in flight meanwhile waited for most of it.
    assert any(got >= reply["ended"] and got - sent >= 0.4 for sent, got in trips), trips
    for comm in (a, b):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_awaited_block_lets_every_other_socket_go_on(settings) -> None:
    """`await asyncio.sleep`: the other socket's echoes keep coming back during the sleep."""
    lift_json_rate_limit(settings)
    a, b = await json_connected(JSON), await json_connected(JSON)
    reply, trips = await echoes_during_block(a, b, {"type": "block", "seconds": 0.6})
    assert reply["how"] == "await asyncio.sleep"
    during = [t for t in trips if reply["started"] < t[0] and t[1] < reply["ended"]]
    assert len(during) >= 5, trips
    for comm in (a, b):
        await comm.disconnect()


class Probed(AsyncJsonConsumer):
    """The JSON consumer, plus a `probe` command: is a connection open as a handler starts?"""

    async def receive_json(self, content: dict[str, Any]) -> None:
        if content["type"] != "probe":
            return await super().receive_json(content)
        alias = router.db_for_read(Note)
        is_open = await sync_to_async(lambda: connections[alias].connection is not None)()
        await self.send_json({"type": "probe", "open": is_open})


class ProbedWithTheMixin(NoDatabaseMixin, Probed):
    """The mistake: the lean dispatch on a consumer that uses the ORM."""


@pytest.mark.usefixtures("_close_thread_connections")
@pytest.mark.parametrize(("consumer", "left_open"), [(Probed, False), (ProbedWithTheMixin, True)])
async def test_stock_dispatch_closes_the_connection_the_async_orm_left_open(
    consumer: type, left_open: bool, database: str
) -> None:
    """
    Why the JSON consumer must not use NoDatabaseMixin: the async ORM leaves a connection
    open in the thread-sensitive thread, and only the stock dispatch's
    `aclose_old_connections()`, before every handler, closes it once it is obsolete
    (CONN_MAX_AGE 0: at once). With the mixin the next handler finds it still open, however
    old or broken it is.
    """
    assert settings.DATABASES[database]["CONN_MAX_AGE"] == 0
    # asgiref's communicator: Channels' own turns close_old_connections into a no-op.
    app = PlainCommunicator(consumer.as_asgi(), SCOPE)
    await app.send_input({"type": "websocket.connect"})
    await app.receive_output()
    for text in ('{"type": "notes"}', '{"type": "probe"}'):
        await app.send_input({"type": "websocket.receive", "text": text})
        reply = json.loads((await app.receive_output())["text"])
    assert reply == {"type": "probe", "open": left_open}
    await app.send_input({"type": "websocket.disconnect", "code": 1000})
    await app.wait(timeout=1)
