"""
The behaviour design.md promises for an echo app, written once and run against each app.

`apps/echo_sync/tests` and `apps/echo_async/tests` subclass these with their own path prefix,
so the sync and async consumers are held to exactly the same contract.
"""

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import AsyncClient

from apps.core.models import MAX_NOTE_CHARS, Note
from apps.core.protocol import NOTES_SHOWN
from config.asgi import application

ORIGIN = (b"origin", b"http://127.0.0.1")
SUBPROTOCOL = "showcase.v1"


def communicator(
    path: str,
    *,
    origin: bytes | None = b"http://127.0.0.1",
    subprotocols=None,
    cookie: bytes | None = None,
):
    """A client for the full ASGI stack (origin check, auth, routing), like a browser's."""
    headers = [(b"origin", origin)] if origin is not None else []
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)


async def expect_close(comm: WebsocketCommunicator) -> dict:
    """The next output must be a server-initiated close; return it."""
    event = await comm.receive_output(timeout=2)
    assert event["type"] == "websocket.close", event
    return event


class EchoContract:
    """Pure echo: text as text, bytes as bytes, nothing unsolicited."""

    prefix: str  # "/ws/sc/" or "/ws/ac/"

    @pytest.fixture(params=["", "generic/"], ids=["raw", "generic"])
    def path(self, request: pytest.FixtureRequest) -> str:
        return self.prefix + request.param

    async def test_text_comes_back_as_text(self, path: str) -> None:
        comm = communicator(path)
        assert (await comm.connect())[0]
        for text in ["hello", "héllo wörld ✓ 🚀", " " * 3, "x" * 10_000]:
            await comm.send_to(text_data=text)
            assert await comm.receive_from() == text
        await comm.disconnect()

    async def test_bytes_come_back_as_bytes_byte_for_byte(self, path: str) -> None:
        comm = communicator(path)
        await comm.connect()
        payload = bytes(range(256)) * 4
        await comm.send_to(bytes_data=payload)
        event = await comm.receive_output()
        assert event == {"type": "websocket.send", "bytes": payload}
        await comm.disconnect()

    async def test_order_is_kept(self, path: str) -> None:
        comm = communicator(path)
        await comm.connect()
        for n in range(50):
            await comm.send_to(text_data=str(n))
        assert [await comm.receive_from() for _ in range(50)] == [str(n) for n in range(50)]
        await comm.disconnect()

    async def test_nothing_unsolicited(self, path: str) -> None:
        comm = communicator(path)
        await comm.connect()
        assert await comm.receive_nothing(timeout=0.2)
        await comm.disconnect()

    async def test_subprotocol_agreed_when_offered(self, path: str) -> None:
        comm = communicator(path, subprotocols=["other", SUBPROTOCOL])
        assert await comm.connect() == (True, SUBPROTOCOL)
        await comm.disconnect()

    async def test_no_subprotocol_when_none_offered(self, path: str) -> None:
        comm = communicator(path)
        assert await comm.connect() == (True, None)
        await comm.disconnect()

    async def test_unknown_subprotocol_is_not_agreed(self, path: str) -> None:
        comm = communicator(path, subprotocols=["chat.v2"])
        assert await comm.connect() == (True, None)
        await comm.disconnect()

    async def test_message_over_the_limit_closes_4009(self, path: str, settings) -> None:
        settings.WS_LIMITS = {
            **settings.WS_LIMITS,
            "echo": {**settings.WS_LIMITS["echo"], "max_message_bytes": 10},
        }
        comm = communicator(path)
        await comm.connect()
        await comm.send_to(text_data="é" * 5)  # 10 bytes: allowed
        assert await comm.receive_from() == "é" * 5
        await comm.send_to(text_data="é" * 6)  # 6 characters, 12 bytes: over
        event = await expect_close(comm)
        assert event["code"] == 4009
        assert "12 bytes" in event["reason"]
        # Nothing is echoed after the close, whatever is still in flight: the consumer closes
        # again, and QuietDisconnectMiddleware keeps that second close from the server too.
        await comm.send_to(text_data="late")
        assert await comm.receive_nothing(timeout=0.2)
        await comm.disconnect()

    async def test_too_many_messages_close_4429(self, path: str, settings) -> None:
        settings.WS_LIMITS = {
            **settings.WS_LIMITS,
            "echo": {"max_message_bytes": 100, "messages_per_second": 1, "burst": 3},
        }
        comm = communicator(path)
        await comm.connect()
        for n in range(3):
            await comm.send_to(text_data=str(n))
            assert await comm.receive_from() == str(n)
        await comm.send_to(text_data="one too many")
        assert (await expect_close(comm))["code"] == 4429
        await comm.disconnect()

    async def test_client_disconnect_ends_the_consumer(self, path: str) -> None:
        comm = communicator(path)
        await comm.connect()
        await comm.send_input({"type": "websocket.disconnect", "code": 4321})
        # StopConsumer lets the application return; wait() raises if it is still running.
        await comm.wait(timeout=1)


