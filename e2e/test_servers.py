"""
Which ASGI server? What the browser sees differently on daphne, uvicorn, hypercorn and granian.

Every test here runs once per server (`matrix_server`, session-scoped: one process per server
for the whole run, with `make run`'s flags from tools/servers.py), and compares what Chromium
observed with one row of `EXPECTED`: docs/browser-and-servers.md's server table, cell for cell.
A server that changes its behaviour fails its cell here.
"""

import json
import signal
import socket
import time
from base64 import b64encode
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from playwright.sync_api import Page

from e2e import artifacts
from e2e.asgi import REFUSED
from e2e.console import Console
from e2e.matrix import FAST, run_socket
from tools.servers import SERVER_FLAGS, ServerProcess, start_server


class Race(frozenset):
    """A cell with more than one outcome: which one the browser sees depends on timing."""


# row -> server -> what the browser sees: docs/browser-and-servers.md's "What the browser sees".
EXPECTED: dict[str, dict[str, Any]] = {
    # (code in the browser's close event, code the consumer got) after a bare close()
    "close()": {
        "daphne": (1000, None),
        "uvicorn": (1005, 1005),
        "hypercorn": (1005, 1006),
        "granian": (1005, 1005),
    },
    # (code, reason) in the browser's close event, and the code the consumer got, after
    # close(4321, "bye ✓")
    "close(4321, reason)": {
        "daphne": (1000, "", 4321),
        "uvicorn": (4321, "bye ✓", 4321),
        "hypercorn": (4321, "bye ✓", 1006),
        "granian": (4321, "bye ✓", 4321),
    },
    # (code, reason, wasClean) after the consumer closes with 4000 "server says bye", for the
    # sync and the async JSON consumer
    "server close": {
        "daphne": (4000, "", False),
        "uvicorn": (4000, "server says bye", True),
        "hypercorn": (4000, "server says bye", True),
        "granian": Race({(4000, "server says bye", False), (4000, "server says bye", True)}),
    },
    # Does the consumer's `headers` in websocket.accept reach the browser?
    "accept headers": {"daphne": False, "uvicorn": True, "hypercorn": True, "granian": False},
    # What the raw echo sends back for "" then "after": is the empty message delivered?
    "empty messages": {
        "daphne": ["after"],
        "uvicorn": ["", "after"],
        "hypercorn": ["", "after"],
        "granian": ["", "after"],
    },
    # The code the browser sees when the application closes with 1001 and with 1011
    # (REFUSED: the server raised on the code, the application caught it and closed 4500).
    "application 1xxx": {
        "daphne": (REFUSED, REFUSED),
        "uvicorn": (1001, 1011),
        "hypercorn": (1001, 1011),
        "granian": (1001, 1011),
    },
    # Sec-WebSocket-Extensions in the handshake response (Chromium offers permessage-deflate)
    "permessage-deflate": {
        "daphne": None,
        "uvicorn": None,
        "hypercorn": "permessage-deflate",
        "granian": None,
    },
    # (code, reason) for one byte over the consumer's limit (256 KiB)
    "over the consumer's limit": {
        "daphne": (4009, ""),
        "uvicorn": (4009, "message of 262145 bytes is over 262144"),
        "hypercorn": (4009, "message of 262145 bytes is over 262144"),
        "granian": (4009, "message of 262145 bytes is over 262144"),
    },
    # The close code for a message over the server's own cap (600 KiB against 512 KiB): the
    # server decides, unless it has no cap (granian), and then the consumer does. uvicorn
    # closes 1009 while the browser is still sending, and the reset can win: 1006.
    "over the server's cap": {
        "daphne": 1006,
        "uvicorn": Race({1009, 1006}),
        "hypercorn": 1009,
        "granian": 4009,
    },
    # The address in scope["client"] when the handshake says X-Forwarded-For: 203.0.113.9
    "X-Forwarded-For": {
        "daphne": "127.0.0.1",
        "uvicorn": "127.0.0.1",
        "hypercorn": "127.0.0.1",
        "granian": "127.0.0.1",
    },
    # console.js from the application's ASGIStaticFilesHandler: (status, content type)
    "static files": dict.fromkeys(
        ("daphne", "uvicorn", "hypercorn", "granian"), (200, "text/javascript")
    ),
    # Does the server ping an idle socket (with a 1 s interval: the same flag, shortened)?
    "pings": {"daphne": True, "uvicorn": True, "hypercorn": True, "granian": False},
    # (code, wasClean) in the browser when the server gets SIGTERM with the socket open
    "SIGTERM": {
        "daphne": (1006, False),
        "uvicorn": Race({(1012, True), (1012, False)}),
        # A race under load: e2e/browsers.py's SERVER_EXPECTED says why.
        "hypercorn": Race({(1011, True), (1006, False)}),
        "granian": (1006, False),
    },
}


