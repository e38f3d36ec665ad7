"""
Limits per user and per client address (apps/core/throttle.py, connections.py): lobby messages
whatever path they take, open sockets and streams, unfinished jobs. Each was unbounded in
issue 21's probe (180 of alice's chats stored from 20 sockets; 600 sockets for one user).
Across two processes and Redis: apps/auth_ws/tests/test_multiprocess.py.
"""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator
from django.db import connections
from django.test import AsyncClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.auth_ws.presence import close_presence
from apps.core import lobby, throttle
from apps.core.connections import OPEN
from apps.core.tests.accounts import create_users, log_in, session_cookie
from apps.core.tests.contract import HOST, communicator, expect_close
from config.asgi import application
from tools.servers import running, server_env, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _clean(settings) -> AsyncIterator[None]:
    settings.JOBS_IN_PROCESS = False  # jobs stay queued: nothing finishes behind the test
    yield
    await close_presence()
    await lobby.close_history()
    await throttle.close_store()
    await get_channel_layer().flush()
    await sync_to_async(connections.close_all)()
    assert not OPEN.counts, "a connection was never counted out"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, settings) -> str:
    """The limits' store: this process's memory, or the session's redis-server."""
    settings.REDIS_URL = ""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/5"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        settings.REDIS_URL = url
    return request.param


def limits(settings, **kinds: dict) -> None:
    """Set some WS_LIMITS kinds, keeping the others."""
    settings.WS_LIMITS = {**settings.WS_LIMITS, **kinds}


@pytest.fixture
async def cookies() -> dict[str, bytes]:
    """alice's and bob's session cookies."""
    await sync_to_async(create_users)("alice", "bob")
    return {name: session_cookie(await log_in(name)) for name in ("alice", "bob")}


async def lobby_socket(cookie: bytes) -> object:
    comm = communicator("/ws/auth/", cookie=cookie)
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["type"] == "hello"
    return comm


async def drain(comm: object) -> list[dict]:
    """Everything the socket has been sent so far."""
    found = []
    while not await comm.receive_nothing(0.2):
        found.append(await comm.receive_json_from())
    return found


# ------------------------------------------------------------------ lobby messages per user


async def test_one_user_cannot_flood_the_lobby_from_many_sockets_or_http(
    store: str, settings, cookies: dict[str, bytes]
) -> None:
    limits(
        settings,
        lobby={**settings.WS_LIMITS["lobby"], "messages_per_second": 0},  # per socket: off
        lobby_per_user={"messages_per_second": 0.01, "burst": 5},
    )
    bob = await lobby_socket(cookies["bob"])
    alice = [await lobby_socket(cookies["alice"]) for _ in range(3)]
    await drain(bob)
    for comm in alice:
        await drain(comm)
        for n in range(3):
            await comm.send_json_to({"type": "chat", "text": f"flood {n}"})
    refused = []
    for comm in alice:
        refused += [m for m in await drain(comm) if m["type"] == "error"]
    chats = [m for m in await drain(bob) if m["type"] == "chat"]
    assert len(chats) == 5 and {c["user"] for c in chats} == {"alice"}
    assert [m["code"] for m in refused] == ["rate_limited"] * 4
    # The same budget over HTTP; bob's is his own.
    client = AsyncClient()
    client.cookies["sessionid"] = cookies["alice"].decode().split("=", 1)[1]
    response = await client.post("/http/lobby/say/", {"text": "and over HTTP"})
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    await bob.send_json_to({"type": "chat", "text": "bob is fine"})
    assert [m["text"] for m in await drain(bob) if m["type"] == "chat"] == ["bob is fine"]
    for comm in [bob, *alice]:  # every socket stayed open
        await drain(comm)
        await comm.send_json_to({"type": "who"})
        assert (await comm.receive_json_from())["type"] == "presence"
        await comm.disconnect()


# ------------------------------------------------------------------ open connections