class JsonContract:
    """JSON in, typed envelopes out; bad input answered with `error`, the socket kept open."""

    prefix: str
    consumer_name: str

    @pytest.fixture
    def path(self) -> str:
        return self.prefix + "json/"

    async def connected(self, path: str) -> WebsocketCommunicator:
        comm = communicator(path)
        assert (await comm.connect())[0]
        return comm

    async def test_echo_envelope(self, path: str) -> None:
        comm = await self.connected(path)
        data = {"n": 1, "list": [1, 2.5, None, True], "text": "ü"}
        await comm.send_json_to({"type": "echo", "data": data})
        assert await comm.receive_json_from() == {"type": "echo", "data": data}
        await comm.disconnect()

    async def test_info_names_the_consumer(self, path: str) -> None:
        comm = communicator(path, subprotocols=[SUBPROTOCOL])
        await comm.connect()
        await comm.send_json_to({"type": "info"})
        info = await comm.receive_json_from()
        assert info["type"] == "info"
        assert info["consumer"] == self.consumer_name
        assert info["path"] == path
        assert info["subprotocols_offered"] == [SUBPROTOCOL]
        assert info["user"] is None
        assert info["process"] == os.getpid()  # the process that served the socket
        assert info["database"] == connections["default"].vendor  # sqlite or postgresql
        assert info["host"] == socket.gethostname()  # unless SHOWCASE_HOST names the host
        assert info["client"] is None  # a communicator's scope has no peer address
        await comm.disconnect()

    async def test_server_close_with_code_and_reason(self, path: str) -> None:
        comm = await self.connected(path)
        await comm.send_json_to({"type": "close", "code": 4000, "reason": "server says bye"})
        assert await expect_close(comm) == {
            "type": "websocket.close",
            "code": 4000,
            "reason": "server says bye",
        }
        await comm.disconnect()

    async def test_server_close_defaults_to_1000(self, path: str) -> None:
        comm = await self.connected(path)
        await comm.send_json_to({"type": "close"})
        assert (await expect_close(comm))["code"] == 1000
        await comm.disconnect()

    @pytest.mark.parametrize(
        ("frame", "code"),
        [
            ("{not json", "invalid_json"),
            ("", "invalid_json"),
            ('{"type": "echo", "data": NaN}', "invalid_json"),
            ("[" * 100_000 + "]" * 100_000, "invalid_json"),
            ("[1, 2, 3]", "not_an_object"),
            ('"text"', "not_an_object"),
            ("null", "not_an_object"),
            ("{}", "missing_type"),
            ('{"type": 5}', "missing_type"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "close", "code": 1001}', "invalid_close_code"),
            ('{"type": "close", "code": 5000}', "invalid_close_code"),
            ('{"type": "close", "code": "4000"}', "invalid_close_code"),
            ('{"type": "close", "code": true}', "invalid_close_code"),
            ('{"type": "close", "code": 4000, "reason": "' + "é" * 62 + '"}', "invalid_reason"),
        ],
    )
    async def test_bad_input_gets_an_error_and_the_socket_stays_usable(
        self, path: str, frame: str, code: str, settings
    ) -> None:
        # The deep-nesting case is 200 kB; lift the size limit so the parser meets it.
        settings.WS_LIMITS = {
            **settings.WS_LIMITS,
            "json": {**settings.WS_LIMITS["json"], "max_message_bytes": 1 << 20},
        }
        comm = await self.connected(path)
        # send_input, not send_to: the communicator refuses to send an empty frame.
        await comm.send_input({"type": "websocket.receive", "text": frame})
        reply = await comm.receive_json_from()
        assert reply["type"] == "error"
        assert reply["code"] == code
        assert reply["message"]
        await comm.send_json_to({"type": "echo", "data": "still here"})
        assert await comm.receive_json_from() == {"type": "echo", "data": "still here"}
        await comm.disconnect()

    async def test_binary_frame_gets_an_error(self, path: str) -> None:
        comm = await self.connected(path)
        await comm.send_to(bytes_data=b'{"type": "echo"}')
        assert (await comm.receive_json_from())["code"] == "binary_not_supported"
        await comm.send_json_to({"type": "echo", "data": 1})
        assert await comm.receive_json_from() == {"type": "echo", "data": 1}
        await comm.disconnect()

    async def test_reason_of_123_bytes_is_accepted(self, path: str) -> None:
        comm = await self.connected(path)
        reason = "é" * 61 + "x"  # 123 bytes
        await comm.send_json_to({"type": "close", "code": 4123, "reason": reason})
        assert (await expect_close(comm))["reason"] == reason
        await comm.disconnect()

    async def test_message_over_the_limit_closes_4009(self, path: str, settings) -> None:
        limit = settings.WS_LIMITS["json"]["max_message_bytes"]
        comm = await self.connected(path)
        await comm.send_json_to({"type": "echo", "data": "x" * limit})
        assert (await expect_close(comm))["code"] == 4009
        await comm.disconnect()

    async def test_too_many_messages_close_4429(self, path: str, settings) -> None:
        settings.WS_LIMITS = {
            **settings.WS_LIMITS,
            "json": {"max_message_bytes": 1000, "messages_per_second": 1, "burst": 2},
        }
        comm = await self.connected(path)
        for _ in range(2):
            await comm.send_json_to({"type": "echo"})
            await comm.receive_json_from()
        await comm.send_json_to({"type": "echo"})
        assert (await expect_close(comm))["code"] == 4429
        await comm.disconnect()


