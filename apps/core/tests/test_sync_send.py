"""
QueuedSendMixin: a sync handler's sends do not wait for the event loop, yet keep their order,
go out while the handler still runs, and surface their failures. Each test runs in both
SYNC_SEND modes, so the stock behaviour is held to the same promises.

The consumer runs under a small ASGI harness instead of a communicator so that its `send` can
hold messages back or fail, as a server's can.
"""

import asyncio
import threading
import time
from typing import Any

import pytest
from channels.consumer import SyncConsumer
from channels.exceptions import StopConsumer

from apps.core.consumers import QueuedSendMixin
from apps.echo_sync import consumers

DEADLINE = 5.0  # seconds; only reached when something is broken


class Scripted(QueuedSendMixin, SyncConsumer):
    """A sync consumer that does what each received text names (see the tests)."""

    def websocket_connect(self, event: dict[str, Any]) -> None:
        self.send({"type": "websocket.accept"})

    def websocket_receive(self, event: dict[str, Any]) -> None:
        command, *args = event["text"].split()
        getattr(self, command)(*args)

    def websocket_disconnect(self, event: dict[str, Any]) -> None:
        raise StopConsumer()

    def text(self, text: str) -> None:
        self.send({"type": "websocket.send", "text": text})

    def burst(self, count: str) -> None:
        """Many sends, then a close."""
        for n in range(int(count)):
            self.text(str(n))
        self.send({"type": "websocket.close", "code": 4000})

    def pause(self) -> None:
        """A send, then blocking code until the test says go, then another send."""
        self.text("before")
        assert self.scope["go"].wait(DEADLINE)
        self.text("after")

    def boom(self) -> None:
        """A send the server refuses, then sends until one raises (as handler code sees it)."""
        self.text("ok")
        try:
            self.text("boom")
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                self.text("late")
                time.sleep(0.001)
        except RuntimeError as error:
            self.scope["caught"].append(error)
            raise

    def boom_last(self) -> None:
        """A refused send as the handler's last act."""
        self.text("boom")

    def three(self) -> None:
        """Three sends; tell the test once the handler is past them."""
        for text in ("a", "b", "c"):
            self.text(text)
        self.scope["returned"].set()


class Harness:
    """The server side: a receive queue, and a send that records, may wait, and refuses 'boom'."""

    def __init__(self, **scope: Any) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        scope = {"type": "websocket", "path": "/scripted/", "headers": [], **scope}
        self.app = asyncio.create_task(Scripted.as_asgi()(scope, self.inbox.get, self.send))

    async def send(self, message: dict[str, Any]) -> None:
        await self.gate.wait()
        if message.get("text") == "boom":
            raise RuntimeError("the server refused this message")
        self.sent.append(message)

    async def command(self, text: str) -> None:
        await self.inbox.put({"type": "websocket.receive", "text": text})

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]

    async def until(self, condition: Any) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert time.monotonic() < deadline, self.sent
            await asyncio.sleep(0.005)

    async def open(self) -> None:
        await self.inbox.put({"type": "websocket.connect"})
        await self.until(lambda: self.sent)
        assert self.sent == [{"type": "websocket.accept"}]

    async def finish(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.app, DEADLINE)


@pytest.fixture(params=["queued", "stock"], autouse=True)
def mode(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.SYNC_SEND = request.param
    return request.param


@pytest.mark.parametrize(
    "consumer",
    [consumers.SyncEchoConsumer, consumers.SyncGenericEchoConsumer, consumers.SyncJsonConsumer],
)
def test_the_project_sync_consumers_use_the_mixin(consumer: type, mode: str) -> None:
    assert consumer.dispatch is QueuedSendMixin.dispatch


async def test_many_sends_then_a_close_arrive_in_order() -> None:
    harness = Harness()
    await harness.open()
    await harness.command("burst 2000")
    await harness.command("text next")  # the next message's sends come after all of them
    await harness.until(lambda: len(harness.sent) == 2003)
    assert harness.texts()[:2000] == [str(n) for n in range(2000)]
    assert harness.sent[2001] == {"type": "websocket.close", "code": 4000}
    assert harness.sent[2002] == {"type": "websocket.send", "text": "next"}
    await harness.finish()


async def test_sends_go_out_while_the_handler_still_runs() -> None:
    go = threading.Event()
    harness = Harness(go=go)
    await harness.open()
    await harness.command("pause")
    await harness.until(lambda: harness.texts() == ["before"])
    go.set()
    await harness.until(lambda: harness.texts() == ["before", "after"])
    await harness.finish()


async def test_a_queued_send_returns_before_the_server_has_sent(mode: str) -> None:
    returned = threading.Event()
    harness = Harness(returned=returned)
    await harness.open()
    harness.gate.clear()  # the server takes its time over every send from now on
    await harness.command("three")
    handler_returned = await asyncio.to_thread(returned.wait, 0.3 if mode == "stock" else DEADLINE)
    assert handler_returned is (mode == "queued")
    harness.gate.set()
    await harness.until(lambda: harness.texts() == ["a", "b", "c"])
    await harness.finish()


async def test_a_failed_send_raises_in_the_handler_and_ends_the_consumer() -> None:
    caught: list[Exception] = []
    harness = Harness(caught=caught)
    await harness.open()
    await harness.command("boom")
    with pytest.raises(RuntimeError, match="refused") as raised:
        await asyncio.wait_for(harness.app, DEADLINE)
    assert caught == [raised.value]  # handler code saw it (queued: on a later send)
    assert harness.texts() == ["ok"]  # nothing after the refused message went out


async def test_a_failed_last_send_ends_the_consumer() -> None:
    harness = Harness()
    await harness.open()
    await harness.command("boom_last")
    with pytest.raises(RuntimeError, match="refused"):
        await asyncio.wait_for(harness.app, DEADLINE)
