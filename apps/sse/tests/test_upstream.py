"""
Why EventStreamConsumer exists: the stock AsyncHttpConsumer's two ways to stream, both broken
(channels#1249, #1302, #1747). If Channels fixes this, these tests fail: time to revisit.
"""

import asyncio

from channels.generic.http import AsyncHttpConsumer
from channels.testing import ApplicationCommunicator

SCOPE = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}


class LoopInHandle(AsyncHttpConsumer):
    """Streams by never returning from handle()."""

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        while True:
            await self.send_body(b": tick\n\n", more_body=True)
            await asyncio.sleep(0.01)


class ReturnFromHandle(AsyncHttpConsumer):
    """Opens the stream and returns, hoping to write later from group messages."""

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        await self.send_body(b": opened\n\n", more_body=True)


async def test_a_handle_that_loops_never_sees_the_client_leave() -> None:
    app = ApplicationCommunicator(LoopInHandle.as_asgi(), dict(SCOPE))
    await app.send_input({"type": "http.request", "body": b""})
    assert (await app.receive_output())["type"] == "http.response.start"
    await app.send_input({"type": "http.disconnect"})
    # The dispatch loop is stuck inside handle(): the disconnect waits unseen, writes go on.
    for _ in range(5):
        assert (await app.receive_output())["body"] == b": tick\n\n"
    app.stop()


async def test_a_handle_that_returns_ends_the_consumer_with_the_body_open() -> None:
    app = ApplicationCommunicator(ReturnFromHandle.as_asgi(), dict(SCOPE))
    await app.send_input({"type": "http.request", "body": b""})
    assert (await app.receive_output())["type"] == "http.response.start"
    assert (await app.receive_output())["more_body"] is True
    await app.wait(timeout=1)  # already over: no group message could ever reach it