class OriginContract:
    """AllowedHostsOriginValidator: a handshake from a foreign page, or none, is refused."""

    prefix: str

    @pytest.fixture(params=["", "generic/", "json/"])
    def path(self, request: pytest.FixtureRequest) -> str:
        return self.prefix + request.param

    @pytest.mark.parametrize(
        "origin", [None, b"http://evil.example", b"http://127.0.0.1.evil.example", b"null"]
    )
    async def test_foreign_or_missing_origin_is_refused(
        self, path: str, origin: bytes | None
    ) -> None:
        comm = communicator(path, origin=origin)
        connected, code = await comm.connect()
        assert not connected
        assert code == 1000  # the close before accept, which daphne turns into HTTP 403
        await comm.disconnect()

    @pytest.mark.parametrize(
        "origin", [b"http://127.0.0.1", b"http://localhost:8000", b"https://127.0.0.1:8443"]
    )
    async def test_own_origin_is_accepted(self, path: str, origin: bytes) -> None:
        comm = communicator(path, origin=origin)
        assert (await comm.connect())[0]
        await comm.disconnect()


async def json_connected(path: str, cookie: bytes | None = None) -> WebsocketCommunicator:
    """An open socket to a JSON endpoint."""
    comm = communicator(path, cookie=cookie)
    assert (await comm.connect())[0]
    return comm


async def command(comm: WebsocketCommunicator, content: dict, wait: float = 5) -> dict:
    """Send one command and return its answer."""
    await comm.send_json_to(content)
    return await comm.receive_json_from(timeout=wait)


async def still_usable(comm: WebsocketCommunicator) -> None:
    """The socket answers an echo (after an error, nothing was lost)."""
    assert await command(comm, {"type": "echo", "data": "still here"}) == {
        "type": "echo",
        "data": "still here",
    }


def lift_json_rate_limit(settings: Any) -> None:
    """Let a socket ping back to back (the limiter would close it with 4429)."""
    settings.WS_LIMITS = {
        **settings.WS_LIMITS,
        "json": {**settings.WS_LIMITS["json"], "messages_per_second": 0},
    }


async def echoes_during_block(
    blocker: WebsocketCommunicator, pinger: WebsocketCommunicator, block: dict
) -> tuple[dict, list[tuple[float, float]]]:
    """
    Send `block` on one socket while another pings the echo back to back, and return the
    block's answer and every echo's (sent, received) wall-clock times. Whatever order the
    server takes them in, some echoes are in flight during the whole sleep.
    """
    answered, under_way = asyncio.Event(), asyncio.Event()
    trips: list[tuple[float, float]] = []

    async def ping() -> None:
        while not answered.is_set():
            sent = time.time()
            await pinger.send_json_to({"type": "echo", "data": len(trips)})
            assert (await pinger.receive_json_from(timeout=5))["data"] == len(trips)
            trips.append((sent, time.time()))
            if len(trips) == 3:
                under_way.set()

    pinging = asyncio.create_task(ping())
    await asyncio.wait_for(under_way.wait(), 5)  # the pinger runs before the block is sent
    await blocker.send_json_to(block)
    reply = await blocker.receive_json_from(timeout=5)
    answered.set()
    await pinging
    return reply, trips