async def test_open_sockets_per_user_close_4429_and_free_their_place(
    settings, cookies: dict[str, bytes]
) -> None:
    limits(settings, connections={"per_user": 3, "per_address": 0})
    alice = [communicator("/ws/ac/json/", cookie=cookies["alice"]) for _ in range(3)]
    for comm in alice:
        assert (await comm.connect())[0]
    extra = communicator("/ws/sc/json/", cookie=cookies["alice"])
    assert (await extra.connect())[0]  # accepted, then closed: the browser sees the code
    closed = await expect_close(extra)
    assert (closed["code"], closed["reason"]) == (
        4429,
        "too many open connections: at most 3 per user",
    )
    await extra.disconnect()
    bob = communicator("/ws/sc/json/", cookie=cookies["bob"])
    assert (await bob.connect())[0]
    await bob.send_json_to({"type": "echo", "data": 1})
    assert (await bob.receive_json_from())["type"] == "echo"
    await alice[0].disconnect()
    again = communicator("/ws/ac/json/", cookie=cookies["alice"])
    assert (await again.connect())[0]
    await again.send_json_to({"type": "echo", "data": 2})
    assert (await again.receive_json_from())["type"] == "echo"
    for comm in [again, bob, *alice[1:]]:
        await comm.disconnect()


async def test_open_sockets_and_streams_per_address(settings) -> None:
    limits(settings, connections={"per_user": 0, "per_address": 2})

    def from_address(path: str, address: str) -> object:
        comm = communicator(path)
        comm.scope["client"] = [address, 40000]
        return comm

    first, second = (from_address("/ws/sc/generic/", "203.0.113.5") for _ in range(2))
    assert (await first.connect())[0] and (await second.connect())[0]
    third = from_address("/ws/ac/generic/", "203.0.113.5")
    assert (await third.connect())[0]
    assert (await expect_close(third))["code"] == 4429
    await third.disconnect()
    elsewhere = from_address("/ws/ac/generic/", "198.51.100.9")
    assert (await elsewhere.connect())[0]
    await elsewhere.send_to(text_data="still served")
    assert await elsewhere.receive_from() == "still served"
    # An event stream counts too: the address's third connection gets HTTP 429.
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/sse/ticks/",
        "query_string": b"",
        "headers": [(b"host", HOST)],
        "client": ["203.0.113.5", 40001],
    }
    stream = ApplicationCommunicator(application, scope)
    await stream.send_input({"type": "http.request", "body": b"", "more_body": False})
    assert (await stream.receive_output(2))["status"] == 429
    await stream.wait(2)
    for comm in (first, second, elsewhere):
        await comm.disconnect()


# ------------------------------------------------------------------ jobs per user


async def test_unfinished_jobs_per_user_over_all_their_sockets(
    settings, cookies: dict[str, bytes]
) -> None:
    limits(settings, jobs_per_user={"limit": 3, "hold_seconds": 60})
    settings.JOBS_PER_SOCKET = 2

    async def jobs_socket(cookie: bytes) -> object:
        comm = communicator("/ws/jobs/", cookie=cookie)
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from())["type"] == "hello"
        return comm

    async def job(comm: object) -> dict:
        await comm.send_json_to({"type": "job", "n": 1000})
        return await comm.receive_json_from()

    first, second = await jobs_socket(cookies["alice"]), await jobs_socket(cookies["alice"])
    answers = [await job(first), await job(first), await job(second), await job(second)]
    assert [a["type"] for a in answers] == ["queued", "queued", "queued", "error"]
    assert answers[-1]["code"] == "too_many_jobs" and "per user" in answers[-1]["message"]
    bob = await jobs_socket(cookies["bob"])
    assert (await job(bob))["type"] == "queued"
    # A socket that leaves gives its unfinished jobs' places back.
    await first.disconnect()
    assert (await job(second))["type"] == "queued"
    await second.disconnect()
    await bob.disconnect()


async def test_a_real_client_sees_4429_for_a_socket_over_the_address_limit(tmp_path) -> None:
    # Over the wire, through daphne: accepted, then closed with the code (a refused handshake
    # would only ever show a browser 1006).
    env = server_env(
        DATABASE_PATH=str(tmp_path / "db.sqlite3"),
        WS_LIMITS=json.dumps({"connections": {"per_user": 0, "per_address": 2}}),
    )
    with running(start_daphne(env, name="daphne-limits")) as server:
        url = server.ws_url + "/ws/ac/generic/"
        async with (
            connect(url, origin=server.http_url),
            connect(url, origin=server.http_url),
            connect(url, origin=server.http_url) as third,
        ):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(third.recv(), 5)
        assert closed.value.rcvd.code == 4429
        assert not server.tracebacks()
