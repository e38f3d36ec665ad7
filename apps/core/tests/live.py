"""
Helpers for tests that talk to a real server process (tools/servers.py) over real sockets and
HTTP, as a browser would: JSON sockets, and a Server-Sent Events stream.
"""

import asyncio
import json
import time
from typing import Any
from urllib.request import urlopen

from websockets.asyncio.client import ClientConnection, connect

from tools.servers import ServerProcess

# A safety net, not a measure: what a test waits for comes well within it, even under load.
GIVE_UP_SECONDS = 60.0


async def json_socket(server: ServerProcess, path: str) -> tuple[ClientConnection, dict]:
    """Open a socket to a JSON endpoint from the server's own origin; return it and its hello."""
    # No limit on unread messages: websockets otherwise stops reading at 16, and then cannot
    # see the server's close either (close() waits its 10 s timeout).
    socket = await connect(server.ws_url + path, origin=server.http_url, max_queue=None)
    if path.startswith("/ws/jobs/"):
        return socket, json.loads(await socket.recv())  # the jobs socket says hello first
    return socket, {}


async def receive_until(socket: ClientConnection, *types: str) -> list[dict[str, Any]]:
    """Every envelope the socket receives, up to and including the first of one of `types`."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(GIVE_UP_SECONDS):
        while not seen or seen[-1]["type"] not in types:
            seen.append(json.loads(await socket.recv()))
    return seen


async def run_job(socket: ClientConnection, n: int) -> tuple[float, list[dict[str, Any]]]:
    """Send a job and wait for its end (`done`, or an error): the seconds it took, the replies."""
    sent = time.monotonic()
    await socket.send(json.dumps({"type": "job", "n": n}))
    replies = await receive_until(socket, "done", "error")
    return time.monotonic() - sent, replies


async def open_event_stream(
    server: ServerProcess, path: str = "/sse/ticks/"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """GET an event stream and read until its first event: the stream is open and flowing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    async with asyncio.timeout(GIVE_UP_SECONDS):
        await reader.readuntil(b"\r\n\r\n")  # the headers
        await reader.readuntil(b"\n\n")  # the end of the first event
    return reader, writer


async def stats(server: ServerProcess) -> dict[str, Any]:
    """The server's /stats/ (it must run with SHOWCASE_STATS=1)."""

    def fetch() -> dict[str, Any]:
        with urlopen(server.http_url + "/stats/", timeout=GIVE_UP_SECONDS) as response:  # noqa: S310
            return json.load(response)

    return await asyncio.to_thread(fetch)


async def wait_for_sockets(server: ServerProcess, count: int) -> None:
    """
    Wait until exactly `count` socket consumers live in the server (SHOWCASE_STATS=1): every
    socket that closed has then finished what its consumer does on the way out.
    """
    async with asyncio.timeout(GIVE_UP_SECONDS):
        # Another process's state: there is nothing to await but a fresh look.
        while (await stats(server))["instances"].get("websocket", 0) != count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
