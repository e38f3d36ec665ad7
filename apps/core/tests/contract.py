"""
The behaviour design.md promises for an echo app, written once and run against each app.

`apps/echo_sync/tests` and `apps/echo_async/tests` subclass these with their own path prefix,
so the sync and async consumers are held to exactly the same contract.
"""

import os

import pytest
from channels.testing import WebsocketCommunicator

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
        # Nothing is echoed after the close, whatever is still in flight.
        await comm.send_to(text_data="late")
        assert (await comm.receive_output())["type"] == "websocket.close"
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
