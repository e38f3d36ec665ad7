"""
The lobby resumes: a socket opened with `?after=<id>` first gets what it missed since that id,
in order and once, announced by a `resume` envelope, then live messages.

Run twice: with the history and the channel layer in memory, and with both in the session's
real redis-server (RedisChannelLayer, database 5, emptied first).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from redis.asyncio import Redis

from apps.auth_ws.presence import close_presence, get_presence
from apps.auth_ws.tests.helpers import PASSWORD, log_in, session_cookie
from apps.core import lobby
from apps.core.tests.contract import communicator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(transactional_db: None) -> None:
    for name in ("alice", "bob"):
        get_user_model().objects.create_user(name, password=PASSWORD)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, settings) -> AsyncIterator[str]:
    """The lobby's history and channel layer in memory, or both in Redis."""
    settings.LOBBY_HISTORY = 10
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/5"
        async with Redis.from_url(url) as client:
            await client.flushdb()
        settings.REDIS_URL = url
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [url]},
            }
        }
    yield request.param
    await lobby.close_history()
    await close_presence()
    layer = get_channel_layer()
    await layer.flush()
    if hasattr(layer, "close_pools"):
        await layer.close_pools()
    await sync_to_async(connections.close_all)()


async def open_lobby(username: str, query: str = "") -> WebsocketCommunicator:
    """A logged-in lobby socket, past its hello."""
    cookie = session_cookie(await log_in(username))
    comm = communicator("/ws/auth/" + query, cookie=cookie)
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from(2))["type"] == "hello"
    return comm


async def until_presence(comm: WebsocketCommunicator) -> list[dict[str, Any]]:
    """Everything the socket receives before its first presence envelope."""
    received = []
    while (message := await comm.receive_json_from(2))["type"] != "presence":
        received.append(message)
    return received


