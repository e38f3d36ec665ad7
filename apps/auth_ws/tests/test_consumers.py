"""
The lobby consumers through the whole ASGI stack, with real sessions.

Every logged-in socket here carries the session cookie of a real login through the login view
(AsyncClient), so AuthMiddlewareStack resolves the user exactly as it does for a browser.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse
from redis.asyncio import Redis

from apps.auth_ws.presence import RedisPresence, close_presence, get_presence
from apps.auth_ws.tests.helpers import (
    LOBBY,
    PASSWORD,
    connect,
    join,
    log_in,
    presence,
    session_cookie,
)
from apps.core.tests.clock import Clock
from apps.core.tests.contract import communicator, expect_close

pytestmark = pytest.mark.django_db(transaction=True)

STRICT = "/ws/auth/strict/"


@pytest.fixture(autouse=True)
async def _fresh_stores() -> AsyncIterator[None]:
    yield
    await close_presence()
    await get_channel_layer().flush()
    # Views and get_user ran in asgiref's one shared sync thread and left a connection open
    # there; a later test without database access would trip over it.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def users(transactional_db: None) -> None:
    for name in ("alice", "bob"):
        get_user_model().objects.create_user(name, password=PASSWORD)


@pytest.fixture
async def redis_presence(redis_url: str, settings) -> AsyncIterator[Redis]:
    """Presence in the session's real redis-server (database 1, emptied); the layer stays."""
    url = redis_url.rsplit("/", 1)[0] + "/1"
    settings.REDIS_URL = url
    client = Redis.from_url(url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


# ------------------------------------------------------------------ who is on the socket


async def test_anonymous_socket_is_accepted_then_closed_4401() -> None:
    comm = await connect(None)
    close = await expect_close(comm)
    assert close["code"] == 4401
    assert "log in" in close["reason"]
    await comm.disconnect()


async def test_anonymous_socket_gets_no_lobby_traffic(users: None) -> None:
    alice = await join(await log_in("alice"))
    assert await presence(alice) == ["alice"]
    comm = await connect(None)
    assert (await expect_close(comm))["code"] == 4401
    await alice.send_json_to({"type": "chat", "text": "anyone?"})
    assert (await alice.receive_json_from())["text"] == "anyone?"
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()
    await alice.disconnect()


async def test_strict_refuses_anonymous_before_accept() -> None:
    comm = communicator(STRICT)
    connected, code = await comm.connect()
    assert not connected  # daphne turns this close into HTTP 403; the browser sees 1006
    assert code == 1000
    await comm.disconnect()


@pytest.mark.parametrize("path", [LOBBY, STRICT])
async def test_hello_names_the_user_of_the_session(users: None, path: str) -> None:
    comm = await connect(await log_in("bob"), path)
    hello = await comm.receive_json_from()
    assert hello["type"] == "hello"
    assert hello["user"] == "bob"
    assert (await comm.receive_json_from())["type"] == "resume"
    assert await presence(comm) == ["bob"]
    await comm.disconnect()


async def test_hello_agrees_to_the_subprotocol(users: None) -> None:
    client = await log_in("alice")
    comm = communicator(LOBBY, cookie=session_cookie(client), subprotocols=["showcase.v1"])
    assert await comm.connect() == (True, "showcase.v1")
    assert (await comm.receive_json_from())["user"] == "alice"
    await comm.disconnect()


async def test_info_shows_the_user_auth_middleware_resolved(users: None) -> None:
    comm = await join(await log_in("alice"))
    await presence(comm)
    await comm.send_json_to({"type": "info"})
    info = await comm.receive_json_from()
    assert info["user"] == "alice"
    assert info["consumer"] == "LobbyConsumer"
    await comm.disconnect()


async def test_a_cookie_of_a_session_that_does_not_exist_is_anonymous(users: None) -> None:
    comm = communicator(LOBBY, cookie=b"sessionid=notarealsessionkey0123456789abcdef")
    assert (await comm.connect())[0]
    assert (await expect_close(comm))["code"] == 4401
    await comm.disconnect()


# ------------------------------------------------------------------ chat


async def test_chat_reaches_every_logged_in_socket(users: None) -> None:
    alice = await join(await log_in("alice"))
    await presence(alice)
    bob = await join(await log_in("bob"))
    await presence(bob)
    assert await presence(alice) == ["alice", "bob"]

    await alice.send_json_to({"type": "chat", "text": "hi bob"})
    for comm in (alice, bob):
        message = await comm.receive_json_from()
        assert message["type"] == "chat"
        assert (message["user"], message["text"]) == ("alice", "hi bob")
        assert isinstance(message["at"], float)
    await bob.send_json_to({"type": "chat", "text": "hello ✓"})
    for comm in (alice, bob):
        message = await comm.receive_json_from()
        assert (message["user"], message["text"]) == ("bob", "hello ✓")
    await alice.disconnect()
    await bob.disconnect()


async def test_spoofed_sender_is_ignored(users: None) -> None:
    alice = await join(await log_in("alice"))
    await presence(alice)
    bob = await join(await log_in("bob"))
    await presence(bob)
    await presence(alice)

    await alice.send_json_to({"type": "chat", "text": "I am bob", "user": "bob", "from": "bob"})
    for comm in (alice, bob):
        message = await comm.receive_json_from()
        assert message["user"] == "alice"
        assert message["text"] == "I am bob"
        assert "from" not in message
    await alice.disconnect()
    await bob.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ("{}", "missing_type"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "chat"}', "invalid_text"),
        ('{"type": "chat", "text": "   "}', "invalid_text"),
        ('{"type": "chat", "text": ["hi"]}', "invalid_text"),
        ('{"type": "chat", "text": "' + "x" * 501 + '"}', "text_too_long"),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_usable(
    users: None, frame: str, code: str
) -> None:
    comm = await join(await log_in("alice"))
    await presence(comm)
    await comm.send_input({"type": "websocket.receive", "text": frame})
    reply = await comm.receive_json_from()
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["message"]
    await comm.send_json_to({"type": "who"})
    assert await presence(comm) == ["alice"]
    await comm.disconnect()


async def test_binary_frame_gets_an_error(users: None) -> None:
    comm = await join(await log_in("alice"))
    await presence(comm)
    await comm.send_to(bytes_data=b'{"type": "chat", "text": "hi"}')
    assert (await comm.receive_json_from())["code"] == "binary_not_supported"
    await comm.disconnect()


async def test_lobby_limits_close_4429_and_4009(users: None, settings) -> None:
    settings.WS_LIMITS = {
        **settings.WS_LIMITS,
        "lobby": {"max_message_bytes": 200, "messages_per_second": 1, "burst": 2},
    }
    client = await log_in("alice")
    comm = await join(client)
    await presence(comm)
    for _ in range(2):
        await comm.send_json_to({"type": "who"})
        await presence(comm)
    await comm.send_json_to({"type": "who"})
    assert (await expect_close(comm))["code"] == 4429
    await comm.disconnect()

    comm = await join(client)
    await presence(comm)
    await comm.send_json_to({"type": "chat", "text": "x" * 300})
    assert (await expect_close(comm))["code"] == 4009
    await comm.disconnect()


# ------------------------------------------------------------------ presence


async def test_presence_follows_joins_and_leaves(users: None) -> None:
    alice = await join(await log_in("alice"))
    assert await presence(alice) == ["alice"]
    bob = await join(await log_in("bob"))
    assert await presence(bob) == ["alice", "bob"]
    assert await presence(alice) == ["alice", "bob"]
    await bob.disconnect()
    assert await presence(alice) == ["alice"]
    await alice.disconnect()
    assert await get_presence().online() == []


async def test_several_tabs_count_once(users: None) -> None:
    alice_client = await log_in("alice")
    tab1 = await join(alice_client)
    await presence(tab1)
    bob = await join(await log_in("bob"))
    await presence(bob)
    await presence(tab1)

    tab2 = await join(alice_client)
    assert await presence(tab2) == ["alice", "bob"]
    # Nobody else hears of a second tab: the online users did not change.
    assert await bob.receive_nothing(0.2)
    assert await tab1.receive_nothing(0.05)
    await tab2.disconnect()
    assert await bob.receive_nothing(0.2)  # alice is still online in tab 1
    await tab1.disconnect()
    assert await presence(bob) == ["bob"]
    await bob.disconnect()


async def alice_sees_carol_expire(add_carol: Callable[[], Awaitable[None]], clock: Clock) -> None:
    """Carol's entry gets no heartbeat: alice's own heartbeat prunes it and tells the lobby."""
    client = await log_in("alice")
    await add_carol()
    alice = await join(client)
    # Nothing expires until the clock moves, however long the login and join took.
    assert await presence(alice) == ["alice", "carol"]
    clock.advance(2 * settings.PRESENCE_TTL)
    # Alice's next heartbeat (every third of the TTL, in real time) renews her and prunes carol;
    # the bound is only how long to wait before failing.
    assert await presence(alice, within=10) == ["alice"]
    assert await get_presence().online() == ["alice"]
    await alice.disconnect()


async def test_entries_of_a_vanished_socket_expire_in_memory(
    users: None, settings, presence_clock: Clock
) -> None:
    settings.PRESENCE_TTL = 0.6

    async def add_carol() -> None:
        # One process: a socket's entry whose consumer vanished without disconnecting.
        await get_presence().join("specific.gone!1", "carol")

    await alice_sees_carol_expire(add_carol, presence_clock)


async def test_entries_of_a_dead_process_expire_in_redis(
    users: None, settings, redis_presence: Redis, presence_clock: Clock
) -> None:
    settings.PRESENCE_TTL = 0.6

    async def add_carol() -> None:
        # Another server process's store: it adds carol's socket, then dies without a goodbye.
        other_process = Redis.from_url(settings.REDIS_URL, decode_responses=True)
        await RedisPresence(other_process).join("specific.gone!1", "carol")
        await other_process.aclose()

    await alice_sees_carol_expire(add_carol, presence_clock)
    assert await redis_presence.zcard("auth_ws:presence") == 0


async def test_redis_presence_through_the_consumer(users: None, redis_presence: Redis) -> None:
    alice = await join(await log_in("alice"))
    assert await presence(alice) == ["alice"]
    members = await redis_presence.zrange("auth_ws:presence", 0, -1)
    assert len(members) == 1
    assert members[0].endswith("|alice")
    await alice.disconnect()
    assert await redis_presence.zcard("auth_ws:presence") == 0


# ------------------------------------------------------------------ the session ends


async def test_logout_closes_every_socket_of_that_user_and_no_other(users: None) -> None:
    alice_client = await log_in("alice")
    alice_elsewhere = await log_in("alice")  # another browser, another session
    tab1 = await join(alice_client)
    await presence(tab1)
    tab2 = await join(alice_client)
    await presence(tab2)
    other = await join(alice_elsewhere)
    await presence(other)
    bob = await join(await log_in("bob"))
    await presence(bob)
    for comm in (tab1, tab2, other):
        assert await presence(comm) == ["alice", "bob"]

    response = await alice_client.post(reverse("logout"))
    assert response.status_code == 302

    for comm in (tab1, tab2, other):
        close = await expect_close(comm)
        assert close == {"type": "websocket.close", "code": 4401, "reason": "logged out"}
    # Bob's socket stays open: it hears alice go, and goes on working.
    assert await presence(bob) == ["bob"]
    await bob.send_json_to({"type": "chat", "text": "still here"})
    assert (await bob.receive_json_from())["text"] == "still here"
    for comm in (tab1, tab2, other):
        assert await comm.receive_nothing(0.05)
        await comm.disconnect()
    await bob.disconnect()


async def test_a_logged_out_socket_hears_nothing_more(users: None) -> None:
    alice_client = await log_in("alice")
    alice = await join(alice_client)
    await presence(alice)
    bob = await join(await log_in("bob"))
    await presence(bob)
    await presence(alice)
    await alice_client.post(reverse("logout"))
    assert (await expect_close(alice))["code"] == 4401
    await presence(bob)
    await bob.send_json_to({"type": "chat", "text": "secret"})
    await bob.receive_json_from()
    assert await alice.receive_nothing(0.2)
    await alice.disconnect()
    await bob.disconnect()


async def test_logout_without_a_socket_or_a_login_is_harmless(users: None) -> None:
    response = await AsyncClient().post(reverse("logout"))
    assert response.status_code == 302
    response = await (await log_in("alice")).post(reverse("logout"))
    assert response.status_code == 302


async def test_a_session_that_ends_without_logout_closes_at_the_next_heartbeat(
    users: None, settings
) -> None:
    settings.PRESENCE_TTL = 0.6  # a heartbeat every 0.2 s
    client = await log_in("alice")
    comm = await join(client)
    await presence(comm)
    # Expiry, `clearsessions`, an admin: the session row goes without the logout signal.
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    await Session.objects.filter(session_key=session_key).adelete()
    close = await expect_close(comm)
    assert (close["code"], close["reason"]) == (4401, "session ended")
    await comm.disconnect()


async def test_heartbeat_keeps_a_live_socket_online(users: None, settings) -> None:
    settings.PRESENCE_TTL = 0.3
    comm = await join(await log_in("alice"))
    await presence(comm)
    await asyncio.sleep(0.8)  # more than two TTLs
    assert await get_presence().online() == ["alice"]
    assert await comm.receive_nothing(0.05)
    await comm.disconnect()


async def test_a_cancelled_consumer_stops_its_heartbeat(users: None, settings) -> None:
    settings.PRESENCE_TTL = 0.3
    comm = await join(await log_in("alice"))
    await presence(comm)
    # The server gave up on the application: no websocket.disconnect, no goodbye.
    comm.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await comm.future
    await asyncio.sleep(0.5)
    assert await get_presence().online() == []  # nothing refreshes alice's entry any more


async def test_a_heartbeat_that_swallows_its_cancellation_still_lets_the_socket_leave(
    users: None, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    On Python 3.11 a Redis command can swallow the cancellation of the task that awaits it
    (redis-py wraps socket writes in asyncio.wait_for: python/cpython#86296). A heartbeat
    caught that way used to beat on, and the socket's leave waited for it forever.
    """
    settings.PRESENCE_TTL = 0.15  # a heartbeat every 50 ms
    refreshing = asyncio.Event()
    inside = asyncio.Event()
    store = get_presence()
    join_entry = store.join

    async def join_like_redis_on_python_311(channel: str, username: str) -> bool:
        if not refreshing.is_set():
            return await join_entry(channel, username)  # the socket's own join, at connect
        refreshing.clear()
        inside.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.2)  # the command was answered as the cancellation came
        return await join_entry(channel, username)

    monkeypatch.setattr(store, "join", join_like_redis_on_python_311)
    comm = await join(await log_in("alice"))
    assert await presence(comm) == ["alice"]
    refreshing.set()
    await asyncio.wait_for(inside.wait(), 2)  # a heartbeat is inside its refresh
    await asyncio.wait_for(comm.disconnect(), 2)
    assert await store.online() == []
