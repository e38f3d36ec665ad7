"""
Many lobby sockets arriving together and leaving at once, on a real daphne and redis-server.

A thousand sockets that leave together (a proxy restart, a network blip) each call Redis at the
same moment to leave their groups. redis-py's own pool raises `MaxConnectionsError` past its
bound, so those leaves failed with a traceback each and their channels stayed in the group.
Here the process's pools are bounded far below the herd (REDIS_MAX_CONNECTIONS=2), so every
command that finds them busy must wait its turn, and afterwards the lobby group in Redis must
hold exactly the channels of the sockets still open.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.asyncio.client import ClientConnection, connect

from tools.servers import ServerProcess, database_env, running, server_env, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)

SOCKETS = 200
STAYING = 10
ARRIVING = 20
POOL = 2  # the channel layer's receive loop holds one connection: one left for the herd
GROUP_KEY = "asgi:group:lobby"  # channels-redis: a sorted set of channel names per group
PRESENCE_KEY = "auth_ws:presence"  # apps/auth_ws/presence.py: "channel|username" members


@pytest.fixture
def url(redis_url: str) -> str:
    """Database 7 of the session's redis-server, emptied."""
    url = redis_url.rsplit("/", 1)[0] + "/7"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def lobby_server(settings, url: str, transactional_db: None) -> Iterator[ServerProcess]:
    """One daphne on that Redis, with tiny Redis pools."""
    env = server_env(
        REDIS_URL=url,
        **database_env(settings.DATABASES["default"]),
        REDIS_MAX_CONNECTIONS=str(POOL),
        PRESENCE_TTL="30",
        # A herd of one user from one address: lift the limits per user and address (4429).
        WS_LIMITS=json.dumps({"connections": {"per_user": 0, "per_address": 0}}),
    )
    # The cluster's handshake clock (deploy/supervisord.conf): a handshake may wait its turn.
    with running(start_daphne(env, extra_args=("--websocket_connect_timeout", "30"))) as server:
        yield server


@pytest.fixture
def cookie(transactional_db: None) -> str:
    """A session of one user: every socket is one more tab of it."""
    user = get_user_model().objects.create_user("herd", password="a long passphrase")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def joined(server: ServerProcess, cookie: str) -> ClientConnection:
    """A lobby socket, once it has had its presence (it is in the group and online)."""
    ws = await connect(
        server.ws_url + "/ws/auth/",
        origin=server.http_url,
        additional_headers={"Cookie": cookie},
        open_timeout=60,
    )
    while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "presence":
        pass
    return ws


def reset(ws: ClientConnection) -> None:
    """Drop the connection the way a vanished network does: a TCP reset, no close frame."""
    ws.transport.abort()


async def settled(condition: Callable[[], bool], within: float) -> None:
    """Return once `condition()` holds (Redis is read, not waited on), or after `within` s."""
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls Redis
        await asyncio.sleep(0.1)


def members(url: str) -> tuple[set[str], set[str]]:
    """The lobby group's channels, and the channels with a presence entry, as Redis holds them."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        group = set(client.zrange(GROUP_KEY, 0, -1))
        online = {member.split("|", 1)[0] for member in client.zrange(PRESENCE_KEY, 0, -1)}
    return group, online


async def test_a_herd_arrives_and_leaves_and_the_group_holds_exactly_who_stayed(
    lobby_server: ServerProcess, url: str, cookie: str
) -> None:
    # A herd arrives, ARRIVING handshakes in flight at a time (`make storm` sends a whole herd
    # through nginx to several processes; here one process's pools are the point).
    gate = asyncio.Semaphore(ARRIVING)

    async def arrive() -> ClientConnection:
        async with gate:
            return await joined(lobby_server, cookie)

    sockets = await asyncio.gather(*(arrive() for _ in range(SOCKETS)))
    group, online = members(url)
    assert len(group) == SOCKETS and group == online
    # ... and most of it leaves at once, without a goodbye.
    leaving, staying = sockets[STAYING:], sockets[:STAYING]
    for ws in leaving:
        reset(ws)
    await settled(lambda: len(members(url)[0]) <= STAYING, within=30)
    group, online = members(url)
    assert len(group) == STAYING, f"{len(group) - STAYING} channels left behind in the group"
    assert group == online  # the same channels: those of the sockets still open
    assert lobby_server.tracebacks() == []
    # The ones that stayed are still in the lobby: a chat reaches every one of them.
    await staying[0].send(json.dumps({"type": "chat", "text": "still here"}))
    for ws in staying:
        while (message := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "chat":
            pass
        assert message["text"] == "still here"
    for ws in staying:
        with contextlib.suppress(Exception):
            await ws.close()
    assert lobby_server.tracebacks() == []