def column(server: ServerProcess, observed: dict[str, Any]) -> dict[str, Any]:
    """
    The expected cells of this server for the rows a test observed, for one diff of them all.
    A cell that is a `Race` accepts any of its outcomes. "row/detail" is checked against row.
    """
    expected = {}
    for key, value in observed.items():
        cell = EXPECTED[key.split("/")[0]][server.name]
        expected[key] = value if isinstance(cell, Race) and value in cell else cell
    return expected


# ---------------------------------------------------------------------------- closing


def test_closing(page: Page, matrix_server: ServerProcess) -> None:
    # The browser's close event reports the close frame it *received*. When the browser closes
    # first, that is the server's reply: most servers echo the browser's code and reason;
    # daphne (autobahn) replies 1000 without a reason, and hands the consumer code None after a
    # bare close() where the ASGI spec says 1005. 1005 "no status received" is reported
    # locally, never sent. Hypercorn tells the consumer 1006 whatever the browser sent.
    # When the consumer closes first, daphne drops the reason (daphne#374); daphne and
    # granian then end the TCP connection with a reset, which Chromium reports as wasClean
    # false (and, on daphne, once in a long while as code 1006).
    observed: dict[str, Any] = {}
    console = Console.open(page, matrix_server.http_url + "/sync/")
    console.connect("/ws/sc/generic/", journal=True)
    since = console.mark()
    console.root.get_by_role("button", name="close()", exact=True).click()
    closed = console.wait_for("close", since)[0]
    disconnect = console.journal_until("websocket.disconnect")[-1]
    observed["close()"] = (closed["code"], disconnect["code"])
    assert (closed["reason"], closed["wasClean"]) == ("", True)

    console.connect("/ws/sc/generic/", journal=True)
    console.root.get_by_label("code").fill("4321")
    console.root.get_by_label("reason").fill("bye ✓")
    since = console.mark()
    console.root.get_by_role("button", name="close(code, reason)").click()
    closed = console.wait_for("close", since)[0]
    disconnect = console.journal_until("websocket.disconnect")[-1]
    observed["close(4321, reason)"] = (closed["code"], closed["reason"], disconnect["code"])
    assert closed["wasClean"] is True

    server_closes = []
    for style in ("sync", "async"):
        if style == "async":
            console = Console.open(page, matrix_server.http_url + "/async/")
        console.connect(f"/ws/{style[0]}c/json/", journal=True)
        since = console.mark()
        console.root.get_by_role("button", name="server close 4000").click()
        closed = console.wait_for("close", since)[0]
        events = console.journal_until("websocket.disconnect")
        sent = [(e["code"], e["reason"]) for e in events if e["type"] == "websocket.close"]
        assert sent == [(4000, "server says bye")]  # what the consumer sent, every time
        server_closes.append((closed["code"], closed["reason"], closed["wasClean"]))
        # An application code is not a server loss: no reconnect.
        assert console.records("reconnecting", since) == []
    observed["server close"], observed["server close/async"] = server_closes
    assert observed == column(matrix_server, observed)


# ---------------------------------------------------------------------------- the rest


