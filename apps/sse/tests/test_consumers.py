"""
The SSE consumers through the whole ASGI stack (config/asgi.py), as raw ASGI events: the
response start, each body chunk, and what happens when the client sends `http.disconnect`.
"""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator, HttpCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.core import lobby
from config.asgi import application

TICKS = "/sse/ticks/"
LOBBY = "/sse/lobby/"
PASSWORD = "a long demo passphrase"


@pytest.fixture(autouse=True)
def _fast(settings) -> None:
    settings.SSE_TICK_SECONDS = 0.02
    settings.SSE_RETRY_MS = 150
    settings.SSE_KEEPALIVE_SECONDS = 30
    settings.SSE_SESSION_CHECK_SECONDS = 0.05


class Stream:
    """An HTTP request to the application, read as the raw ASGI events it sends back."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]] = (), query: bytes = b""):
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": path,
            "query_string": query,
            "headers": [(b"host", b"127.0.0.1"), *headers],
        }
        self.app = ApplicationCommunicator(application, scope)
        self.buffer = ""
        self.ended = False

    async def start(self) -> dict:
        """Send the request; return the `http.response.start` event."""
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.app.receive_output(2)
        assert start["type"] == "http.response.start", start
        return start

    async def chunk(self) -> dict:
        """The next `http.response.body` event."""
        body = await self.app.receive_output(2)
        assert body["type"] == "http.response.body", body
        return body

    async def block(self) -> dict[str, str] | str:
        """The next event block ("\\n\\n"-terminated): its fields, or the comment text."""
        while "\n\n" not in self.buffer:
            assert not self.ended, f"the stream ended: {self.buffer!r}"
            body = await self.chunk()
            self.ended = not body["more_body"]
            self.buffer += body["body"].decode()
        block, self.buffer = self.buffer.split("\n\n", 1)
        if block.startswith(":"):
            return block
        return dict(line.split(": ", 1) for line in block.split("\n"))

    async def event(self, name: str = "message") -> dict:
        """The next event (skipping comments and retry hints); its `data` decoded as JSON."""
        while True:
            block = await self.block()
            if isinstance(block, dict) and "data" in block:
                assert block.get("event", "message") == name, block
                return {**block, "data": json.loads(block["data"])}

    async def disconnect(self) -> None:
        """The client goes away; the application must end."""
        await self.app.send_input({"type": "http.disconnect"})
        await self.app.wait(timeout=1)


def headers(start: dict) -> dict[bytes, bytes]:
    return dict(start["headers"])


# ------------------------------------------------------------------ ticks


async def test_ticks_stream_headers_retry_hint_and_comment() -> None:
    stream = Stream(TICKS)
    start = await stream.start()
    assert start["status"] == 200
    assert headers(start)[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers(start)[b"cache-control"] == b"no-cache"
    first = (await stream.chunk())["body"].decode()
    # The first chunk flushes the headers: the retry hint, then a comment line.
    assert first.startswith("retry: 150\n: stream opened by process ")
    assert first.endswith("\n\n")
    await stream.disconnect()


async def test_ticks_count_from_one_with_json_data_after_a_named_hello() -> None:
    stream = Stream(TICKS)
    await stream.start()
    hello = await stream.event("hello")
    assert "id" not in hello  # a named event without id leaves lastEventId alone
    assert hello["data"]["first_id"] == 1
    assert hello["data"]["resumed_from"] is None
    ticks = [await stream.event() for _ in range(3)]
    assert [t["id"] for t in ticks] == ["1", "2", "3"]
    assert [t["data"]["n"] for t in ticks] == [1, 2, 3]
    assert all(isinstance(t["data"]["at"], float) for t in ticks)
    await stream.disconnect()


async def test_last_event_id_continues_at_the_next_id() -> None:
    stream = Stream(TICKS, headers=[(b"last-event-id", b"41")])
    await stream.start()
    assert (await stream.event("hello"))["data"]["resumed_from"] == 41
    assert [(await stream.event())["id"] for _ in range(2)] == ["42", "43"]
    await stream.disconnect()


async def test_per_stream_ends_the_response_after_a_bye() -> None:
    stream = Stream(TICKS, query=b"per_stream=2")
    await stream.start()
    await stream.event("hello")
    assert [(await stream.event())["id"] for _ in range(2)] == ["1", "2"]
    assert (await stream.event("bye"))["data"] == {"last_id": 2, "retry_ms": 150}
    last = await stream.chunk()
    assert last == {"type": "http.response.body", "body": b"", "more_body": False}
    await stream.app.wait(timeout=1)  # the consumer ended by itself


@pytest.mark.parametrize(
    ("header", "query", "status"),
    [
        ((b"last-event-id", b"seven"), b"", 400),
        ((b"last-event-id", b"-1"), b"", 400),
        ((b"last-event-id", b"9007199254740992"), b"", 400),
        ((b"x-nothing", b""), b"per_stream=many", 400),
        ((b"x-nothing", b""), b"per_stream=100000", 400),
    ],
)
async def test_bad_requests_get_a_plain_400(header, query, status) -> None:
    response = await HttpCommunicator(
        application, "GET", TICKS + "?" + query.decode(), headers=[header]
    ).get_response()
    assert response["status"] == status
    assert dict(response["headers"])[b"content-type"].startswith(b"text/plain")
    assert b"must be" in response["body"]


async def test_post_is_refused_with_405() -> None:
    response = await HttpCommunicator(application, "POST", TICKS, body=b"x").get_response()
    assert response["status"] == 405


async def test_disconnect_ends_the_consumer_at_once_leaving_no_task_or_timer() -> None:
    before = asyncio.all_tasks()
    stream = Stream(TICKS)
    await stream.start()
    await stream.event("hello")
    await stream.event()  # streaming: a tick arrived
    loop = asyncio.get_running_loop()
    # The client leaves; the application returns within a fraction of a tick interval.
    started = loop.time()
    await stream.disconnect()
    assert loop.time() - started < 0.5
    await asyncio.sleep(0.1)  # five tick intervals: a leftover timer or task would show
    assert asyncio.all_tasks() - before == {asyncio.current_task()} - before
    assert not [h for h in loop._scheduled if not h.cancelled()]  # no pending tick timer


async def test_keep_alive_comment_on_a_quiet_stream(settings) -> None:
    settings.SSE_TICK_SECONDS = 30
    settings.SSE_KEEPALIVE_SECONDS = 0.02
    stream = Stream(TICKS)
    await stream.start()
    await stream.event("hello")
    assert await stream.block() == ": keep-alive"
    await stream.disconnect()


# ------------------------------------------------------------------ the lobby stream


@pytest.fixture
async def alice_client(transactional_db: None) -> AsyncIterator[AsyncClient]:
    """alice, logged in through the login view."""
    await sync_to_async(get_user_model().objects.create_user)("alice", password=PASSWORD)
    client = AsyncClient()
    response = await client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    yield client


@pytest.fixture
async def alice(alice_client: AsyncClient) -> AsyncIterator[str]:
    """The session cookie of alice."""
    name = settings.SESSION_COOKIE_NAME
    yield f"{name}={alice_client.cookies[name].value}"
    await get_channel_layer().flush()
    await sync_to_async(connections.close_all)()


@pytest.fixture(params=["memory", "redis"])
async def layer_and_history(request: pytest.FixtureRequest, settings) -> AsyncIterator[str]:
    """The lobby's history and channel layer in memory, or both in Redis (database 6)."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/6"
        async with Redis.from_url(url) as client:
            await client.flushdb()
        settings.REDIS_URL = url
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "apps.core.layers.RedisChannelLayer",
                "CONFIG": {"hosts": [url]},
            }
        }
    yield request.param
    await lobby.close_history()
    layer = get_channel_layer()
    if hasattr(layer, "close_pools"):
        await layer.close_pools()