@pytest.mark.django_db(transaction=True)
class NotesContract:
    """
    `note` and `notes` through the ORM, each style its own way (`ways`: the values of `via`,
    the default first), and `block` with its measured wait. Both JSON endpoints hold to this.
    The tests that take `database` run on SQLite and on PostgreSQL (apps/core/tests/databases.py).
    """

    prefix: str
    ways: tuple[str, ...]

    @pytest.fixture
    def path(self) -> str:
        return self.prefix + "json/"

    @pytest.fixture(autouse=True)
    async def _close_thread_connections(self) -> AsyncIterator[None]:
        yield
        # The ORM ran in asgiref's one shared sync thread and left a connection open there;
        # a later test without database access would trip over it.
        await sync_to_async(connections.close_all)()

    async def test_note_is_saved_and_answered_each_way(self, path: str, database: str) -> None:
        comm = await json_connected(path)
        for way in self.ways:
            reply = await command(comm, {"type": "note", "text": f"by {way} ✓", "via": way})
            saved = await Note.objects.aget(id=reply["id"])
            assert reply == {
                "type": "note",
                "id": saved.id,
                "text": f"by {way} ✓",
                "author": None,
                "created": saved.created.isoformat(),
                "via": way,
                "ms": reply["ms"],
            }
            assert 0 <= reply["ms"] < 5000
        # Without `via`, the style's first way.
        reply = await command(comm, {"type": "note", "text": "default"})
        assert reply["via"] == self.ways[0]
        await comm.disconnect()

    async def test_info_names_the_database_the_notes_go_to(self, path: str, database: str) -> None:
        comm = await json_connected(path)
        info = await command(comm, {"type": "info"})
        assert info["database"] == connections[database].vendor
        await comm.disconnect()

    async def test_notes_are_the_latest_first_each_way(self, path: str, database: str) -> None:
        await Note.objects.abulk_create(Note(text=f"n{n}") for n in range(NOTES_SHOWN + 3))
        comm = await json_connected(path)
        newest = await command(comm, {"type": "note", "text": "newest"})
        for way in self.ways:
            reply = await command(comm, {"type": "notes", "via": way})
            assert (reply["type"], reply["via"]) == ("notes", way)
            texts = [note["text"] for note in reply["notes"]]
            assert texts[0] == "newest"
            assert len(texts) == NOTES_SHOWN
            assert set(texts[1:]) <= {f"n{n}" for n in range(NOTES_SHOWN + 3)}
            assert reply["notes"][0] == {k: newest[k] for k in ("id", "text", "author", "created")}
        await comm.disconnect()

    async def test_a_logged_in_writer_is_the_author(self, path: str, database: str) -> None:
        user = await get_user_model().objects.acreate_user("writer", password="pw-for-notes")
        client = AsyncClient()
        await client.aforce_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        comm = await json_connected(path, cookie=cookie)
        for way in self.ways:
            reply = await command(comm, {"type": "note", "text": "mine", "via": way})
            assert reply["author"] == "writer"
            assert (await Note.objects.aget(id=reply["id"])).author_id == user.id
        listed = await command(comm, {"type": "notes"})
        assert [n["author"] for n in listed["notes"]] == ["writer"] * len(self.ways)
        await comm.disconnect()

    @pytest.mark.parametrize(
        "fields",
        [{}, {"text": 5}, {"text": None}, {"text": ["a"]}, {"text": ""}, {"text": " \n\t"},
         {"text": "x" * (MAX_NOTE_CHARS + 1)}, {"text": "nul \u0000 inside"}],
        ids=["missing", "number", "null", "list", "empty", "blank", "too-long", "nul"],
    )  # fmt: skip
    async def test_bad_text_gets_an_error(self, path: str, database: str, fields: dict) -> None:
        comm = await json_connected(path)
        reply = await command(comm, {"type": "note", **fields})
        assert (reply["type"], reply["code"]) == ("error", "invalid_text")
        assert reply["message"]
        await still_usable(comm)
        assert await Note.objects.acount() == 0
        await comm.disconnect()

    async def test_longest_text_is_accepted(self, path: str, database: str) -> None:
        comm = await json_connected(path)
        reply = await command(comm, {"type": "note", "text": "é" * MAX_NOTE_CHARS})
        assert reply["text"] == "é" * MAX_NOTE_CHARS
        await comm.disconnect()

    async def test_unknown_way_gets_an_error(self, path: str) -> None:
        comm = await json_connected(path)
        for kind in ("note", "notes"):
            reply = await command(comm, {"type": kind, "text": "t", "via": "telepathy"})
            assert (reply["type"], reply["code"]) == ("error", "invalid_via")
        await still_usable(comm)
        await comm.disconnect()

    async def test_a_failing_database_gets_an_error_and_one_log_line(
        self, path: str, caplog, database: str
    ) -> None:
        def rename(old: str, new: str) -> None:
            with connections[database].cursor() as cursor:
                cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")

        # A missing table is an OperationalError to SQLite, a ProgrammingError to PostgreSQL.
        error = {"sqlite": "OperationalError", "postgresql": "ProgrammingError"}

        comm = await json_connected(path)
        await sync_to_async(rename)("core_note", "core_note_away")
        try:
            for way in self.ways:
                for content in ({"type": "note", "text": "lost"}, {"type": "notes"}):
                    reply = await command(comm, {**content, "via": way})
                    assert (reply["type"], reply["code"]) == ("error", "database_error"), reply
                    assert error[connections[database].vendor] in reply["message"]
        finally:
            await sync_to_async(rename)("core_note_away", "core_note")
        await still_usable(comm)
        assert (await command(comm, {"type": "note", "text": "back"}))["text"] == "back"
        await comm.disconnect()
        failures = [r for r in caplog.records if r.getMessage().startswith("database error")]
        assert len(failures) == 2 * len(self.ways)
        assert all(r.exc_info is None for r in failures)  # one line each, no traceback

    async def test_block_answers_with_the_measured_wait(self, path: str) -> None:
        comm = await json_connected(path)
        reply = await command(comm, {"type": "block", "seconds": 0.2})
        assert (reply["type"], reply["seconds"]) == ("block", 0.2)
        assert 0.2 <= reply["waited"] < 2.0
        assert reply["ended"] - reply["started"] >= 0.19  # wall clock: 10 ms of resolution slack
        assert reply["how"]
        await comm.disconnect()

    @pytest.mark.parametrize(
        "seconds", ["1", True, False, None, 0, -1, 2.001, 3, [1], {"s": 1}], ids=repr
    )
    async def test_bad_seconds_get_an_error(self, path: str, seconds: object) -> None:
        comm = await json_connected(path)
        reply = await command(comm, {"type": "block", "seconds": seconds})
        assert (reply["type"], reply["code"]) == ("error", "invalid_seconds")
        assert reply["message"]
        await still_usable(comm)
        await comm.disconnect()

    async def test_missing_seconds_get_an_error(self, path: str) -> None:
        comm = await json_connected(path)
        reply = await command(comm, {"type": "block"})
        assert (reply["type"], reply["code"]) == ("error", "invalid_seconds")
        await comm.disconnect()

    async def test_blocking_is_rate_limited_per_socket(self, path: str, settings) -> None:
        settings.WS_LIMITS = {
            **settings.WS_LIMITS,
            "block": {"budget_seconds": 0.3, "refill_per_second": 0.001},
        }
        comm = await json_connected(path)
        assert (await command(comm, {"type": "block", "seconds": 0.2}))["type"] == "block"
        started = time.perf_counter()
        reply = await command(comm, {"type": "block", "seconds": 0.2})
        assert (reply["type"], reply["code"]) == ("error", "block_limited")
        assert "0.3 s of blocking per socket" in reply["message"]
        assert time.perf_counter() - started < 0.2  # refused, not slept
        # A block within what is left still runs; the budget is per socket.
        assert (await command(comm, {"type": "block", "seconds": 0.05}))["type"] == "block"
        other = await json_connected(path)
        assert (await command(other, {"type": "block", "seconds": 0.2}))["type"] == "block"
        await still_usable(comm)
        await comm.disconnect()
        await other.disconnect()