def test_handshake_messages_and_limits(
    new_context: Callable[..., Any], matrix_server: ServerProcess
) -> None:
    # Every handshake of this page claims another client address; a server should trust
    # X-Forwarded-For only from a proxy it was told about (none here).
    context = new_context(extra_http_headers={"X-Forwarded-For": "203.0.113.9"})
    page = context.new_page()
    # The browser's JavaScript cannot read handshake headers; Chromium's DevTools protocol can.
    # The page's own panes open sockets too: keep each handshake with the URL it was for.
    urls: dict[str, str] = {}
    responses: list[tuple[str, dict[str, str]]] = []
    cdp = context.new_cdp_session(page)
    cdp.on(
        "Network.webSocketCreated", lambda event: urls.update({event["requestId"]: event["url"]})
    )
    cdp.on(
        "Network.webSocketHandshakeResponseReceived",
        lambda event: responses.append(
            (
                event["requestId"],
                {k.lower(): v for k, v in event["response"]["headers"].items()},
            )
        ),
    )
    cdp.send("Network.enable")
    Console.open(page, matrix_server.http_url + "/sync/")
    observed: dict[str, Any] = {}

    static = page.request.get(matrix_server.http_url + "/static/js/console.js")
    observed["static files"] = (static.status, static.headers["content-type"].split(";")[0])
    assert "socketConsoles" in static.text()

    # The raw sync echo sends `x-showcase-consumer` in its websocket.accept, and sends back
    # whatever arrives: "after" proves that everything before it came back.
    result = run_socket(page, matrix_server, "/ws/sc/", ["", "after"], until="after")
    observed["empty messages"] = result["messages"]
    page.wait_for_function("() => true")  # let Playwright deliver the CDP event
    echo = [headers for rid, headers in responses if urlsplit(urls[rid]).path == "/ws/sc/"]
    assert len(echo) == 1, (urls, responses)
    observed["accept headers"] = echo[0].get("x-showcase-consumer") == "SyncEchoConsumer"
    extensions = echo[0].get("sec-websocket-extensions")
    observed["permessage-deflate"] = extensions.split(";")[0].strip() if extensions else None

    result = run_socket(page, matrix_server, "/ws/probe/client/", until="*")
    observed["X-Forwarded-For"] = json.loads(result["messages"][0])[0]

    # RFC 6455 lets a server send 1001 (going away) and 1011 (internal error). Under daphne,
    # autobahn validates the code as a browser would (crossbario/autobahn-python#1642) and
    # raises in the application's send: the probe catches it and closes 4500 instead.
    observed["application 1xxx"] = tuple(
        run_socket(page, matrix_server, f"/ws/probe/close/{code}/")["close"]["code"]
        for code in (1001, 1011)
    )

    # One byte over the consumer's limit, then over the server's own cap (512 KiB).
    limit = settings.WS_LIMITS["echo"]["max_message_bytes"]
    over = {}
    for size in (limit + 1, 600 * 1024):
        result = run_socket(page, matrix_server, "/ws/sc/generic/", [{"repeat": size}])
        assert result["opened"] and result["messages"] == []
        over[size] = result["close"]
    observed["over the consumer's limit"] = (over[limit + 1]["code"], over[limit + 1]["reason"])
    observed["over the server's cap"] = over[600 * 1024]["code"]
    assert observed == column(matrix_server, observed)


# ---------------------------------------------------------------------------- a server's life


def first_frame_opcode(server: ServerProcess, path: str, within: float) -> int | None:
    """Handshake on a plain socket; the opcode of the first frame the server sends, or None."""
    key = b64encode(b"matrix-ping-test").decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {server.http_url}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=within) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        rest = head.split(b"\r\n\r\n", 1)[1]
        try:
            first = rest or sock.recv(2)
        except TimeoutError:
            return None
        return first[0] & 0x0F


def test_pings_and_sigterm(
    page: Page, matrix_server: ServerProcess, daphne_env: dict[str, str]
) -> None:
    # A server of the test's own, of the same kind as `matrix_server`, with pings every 0.5 s,
    # stopped with SIGTERM under an open page.
    server_name = matrix_server.name
    own = artifacts.register(
        start_server(
            server_name,
            daphne_env,
            app="e2e.asgi:application",
            flags=SERVER_FLAGS[server_name] + FAST[server_name],
            name=f"{server_name}-sigterm",
        )
    )
    try:
        observed = {"pings": first_frame_opcode(own, "/ws/sc/", within=3.5) == 0x9}

        console = Console.open(page, own.http_url + "/sync/")
        console.connect("/ws/sc/generic/", reconnect=False)
        since = console.mark()
        started = time.monotonic()
        own.process.send_signal(signal.SIGTERM)
        closed = console.wait_for("close", since, timeout=15_000)[0]
        closed_after = time.monotonic() - started
        own.process.wait(15)
        exited_after = time.monotonic() - started
        print(f"{server_name}: close after {closed_after:.2f} s, exit after {exited_after:.2f} s")
        observed["SIGTERM"] = (closed["code"], closed["wasClean"])
        assert observed == column(matrix_server, observed)
        # On Python 3.11, asyncio reports hypercorn's cancelled connections with a traceback
        # (python/cpython#113538): apps/core/log_filters.py makes that one line.
        assert own.tracebacks() == []
    finally:
        own.stop()
        artifacts.unregister(own)