async def test_a_fresh_lobby_stream_gets_the_recent_messages_then_live(
    layer_and_history: str, alice: str, settings
) -> None:
    settings.LOBBY_RECENT = 3
    said = [await lobby.publish("bob", f"m{n}") for n in range(5)]
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    await stream.start()
    assert (await stream.event("hello"))["data"]["resumed_from"] is None
    recent = [await stream.event("chat") for _ in range(3)]
    # The newest three, oldest first, each with its lobby id: what a fresh socket gets too.
    assert [(int(e["id"]), e["data"]["text"]) for e in recent] == [
        (m["id"], m["text"]) for m in said[2:]
    ]
    live = await lobby.publish("bob", "live")
    assert int((await stream.event("chat"))["id"]) == live["id"]
    assert await stream.app.receive_nothing(0.1)
    await stream.disconnect()


async def test_lobby_stream_refuses_anonymous_with_403() -> None:
    response = await HttpCommunicator(application, "GET", LOBBY).get_response()
    assert response["status"] == 403
    assert b"log in" in response["body"]


async def test_lobby_stream_delivers_group_messages_while_streaming(alice: str) -> None:
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    assert (await stream.start())["status"] == 200
    hello = await stream.event("hello")
    assert hello["data"]["user"] == "alice"
    # The recent history first (none yet, or what earlier tests of this loop said), then
    # live messages from the group.
    published = [await lobby.publish("bob", f"hi {n}") for n in range(3)]
    received = []
    while len(received) < 3 or received[-1]["data"]["id"] != published[-1]["id"]:
        received.append(await stream.event("chat"))
    ids = [int(e["id"]) for e in received]
    assert ids == sorted(set(ids))  # in order, each once
    assert [e["data"]["text"] for e in received[-3:]] == ["hi 0", "hi 1", "hi 2"]
    await stream.disconnect()