async def chats(comm: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    """The next `count` chat envelopes (presence envelopes skipped)."""
    found = []
    while len(found) < count:
        message = await comm.receive_json_from(2)
        if message["type"] == "chat":
            found.append(message)
    return found


async def test_live_chat_carries_its_id(users: None, store: str) -> None:
    alice = await open_lobby("alice")
    await until_presence(alice)
    await alice.send_json_to({"type": "chat", "text": "hi"})
    (chat,) = await chats(alice, 1)
    assert set(chat) == {"type", "id", "user", "text", "at"}
    assert (await lobby.since(chat["id"] - 1)).messages[0]["text"] == "hi"
    await alice.disconnect()


async def test_resume_sends_what_was_missed_in_order_then_live(users: None, store: str) -> None:
    ids = [(await lobby.publish("alice", f"m{n}"))["id"] for n in range(4)]
    bob = await open_lobby("bob", f"?after={ids[0]}")
    resume, *replayed = await until_presence(bob)
    assert resume == {
        "type": "resume",
        "after": ids[0],
        "missed": 3,
        "complete": True,
        "oldest": ids[0],
    }
    assert [(c["type"], c["id"], c["user"], c["text"]) for c in replayed] == [
        ("chat", ids[n], "alice", f"m{n}") for n in (1, 2, 3)
    ]
    live = await lobby.publish("alice", "live")
    assert [c["id"] for c in await chats(bob, 1)] == [live["id"]]
    # Nothing missed: an empty, complete resume.
    again = await open_lobby("bob", f"?after={live['id']}")
    assert await until_presence(again) == [
        {"type": "resume", "after": live["id"], "missed": 0, "complete": True, "oldest": ids[0]}
    ]
    await bob.disconnect()
    await again.disconnect()


async def test_without_after_the_recent_messages_come_first_then_live(
    users: None, store: str, settings
) -> None:
    settings.LOBBY_RECENT = 3
    empty = await open_lobby("bob")
    assert await until_presence(empty) == [
        {"type": "resume", "after": None, "missed": 0, "complete": True, "oldest": None}
    ]
    await empty.disconnect()
    ids = [(await lobby.publish("alice", f"m{n}"))["id"] for n in range(5)]
    bob = await open_lobby("bob")
    resume, *recent = await until_presence(bob)
    # The newest three of the five, oldest first; two older ones are kept but not sent.
    assert resume == {"type": "resume", "after": None, "missed": 3, "complete": False,
                      "oldest": ids[0]}  # fmt: skip
    assert [(c["type"], c["id"], c["text"]) for c in recent] == [
        ("chat", ids[n], f"m{n}") for n in (2, 3, 4)
    ]
    live = await lobby.publish("alice", "live")
    assert [c["id"] for c in await chats(bob, 1)] == [live["id"]]
    await bob.disconnect()
    settings.LOBBY_RECENT = 50  # more than the history holds: all of it, complete
    carol = await open_lobby("bob")
    resume, *recent = await until_presence(carol)
    assert (resume["missed"], resume["complete"]) == (6, True)
    assert [c["id"] for c in recent] == [*ids, live["id"]]
    await carol.disconnect()


async def test_exactly_once_when_messages_arrive_during_the_resume(
    users: None, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Messages published between the socket joining the group and the history being read are
    both in the history and on their way live: each must reach the client once, in order.
    """
    first = (await lobby.publish("alice", "seen"))["id"]
    read_history = lobby.since

    async def since_while_chatting(after: int) -> lobby.Resume:
        # The socket is in the group now: these arrive live and are in the history.
        await asyncio.gather(*(lobby.publish("alice", f"during {n}") for n in range(3)))
        found = await read_history(after)
        # Stored after the read: live only.
        await lobby.publish("alice", "after the read")
        return found

    monkeypatch.setattr(lobby, "since", since_while_chatting)
    bob = await open_lobby("bob", f"?after={first}")
    resume, *received = await until_presence(bob)
    assert (resume["type"], resume["missed"], resume["complete"]) == ("resume", 3, True)
    assert [c["id"] for c in received] == [first + 1, first + 2, first + 3, first + 4]
    assert received[-1]["text"] == "after the read"
    assert await bob.receive_nothing(0.3)  # no second copy of "during n"
    await bob.disconnect()


async def test_concurrent_chatter_reaches_a_resuming_socket_exactly_once(
    users: None, store: str, settings
) -> None:
    settings.LOBBY_HISTORY = 100  # all of it is kept: this is about the overlap, not the bound
    start = (await lobby.publish("alice", "start"))["id"]
    cookie = session_cookie(await log_in("bob"))
    total = 30

    async def chatter() -> None:
        for n in range(total):
            await lobby.publish("alice", str(n))
            await asyncio.sleep(0)

    talking = asyncio.create_task(chatter())
    bob = communicator(f"/ws/auth/?after={start}", cookie=cookie)
    assert (await bob.connect())[0]
    await talking
    received = []
    while not received or received[-1]["id"] < start + total:
        message = await bob.receive_json_from(2)
        if message["type"] == "chat":
            received.append(message)
    assert [m["id"] for m in received] == list(range(start + 1, start + total + 1))
    assert [m["text"] for m in received] == [str(n) for n in range(total)]
    later = []
    while not await bob.receive_nothing(0.2):
        later.append(await bob.receive_json_from())
    assert [m for m in later if m["type"] != "presence"] == []  # no second copies
    await bob.disconnect()


async def test_a_resume_older_than_the_history_says_so(users: None, store: str) -> None:
    ids = [(await lobby.publish("alice", f"m{n}"))["id"] for n in range(13)]  # history of 10
    bob = await open_lobby("bob", f"?after={ids[1]}")
    resume, *replayed = await until_presence(bob)
    assert resume == {
        "type": "resume",
        "after": ids[1],
        "missed": 10,
        "complete": False,
        "oldest": ids[3],
    }
    assert [c["id"] for c in replayed] == ids[3:]
    await bob.disconnect()


BAD_AFTERS = [
    "?after=abc",
    "?after=-1",
    "?after=1.5",
    "?after=",
    "?after=1&after=2",
    "?after=99999999999999999",  # over 2**53: not exact in JavaScript
    "?after=%EF%BC%91",  # a fullwidth digit one: isdigit() says yes, int() too
]


async def test_a_bad_after_gets_an_error_and_live_chat(users: None) -> None:
    await lobby.publish("alice", "old")
    cookie = session_cookie(await log_in("bob"))
    for query in BAD_AFTERS:
        bob = communicator("/ws/auth/" + query, cookie=cookie)
        assert (await bob.connect())[0]
        assert (await bob.receive_json_from(2))["type"] == "hello"
        (error,) = await until_presence(bob)
        assert (error["type"], error["code"]) == ("error", "invalid_after"), query
        await bob.send_json_to({"type": "chat", "text": query})
        assert (await chats(bob, 1))[0]["text"] == query
        await bob.disconnect()
    await lobby.close_history()


async def test_a_server_shutting_down_closes_4503_and_drops_presence_at_once(
    users: None, store: str
) -> None:
    """Daphne's SIGTERM cancels every application and waits for them (kill_all_applications)."""
    alice = await open_lobby("alice")
    await until_presence(alice)
    bob = await open_lobby("bob")
    assert (await bob.receive_json_from(2))["type"] == "resume"  # a fresh socket's, empty
    assert (await bob.receive_json_from(2))["users"] == ["alice", "bob"]
    alice.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await alice.future
    last = None
    while not alice.output_queue.empty():
        last = alice.output_queue.get_nowait()  # bob's arrival, then the close
    assert last == {"type": "websocket.close", "code": 4503}
    # Long before alice's entry would expire (PRESENCE_TTL, 30 s): she left as she went.
    presence = await bob.receive_json_from(2)
    assert presence == {"type": "presence", "users": ["bob"]}
    await bob.disconnect()


async def test_a_shutdown_that_catches_a_socket_leaving_still_drops_its_presence(
    users: None, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client left as the server stopped: daphne cancels the consumer mid-leave."""
    alice = await open_lobby("alice")
    await until_presence(alice)
    bob = await open_lobby("bob")
    assert (await bob.receive_json_from(2))["type"] == "resume"  # a fresh socket's, empty
    assert (await bob.receive_json_from(2))["users"] == ["alice", "bob"]
    # Make the leave slow enough to be caught halfway by the cancellation.
    leaving = asyncio.Event()
    discard = get_channel_layer().group_discard

    async def slow_discard(group: str, channel: str) -> None:
        leaving.set()
        await asyncio.sleep(0.2)
        await discard(group, channel)

    monkeypatch.setattr(get_channel_layer(), "group_discard", slow_discard)
    await alice.send_input({"type": "websocket.disconnect", "code": 1001})
    await asyncio.wait_for(leaving.wait(), 2)
    alice.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await alice.future
    presence = await bob.receive_json_from(3)
    assert presence == {"type": "presence", "users": ["bob"]}
    await bob.disconnect()


async def lobby_members() -> set[str]:
    """The lobby group's channels, as the channel layer holds them (memory or Redis)."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):  # InMemoryChannelLayer
        return set(layer.groups.get(lobby.LOBBY_GROUP, {}))
    async with Redis.from_url(layer.hosts[0]["address"]) as client:
        return {m.decode() for m in await client.zrange(layer._group_key(lobby.LOBBY_GROUP), 0, -1)}


async def test_a_socket_given_up_on_while_joining_leaves_the_lobby_group(
    users: None, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Daphne gives up on a consumer (shutdown, or its close timeout) halfway into the lobby."""
    layer = get_channel_layer()
    halfway = asyncio.Event()
    group_add = layer.group_add

    async def slow_lobby_add(group: str, channel: str) -> None:
        await group_add(group, channel)
        # The user's group is joined before connect() (SessionEndedMixin); the lobby's comes
        # after the accept. In the lobby group now, connect() not finished: the server gives up.
        if group == lobby.LOBBY_GROUP:
            halfway.set()
            await asyncio.sleep(5)

    monkeypatch.setattr(layer, "group_add", slow_lobby_add)
    alice = communicator("/ws/auth/", cookie=session_cookie(await log_in("alice")))
    assert (await alice.connect())[0]
    await asyncio.wait_for(halfway.wait(), 2)
    assert len(await lobby_members()) == 1
    alice.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await alice.future
    assert await lobby_members() == set()  # not a channel nobody reads, until group_expiry


async def test_a_socket_given_up_on_while_its_heartbeat_stops_still_leaves(
    users: None, store: str, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The client left while its heartbeat was inside a Redis call that swallowed the
    cancellation (python/cpython#86296), and daphne gave up on the consumer (its close
    timeout) before the heartbeat came out: the leave must still happen in full.
    """
    settings.PRESENCE_TTL = 0.15  # a heartbeat every 50 ms
    refreshing, inside = asyncio.Event(), asyncio.Event()
    presence = get_presence()
    join_entry = presence.join

    async def join_like_redis_on_python_311(channel: str, username: str) -> bool:
        if refreshing.is_set():
            refreshing.clear()
            inside.set()
            try:
                await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                await asyncio.sleep(0.5)  # the command's answer comes anyway, the cancel is lost
        return await join_entry(channel, username)

    monkeypatch.setattr(presence, "join", join_like_redis_on_python_311)
    alice = await open_lobby("alice")
    await until_presence(alice)
    refreshing.set()
    await asyncio.wait_for(inside.wait(), 2)
    await alice.send_input({"type": "websocket.disconnect", "code": 1001})
    await asyncio.sleep(0.05)  # the leave waits for the heartbeat to come out
    alice.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await alice.future
    assert await lobby_members() == set()
    assert await presence.online() == []
