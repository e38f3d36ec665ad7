"""
The lobby across server processes: two real daphne processes, one real redis-server.

Each test starts daphne A and daphne B on free ports with REDIS_URL pointing at the session's
own redis-server (database 3, emptied first) and this test run's database (a SQLite file or
a PostgreSQL database), so both processes and the test share users and sessions. Users log in
over HTTP through the login form (CSRF token included), and talk to the sockets with the
`websockets` client, sending an Origin header as a browser would.
"""

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.error import HTTPError

import pytest
import redis
from django.contrib.auth import get_user_model
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from apps.auth_ws.tests.helpers import PASSWORD, FormClient, lobby, logged_in
from tools.servers import ServerProcess, database_env, running, server_env, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)

PRESENCE_TTL = 2.0  # seconds: a heartbeat every 0.67 s


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, transactional_db: None, redis_url: str, settings
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Daphne A and B on one Redis; `request.param` may pick the layer (core or pubsub)."""
    url = redis_url.rsplit("/", 1)[0] + "/3"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    env = server_env(
        REDIS_URL=url,
        **database_env(settings.DATABASES["default"]),
        FAST_PASSWORD_HASHER="1",
        PRESENCE_TTL=str(PRESENCE_TTL),
        CHANNEL_LAYER=getattr(request, "param", "core"),
        # The lobby budget's refill, too slow to matter within a test: what it lets through is
        # the burst exactly, however slowly a loaded machine sends.
        WS_LIMITS=json.dumps({"lobby_per_user": {"messages_per_second": 0.001}}),
    )
    with running(start_daphne(env)) as a, running(start_daphne(env)) as b:
        yield a, b


@pytest.fixture
def users(transactional_db: None) -> None:
    for name in ("xavier", "yvonne"):
        get_user_model().objects.create_user(name, password=PASSWORD)


async def receive(ws: ClientConnection, within: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), within))


async def greeting(ws: ClientConnection) -> dict[str, Any]:
    """
    A fresh lobby socket's hello without its channel name (a layer's, checked here), past the
    `resume` that follows it (nothing said yet).
    """
    hello = await receive(ws)
    assert "specific." in hello.pop("channel")  # pub/sub names start "asgispecific."
    assert await receive(ws) == {
        "type": "resume", "after": None, "missed": 0, "complete": True, "oldest": None
    }  # fmt: skip
    return hello


async def silent(ws: ClientConnection, seconds: float) -> bool:
    try:
        message = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {message!r}")


async def closed_with(ws: ClientConnection, within: float = 5) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), within)
    return closed.value.rcvd.code


@pytest.mark.parametrize("servers", ["core", "pubsub"], indirect=True)
async def test_chat_presence_and_logout_across_two_processes(
    servers: tuple[ServerProcess, ServerProcess], users: None
) -> None:
    a, b = servers
    x = await logged_in(a, "xavier")
    y = await logged_in(b, "yvonne")

    async with AsyncExitStack() as sockets:
        # The hello says which process holds the socket: X is on A, Y on B.
        x_on_a = await sockets.enter_async_context(lobby(a, x))
        assert await greeting(x_on_a) == {
            "type": "hello",
            "user": "xavier",
            "process": a.process.pid,
        }
        assert await receive(x_on_a) == {"type": "presence", "users": ["xavier"]}
        y_on_b = await sockets.enter_async_context(lobby(b, y))
        assert await greeting(y_on_b) == {
            "type": "hello",
            "user": "yvonne",
            "process": b.process.pid,
        }
        assert await receive(y_on_b) == {"type": "presence", "users": ["xavier", "yvonne"]}
        # Y's arrival on B reaches X on A through Redis.
        assert await receive(x_on_a) == {"type": "presence", "users": ["xavier", "yvonne"]}

        await x_on_a.send(json.dumps({"type": "chat", "text": "hello from A"}))
        for ws in (y_on_b, x_on_a):
            message = await receive(ws)
            assert (message["user"], message["text"]) == ("xavier", "hello from A")
        await y_on_b.send(json.dumps({"type": "chat", "text": "hi from B", "user": "xavier"}))
        for ws in (x_on_a, y_on_b):
            message = await receive(ws)
            assert (message["user"], message["text"]) == ("yvonne", "hi from B")

        # X opens a second tab, on B: counted once, so nobody hears of it.
        async with lobby(b, x) as x_on_b:
            assert (await receive(x_on_b))["process"] == b.process.pid
            resume = await receive(x_on_b)  # a fresh tab: the two messages above, recent
            assert (resume["type"], resume["missed"]) == ("resume", 2)
            assert [(await receive(x_on_b))["text"] for _ in range(2)] == [
                "hello from A",
                "hi from B",
            ]
            assert await receive(x_on_b) == {"type": "presence", "users": ["xavier", "yvonne"]}
            assert await silent(y_on_b, 0.5)

            # Logging out over HTTP on A closes both of X's sockets, the one on B included.
            started = time.monotonic()
            await asyncio.to_thread(x.log_out)
            assert await closed_with(x_on_a) == 4401
            assert await closed_with(x_on_b) == 4401
            elapsed = time.monotonic() - started
            print(f"\nlogout on A -> both of X's sockets closed (A and B): {elapsed * 1000:.0f} ms")

        # Y stays, hears X go, and goes on chatting.
        assert await receive(y_on_b) == {"type": "presence", "users": ["yvonne"]}
        await y_on_b.send(json.dumps({"type": "chat", "text": "alone now"}))
        assert (await receive(y_on_b))["text"] == "alone now"


async def test_a_killed_process_takes_its_users_offline(
    servers: tuple[ServerProcess, ServerProcess], users: None
) -> None:
    a, b = servers
    x = await logged_in(a, "xavier")
    y = await logged_in(b, "yvonne")
    async with lobby(a, x) as x_on_a, lobby(b, y) as y_on_b:
        await greeting(x_on_a)
        await receive(x_on_a)
        await greeting(y_on_b)
        await receive(y_on_b)
        assert await receive(x_on_a) == {"type": "presence", "users": ["xavier", "yvonne"]}

        # No goodbye from B: no disconnect handler runs, Y's entry just stops being refreshed.
        b.stop(signal.SIGKILL)
        started = time.monotonic()
        assert await receive(x_on_a, within=PRESENCE_TTL * 3) == {
            "type": "presence",
            "users": ["xavier"],
        }
        elapsed = time.monotonic() - started
        print(f"\nB killed -> Y gone from X's list on A: {elapsed:.2f} s (TTL {PRESENCE_TTL} s)")
        assert elapsed < PRESENCE_TTL + PRESENCE_TTL / 3 + 1


async def closed_after_any(ws: ClientConnection, within: float = 5) -> int:
    """Read whatever is still queued until the socket closes; return the close code."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    return closed.value.rcvd.code