async def test_lobby_stream_resumes_from_last_event_id(alice: str) -> None:
    first = await lobby.publish("bob", "before")
    missed = [await lobby.publish("bob", f"missed {n}") for n in range(2)]
    stream = Stream(
        LOBBY, headers=[(b"cookie", alice.encode()), (b"last-event-id", str(first["id"]).encode())]
    )
    await stream.start()
    assert (await stream.event("hello"))["data"]["resumed_from"] == first["id"]
    replay = [await stream.event("chat") for _ in missed]
    assert [int(e["id"]) for e in replay] == [m["id"] for m in missed]
    live = await lobby.publish("bob", "live")
    assert int((await stream.event("chat"))["id"]) == live["id"]
    await stream.disconnect()


async def test_lobby_stream_orders_a_message_that_overtook_another(alice: str, monkeypatch) -> None:
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    await stream.start()
    await stream.event("hello")
    base = await lobby.publish("bob", "base")
    while int((await stream.event("chat"))["id"]) != base["id"]:
        pass
    # Two publishers raced: id+2 reaches the group before id+1. The stream reads the history
    # and sends both in order; the late copy of id+1 is dropped.
    layer = get_channel_layer()
    group_send = layer.group_send
    with monkeypatch.context() as patch:
        patch.setattr(layer, "group_send", lambda *args: asyncio.sleep(0))
        one = await lobby.publish("bob", "one")
        two = await lobby.publish("bob", "two")
    await group_send(lobby.LOBBY_GROUP, two)
    await group_send(lobby.LOBBY_GROUP, one)
    got = [int((await stream.event("chat"))["id"]) for _ in range(2)]
    assert got == [one["id"], two["id"]]
    assert await stream.app.receive_nothing(0.1)
    await stream.disconnect()


async def test_lobby_stream_ignores_other_group_messages(alice: str) -> None:
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    await stream.start()
    await stream.event("hello")
    # The socket lobby sends notices like this to the same group.
    await get_channel_layer().group_send(lobby.LOBBY_GROUP, {"type": "presence.changed"})
    message = await lobby.publish("bob", "after the notice")
    while int((await stream.event("chat"))["id"]) != message["id"]:
        pass
    await stream.disconnect()


@pytest.mark.parametrize("fails", ["group_add", "history"])
async def test_unreachable_redis_ends_the_stream_with_a_longer_retry(
    alice: str, fails: str, monkeypatch, caplog
) -> None:
    async def down(*args: object) -> None:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    if fails == "group_add":
        monkeypatch.setattr(get_channel_layer(), "group_add", down)
    else:  # a fresh stream reads the recent messages, a resuming one what followed its id
        monkeypatch.setattr(lobby, "recent", down)
        monkeypatch.setattr(lobby, "since", down)
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    assert (await stream.start())["status"] == 200  # EventSource retries only after a 200
    if fails == "history":
        await stream.event("hello")  # the stream was open when the history failed
    notice = await stream.event("unavailable")
    assert notice["data"] == {"retry_ms": 10_000}
    assert notice["retry"] == "10000"
    assert stream.ended and stream.buffer == ""  # that was the response's last chunk
    await stream.app.wait(timeout=1)  # ended quietly: no exception out of the application
    assert "channel layer unreachable" in caplog.text


async def test_logging_out_ends_the_lobby_stream_at_once(
    alice_client: AsyncClient, alice: str, settings
) -> None:
    # The stream is in alice's group (apps/core/sessions.py): the logout's message ends it,
    # not the next session check, which here would come a minute later.
    settings.SSE_SESSION_CHECK_SECONDS = 60
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    await stream.start()
    await stream.event("hello")
    await lobby.publish("bob", "still in")
    assert (await stream.event("chat"))["data"]["text"] == "still in"
    assert (await alice_client.post(reverse("logout"))).status_code == 302
    assert (await stream.event("bye"))["data"] == {"reason": "logged out"}
    assert (await stream.chunk())["more_body"] is False
    await stream.app.wait(timeout=1)


async def test_a_session_that_ends_without_a_logout_ends_the_lobby_stream(alice: str) -> None:
    # Expired or deleted sessions send no signal: the stream's periodic check finds them.
    stream = Stream(LOBBY, headers=[(b"cookie", alice.encode())])
    await stream.start()
    await stream.event("hello")
    await Session.objects.all().adelete()
    assert (await stream.event("bye"))["data"] == {"reason": "the session ended"}
    assert (await stream.chunk())["more_body"] is False
    await stream.app.wait(timeout=1)
