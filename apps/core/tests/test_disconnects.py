"""
Clients that vanish, reset, stop reading or fail the protocol must end their consumer quietly:
no traceback in the server's log, the process alive and still serving (apps/core/disconnects.py,
channels#1820).

The first tests drive `QuietDisconnectMiddleware` in process, with a stand-in server whose
`send` raises what daphne and uvicorn raise. The last ones start a real daphne and a real
uvicorn and let the hostile clients of tools/hostile.py loose on every endpoint.
"""

import asyncio
import json
import subprocess
import sys
import time
from typing import Any
from urllib.request import urlopen

import pytest
from autobahn.exception import Disconnected
from django.contrib.auth import get_user_model
from django.test import Client
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import connect

from apps.core import disconnects
from apps.core.disconnects import QuietDisconnectMiddleware
from apps.echo_async import consumers as async_consumers
from apps.echo_sync import consumers as sync_consumers
from tools import hostile
from tools.servers import (
    BASE_DIR,
    ServerProcess,
    database_env,
    find_tracebacks,
    running,
    server_env,
    start_daphne,
    start_uvicorn,
)

ECHO_CONSUMERS = [
    sync_consumers.SyncEchoConsumer,
    sync_consumers.SyncGenericEchoConsumer,
    async_consumers.AsyncEchoConsumer,
    async_consumers.AsyncGenericEchoConsumer,
]
SERVER_ERRORS = {
    "daphne": Disconnected("Attempt to send on a closed protocol"),
    "uvicorn lost": ClientDisconnected(),
    "uvicorn closed": RuntimeError("Unexpected ASGI message 'websocket.send', after sending"),
}


class GoneServer:
    """A stand-in ASGI server whose client leaves after the handshake: `send` raises."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.calls = 0

    async def receive(self) -> dict[str, Any]:
        return await self.events.get()

    async def send(self, event: dict[str, Any]) -> None:
        self.calls += 1
        if event["type"] != "websocket.accept":
            raise self.error
        self.sent.append(event)


@pytest.mark.parametrize("consumer", ECHO_CONSUMERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("error", SERVER_ERRORS.values(), ids=SERVER_ERRORS.keys())
async def test_a_send_to_a_departed_client_is_dropped_and_the_consumer_ends_normally(
    consumer: type, error: BaseException
) -> None:
    server = GoneServer(error)
    app = QuietDisconnectMiddleware(consumer.as_asgi())
    scope = {"type": "websocket", "path": "/ws/", "headers": [], "subprotocols": []}
    for event in [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "first: the server raises"},
        {"type": "websocket.receive", "text": "second: dropped before the server"},
        {"type": "websocket.disconnect", "code": 1006},
    ]:
        server.events.put_nowait(event)
    # Without the middleware the error escapes here, as it does inside daphne.
    await asyncio.wait_for(app(scope, server.receive, server.send), 5)
    assert [e["type"] for e in server.sent] == ["websocket.accept"]
    assert server.calls == 2  # the second echo never reached the server
    assert disconnects.live["websocket"] == 0


async def test_an_application_error_still_raises() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send"})

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "websocket.send":
            raise ValueError("a malformed event is the application's bug")

    with pytest.raises(ValueError, match="malformed"):
        await QuietDisconnectMiddleware(app)({"type": "websocket"}, None, send)


async def test_sends_after_the_application_closed_are_dropped() -> None:
    sent: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})
        await send({"type": "websocket.send", "text": "too late"})
        await send({"type": "websocket.close", "code": 4000})

    async def send(event: dict[str, Any]) -> None:
        sent.append(event["type"])

    await QuietDisconnectMiddleware(app)({"type": "websocket"}, None, send)
    assert sent == ["websocket.accept", "websocket.close"]


async def test_a_streaming_http_response_to_a_departed_client_ends_quietly() -> None:
    """What an HTTP consumer streaming events meets when the client goes: no exception."""
    calls: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def send(event: dict[str, Any]) -> None:
        calls.append(event["type"])
        if len(calls) == 2:
            raise ClientDisconnected()

    await QuietDisconnectMiddleware(app)({"type": "http"}, None, send)
    assert calls == ["http.response.start", "http.response.body"]
    assert disconnects.live["http"] == 0


def test_stats_are_off_by_default(client: Client, settings) -> None:
    assert client.get("/stats/").status_code == 404
    settings.SHOWCASE_STATS = True
    figures = client.get("/stats/").json()
    assert set(figures) == {"pid", "instances", "tasks", "threads", "rss"}


# ---------------------------------------------------------------------------- real servers

# Lifted, so the hostile clients' bursts meet the servers' framing, not the showcase's limits.
NO_LIMITS = {
    kind: {"messages_per_second": 0, "max_message_bytes": 1 << 20}
    for kind in ("echo", "json", "lobby")
}
ENDPOINTS = [
    ("/ws/sc/", "echo"),
    ("/ws/sc/generic/", "echo"),
    ("/ws/sc/json/", "json"),
    ("/ws/ac/", "echo"),
    ("/ws/ac/generic/", "echo"),
    ("/ws/ac/json/", "json"),
    ("/ws/auth/", "lobby"),
]
# daphne reaps finished applications once a second, and only then logs their exceptions.
REAPER_SECONDS = 1.5


def stats(server: ServerProcess) -> dict[str, Any]:
    with urlopen(server.http_url + "/stats/", timeout=5) as response:  # noqa: S310
        return json.load(response)


async def sockets_gone(server: ServerProcess, deadline: float = 20.0) -> dict[str, Any]:
    """Wait until no socket's consumer is alive in the server; return its last figures."""
    limit = time.monotonic() + deadline
    while True:
        figures = await asyncio.to_thread(stats, server)
        if not figures["instances"].get("websocket") or time.monotonic() > limit:
            return figures
        await asyncio.sleep(0.1)