async def open_stream(
    server: ServerProcess, client: FormClient, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw GET of an event stream on this server with the client's cookie; headers read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Cookie: {client.cookie_header()}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer  # the writer too: once it is collected, the connection closes


async def next_event(reader: asyncio.StreamReader, name: str, within: float = 5) -> str:
    """Read the stream until an event of this name; return its data line."""
    deadline = time.monotonic() + within
    event = None
    while time.monotonic() < deadline and not reader.at_eof():
        line = (await asyncio.wait_for(reader.readline(), deadline - time.monotonic())).strip()
        if line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: ") and event == name:
            return line[6:].decode()
        elif not line:
            event = None
    raise AssertionError(f"no {name} event within {within} s (or before the stream ended)")


async def test_logout_on_one_process_closes_every_socket_and_stream_on_the_other(
    servers: tuple[ServerProcess, ServerProcess], users: None
) -> None:
    a, b = servers
    x = await logged_in(a, "xavier")
    headers = {"Cookie": x.cookie_header()}
    paths = ["/ws/auth/", "/ws/sc/json/", "/ws/ac/json/", "/ws/jobs/"]
    async with AsyncExitStack() as stack:
        sockets = {
            path: await stack.enter_async_context(
                connect(b.ws_url + path, origin=b.http_url, additional_headers=headers)
            )
            for path in paths
        }
        for path in paths[1:]:
            ws = sockets[path]
            await ws.send(json.dumps({"type": "info"}))
            while (reply := await receive(ws))["type"] != "info":  # the jobs socket's hello
                pass
            assert (reply["user"], reply["process"]) == ("xavier", b.process.pid)
        stream, _writer = await open_stream(b, x, "/sse/lobby/")
        assert json.loads(await next_event(stream, "hello"))["user"] == "xavier"

        await asyncio.to_thread(x.log_out)  # on A
        for path, ws in sockets.items():
            assert await closed_after_any(ws) == 4401, path
        assert json.loads(await next_event(stream, "bye")) == {"reason": "logged out"}


async def test_one_users_lobby_budget_is_shared_by_every_process(
    servers: tuple[ServerProcess, ServerProcess], users: None
) -> None:
    # WS_LIMITS["lobby_per_user"] (burst 20; its refill is slowed in `servers`) is one bucket
    # in Redis: POSTs that alternate between the processes get exactly the burst through.
    a, b = servers
    x = [await logged_in(server, "xavier") for server in (a, b)]
    statuses = [await asyncio.to_thread(say, x[n % 2], f"flood {n}") for n in range(40)]
    # Refusals alternate between the processes too: neither kept a budget of its own.
    assert statuses == [201] * 20 + [429] * 20, statuses


def say(client: FormClient, text: str) -> int:
    """POST /http/lobby/say/ with the client's session and CSRF token; the status."""
    try:
        return client.post("/http/lobby/say/", {"text": text})
    except HTTPError as error:
        return error.code
