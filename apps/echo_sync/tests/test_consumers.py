"""
The sync consumers against the shared echo contract, plus what is particular to them.

Every test here runs twice: with the project's queued sends and with Channels' stock ones
(SYNC_SEND, apps/core/consumers.py), so neither may break the contract.
"""

import threading
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator

from apps.core.tests.contract import EchoContract, JsonContract, OriginContract, communicator
from apps.echo_sync.consumers import SyncEchoConsumer

PREFIX = "/ws/sc/"


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