async def still_serves(server: ServerProcess, cookie: str) -> None:
    """Every endpoint still answers a well-behaved client."""
    for path, kind in ENDPOINTS:
        headers = {"Cookie": cookie} if kind == "lobby" else {}
        async with connect(
            server.ws_url + path, origin=hostile.ORIGIN, additional_headers=headers
        ) as ws:
            if kind == "lobby":
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
                continue
            message = json.dumps({"type": "echo", "data": "still here"})
            await ws.send(message if kind == "json" else "still here")
            reply = await asyncio.wait_for(ws.recv(), 5)
            assert "still here" in reply


@pytest.fixture(params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest, settings, transactional_db: None) -> ServerProcess:
    env = server_env(
        **database_env(settings.DATABASES["default"]),
        FAST_PASSWORD_HASHER="1",
        WS_LIMITS=json.dumps(NO_LIMITS),
        SHOWCASE_STATS="1",
    )
    if request.param == "daphne":
        started = start_daphne(env, extra_args=("--websocket-max-message-size", "2000000"))
    else:
        started = start_uvicorn(env)
    with running(started):
        yield started


@pytest.fixture
def session_cookie(transactional_db: None) -> str:
    user = get_user_model().objects.create_user("hostile", password="a long passphrase")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def test_hostile_clients_leave_no_traceback_and_the_server_serves_on(
    server: ServerProcess, session_cookie: str
) -> None:
    targets = [(path, kind, "") for path, kind in ENDPOINTS]
    targets.append(("/ws/auth/", "lobby", session_cookie))  # anonymous above, logged in here
    for name, behaviour in hostile.BEHAVIOURS.items():
        results = await asyncio.gather(
            *(behaviour(server.port, path, kind, cookie) for path, kind, cookie in targets),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, Exception)]
        assert not refused, f"{name}: {refused}"
    figures = await sockets_gone(server)
    assert not figures["instances"].get("websocket"), f"consumers left running: {figures}"
    await asyncio.sleep(REAPER_SECONDS)  # an observation window: daphne logs late, see above
    assert server.process.poll() is None, server.log()[-3000:]
    assert server.tracebacks() == []
    await still_serves(server, session_cookie)
    assert server.tracebacks() == []


def test_a_short_chaos_soak_passes() -> None:
    """`make soak SOAK_MODE=chaos` in miniature: steady sockets intact, nothing leaked."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--chaos", "0.5", "--seconds", "2", "--sockets", "8"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BASE_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Consumers and tasks back to the baseline: yes" in result.stdout
    assert "Result: PASSED" in result.stdout


def test_tracebacks_are_found_in_a_server_log() -> None:
    log = (
        "2026-11-26 ERROR daphne.server: Exception inside application: gone\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    raise Disconnected()\n"
        "autobahn.exception.Disconnected: Attempt to send on a closed protocol\n"
        "127.0.0.1 - WSDISCONNECT /ws/sc/\n"
    )
    (found,) = find_tracebacks(log)
    assert found.startswith("2026-11-26 ERROR daphne.server")
    assert found.endswith("Attempt to send on a closed protocol")
    assert find_tracebacks("INFO: Invalid UTF-8 sequence received from client.\n") == []
