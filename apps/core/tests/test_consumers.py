"""
NoDatabaseMixin: async consumers dispatch without Channels' per-message database cleanup.

The cleanup is counted where stock dispatch calls it: `channels.consumer.aclose_old_connections`
(the real one still runs). channels.testing silences `close_old_connections` itself while a
communicator talks to the application, so the count is taken one level up.
"""

from collections.abc import Awaitable, Callable

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator

from apps.core.consumers import NoDatabaseMixin
from apps.core.tests.contract import communicator
from apps.echo_async import consumers


class Cleanups:
    """Counts the calls of the real per-message cleanup."""

    def __init__(self, real: Callable[[], Awaitable[None]]) -> None:
        self.real = real
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        await self.real()


@pytest.fixture
def cleanups(monkeypatch: pytest.MonkeyPatch) -> Cleanups:
    from channels import consumer

    spy = Cleanups(consumer.aclose_old_connections)
    monkeypatch.setattr(consumer, "aclose_old_connections", spy)
    return spy


class StockEcho(AsyncWebsocketConsumer):
    """What the project's generic async echo would be without the mixin."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


@pytest.mark.parametrize(
    "consumer", [consumers.AsyncEchoConsumer, consumers.AsyncGenericEchoConsumer]
)
def test_the_project_async_consumers_use_the_mixin_dispatch(consumer: type) -> None:
    assert consumer.dispatch is NoDatabaseMixin.dispatch


def test_the_async_json_consumer_keeps_the_stock_dispatch() -> None:
    """It uses the async ORM: the cleanup before each handler is what it needs (docs/styles.md)."""
    assert not issubclass(consumers.AsyncJsonConsumer, NoDatabaseMixin)


async def test_stock_async_dispatch_cleans_up_before_every_message(
    cleanups: Cleanups,
) -> None:
    comm = WebsocketCommunicator(StockEcho.as_asgi(), "/stock/")
    assert (await comm.connect())[0]
    before = cleanups.calls
    for text in ("a", "b", "c"):
        await comm.send_to(text_data=text)
        assert await comm.receive_from() == text
    assert cleanups.calls - before == 3
    await comm.disconnect()


@pytest.mark.parametrize("path", ["/ws/ac/", "/ws/ac/generic/"])
async def test_mixin_echoes_without_the_cleanup_hop(cleanups: Cleanups, path: str) -> None:
    comm = communicator(path)
    assert (await comm.connect())[0]
    for text in ("a", "b", "c"):
        await comm.send_to(text_data=text)
        assert await comm.receive_from() == text
    assert cleanups.calls == 0
    await comm.disconnect()


async def test_mixin_refuses_a_message_type_without_a_handler() -> None:
    consumer = consumers.AsyncGenericEchoConsumer()
    with pytest.raises(ValueError, match=r"No handler for message type chat\.nothing"):
        await consumer.dispatch({"type": "chat.nothing"})
