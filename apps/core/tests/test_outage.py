"""
A Redis outage inside a consumer ends in one place (apps/core/outage.py): close 4503, one log
line, no traceback; anything else is still raised.
"""

import asyncio
import logging
import sys

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.core.outage import (
    READER_RACE,
    ChannelLayerOutageMixin,
    QuietWhenUnreachable,
    is_unreachable,
)


class FailingConsumer(ChannelLayerOutageMixin, AsyncWebsocketConsumer):
    """Accepts (or not), then meets the error named in the path."""

    async def connect(self) -> None:
        """Fail as the path says."""
        *_, accept, error = self.scope["path"].strip("/").split("/")
        if accept == "accept":
            await self.accept()
        raise {"redis": RedisConnectionError("Connection closed by server."), "bug": ValueError}[
            error
        ]


@pytest.mark.parametrize("accept", ["accept", "before-accept"])
async def test_an_unreachable_redis_closes_4503(accept: str) -> None:
    comm = WebsocketCommunicator(FailingConsumer.as_asgi(), f"/ws/{accept}/redis/")
    connected, _ = await comm.connect()
    # Accepted in any case: a close before accept would reach a browser as a refused handshake.
    assert connected
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4503}
    await comm.wait()  # the application ended, without raising


async def test_other_errors_are_still_raised() -> None:
    comm = WebsocketCommunicator(FailingConsumer.as_asgi(), "/ws/accept/bug/")
    assert (await comm.connect())[0]
    with pytest.raises(ValueError):
        await comm.wait()


def test_is_unreachable_follows_the_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as error:
            raise RuntimeError("while talking to Redis") from error
    except RuntimeError as outer:
        assert is_unreachable(outer)
    assert is_unreachable(RedisConnectionError())
    assert not is_unreachable(RuntimeError("no cause"))
    assert not is_unreachable(ValueError())


def record(name: str, error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "Unexpected %s", ("x",), exc_info)


def test_the_filter_turns_channels_redis_outage_tracebacks_into_a_line() -> None:
    quiet = QuietWhenUnreachable()
    outage = record("channels_redis.pubsub", RedisConnectionError("Error 111 connecting"))
    assert quiet.filter(outage)
    assert outage.exc_info is None and outage.levelname == "WARNING"
    assert outage.getMessage() == (
        "Unexpected x (Redis unreachable: ConnectionError: Error 111 connecting)"
    )
    cleanup = record("channels_redis.pubsub", asyncio.CancelledError())
    assert quiet.filter(cleanup) and cleanup.exc_info is None
    race = record(
        "channels_redis.pubsub",
        RuntimeError(
            "readuntil() called while another coroutine is already waiting for incoming data"
        ),
    )
    assert quiet.filter(race)
    assert race.exc_info is None and race.levelname == "WARNING"
    assert "two readers of one reconnecting connection" in race.getMessage()
    # Anything else keeps its traceback.
    for name, error in [
        ("channels_redis.core", ValueError("bug")),
        ("channels_redis.pubsub", RuntimeError("another bug")),
        ("daphne", RedisConnectionError()),
        ("daphne", RuntimeError(f"readuntil() {READER_RACE}")),
    ]:
        kept = record(name, error)
        assert quiet.filter(kept)
        assert kept.exc_info is not None and kept.levelname == "ERROR"
