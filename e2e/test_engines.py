"""
The browser APIs the seed notes teach, in every engine: Chromium, Firefox and WebKit.

Each test is written once and runs once per engine (`engine_page`), driving the demo pages as
a visitor would (controls found by role and label) and reading what the page's own JavaScript
recorded. Every observation is compared with one column of `e2e/browsers.py`'s `EXPECTED`,
the table docs/browsers.md shows: an engine that behaves differently fails its cell.
"""

import json
from collections.abc import Callable

import pytest

from e2e.browsers import ENGINE_NAMES, column
from e2e.console import Console
from e2e.engines import EnginePage
from tools.servers import ARTIFACTS, free_port

ECHO = "/ws/sc/generic/"
EVENTS = ("open", "message", "error", "close")


@pytest.fixture
def console(engine_page: EnginePage) -> Console:
    """The /sync/ page's console, in this test's engine."""
    return Console.open(engine_page, "/sync/")


def assert_cells(engine: str, observed: dict) -> None:
    """Every observed cell equals the table's (a Race cell: any of its outcomes)."""
    assert observed == column(engine, observed)


def test_each_engine_says_which_it_is(engine_page: EnginePage) -> None:
    # The versions docs/browsers.md names are read from the browsers here, each run; the file
    # is what a person copies into the doc after a run on new engines.
    engine_page.goto("/")
    agent = engine_page.evaluate("() => navigator.userAgent")
    assert engine_page.version not in ("", "?")
    marker = {"chromium": "Chrome/", "firefox": "Firefox/", "webkit": "AppleWebKit/"}
    assert marker[engine_page.engine] in agent
    found = ARTIFACTS / "engines" / f"{engine_page.engine}.txt"
    found.parent.mkdir(parents=True, exist_ok=True)
    found.write_text(f"{ENGINE_NAMES[engine_page.engine]} {engine_page.version}\n{agent}\n")


# ---------------------------------------------------------------------------- WebSocket


def test_handlers_and_ready_state(console: Console) -> None:
    opened = console.connect(ECHO)
    message = console.echo("hello")
    assert (message["dataType"], message["text"]) == ("string", "hello")
    states_at_open = console.ready_states()[:2]
    since = console.mark()
    call = console.close(1000, "done")
    closed = console.wait_for("close", since)[0]
    states = console.ready_states()
    observed = {
        "on… and addEventListener": (opened["via"], message["via"], closed["via"]),
        "readyState": (
            [s for n, s in enumerate(states) if n == 0 or states[n - 1] != s],
            call["readyState"],
        ),
    }
    assert states_at_open == [0, 1]
    assert_cells(console.driver.engine, observed)


def test_binary_types(console: Console) -> None:
    default = console.driver.evaluate(
        "(url) => { const ws = new WebSocket(url); ws.close(); return ws.binaryType; }",
        console.driver.url_for(ECHO).replace("http", "ws"),
    )
    console.connect(ECHO, binary_type="blob")
    payload = bytes([0, 1, 2, 127, 128, 200, 254, 255])  # typed in, key by key
    received = []
    for binary_type, button in (("blob", "send(Blob)"), ("arraybuffer", "send(ArrayBuffer)")):
        console.select("binaryType", binary_type)
        assert console.ws("binaryType") == binary_type
        since = console.mark()
        console.fill("Bytes, in hex", payload.hex(" "))
        console.click(button)
        message = console.wait_for("message", since)[0]
        assert bytes.fromhex(message["hex"]) == payload
        received.append(message["dataType"])
    assert_cells(console.driver.engine, {"binaryType": (default, *received)})


def test_buffered_amount(console: Console) -> None:
    console.connect(ECHO)
    since = console.mark()
    console.click("send 200 kB", exact=False)
    call = console.wait_for("call", since, where="r.message.startsWith('send(text')")[0]
    before, after = call["bufferedAmount"]
    console.driver.wait_for("() => window.socketConsoles[0].ws.bufferedAmount === 0")
    echoed = console.wait_for("message", since)[0]
    assert (echoed["dataType"], echoed["size"]) == ("string", 200_000)
    observed = {"bufferedAmount": (before, after)}
    assert_cells(console.driver.engine, observed)


def test_send_while_connecting_and_after_close(console: Console) -> None:
    since = console.mark()
    console.click("send() while CONNECTING")
    connecting = console.wait_for("quirk", since)[0]
    # The console's own socket, in the task that constructed it: still CONNECTING.
    console.select("Endpoint", ECHO)
    threw = console.run("(c) => { c.connect(); c.sendText('too early'); return c.records.at(-1); }")
    assert (threw["kind"], threw["readyState"]) == ("threw", 0)
    console.wait_for("open", since)
    assert console.echo("on time")["text"] == "on time"  # the throw did not hurt the socket

    since = console.mark()
    console.click("send() after close")
    after_close = console.wait_for("quirk", since, where="r.name === 'send-after-close'")[0]
    before, after = after_close["bufferedAmount"]
    # On the console's socket, with the server's journal as the witness: nothing arrives.
    console.connect(ECHO, journal=True)
    since = console.mark()
    console.close()
    console.wait_for("close", since)
    call = console.send_text("into the void")
    assert (call["kind"], call["readyState"]) == ("call", 3)
    events = console.journal_until("websocket.disconnect")
    assert [e for e in events if e["type"] == "websocket.receive"] == []
    observed = {
        "send() while CONNECTING": (connecting["error"], threw["error"]),
        "send() after close": (after_close["error"], after - before),
    }
    assert_cells(console.driver.engine, observed)


def test_close_arguments(console: Console) -> None:
    since = console.mark()
    console.click("close(1001)")
    console.click("close with a 124-byte reason")
    quirks = console.wait_for("quirk", since, count=2)
    by_name = {q["name"]: q["error"] for q in quirks}
    # On the console's own socket: the throws leave it open; 123 bytes is still allowed.
    console.connect(ECHO, journal=True)
    thrown = {code: console.close(code)["error"] for code in (999, 1001, 1005, 1006, 2999, 5000)}
    reason_124 = console.close(4000, "é" * 61 + "xy")["error"]
    assert console.ws("readyState") == 1
    since = console.mark()
    assert console.close(4999, "é" * 61 + "x")["kind"] == "call"  # 123 bytes
    console.wait_for("close", since)
    sent = [e for e in console.journal_until("websocket.disconnect")][-1]
    observed = {
        "close(code) refused": (by_name["close-invalid-code"], sorted(set(thrown.values()))),
        "close(code, reason > 123 bytes)": (by_name["close-long-reason"], reason_124),
        # What the consumer received: the code the page gave.
        "close(4999, 123-byte reason)": sent["code"],
    }
    assert_cells(console.driver.engine, observed)


def test_failed_and_refused_handshakes(console: Console) -> None:
    # Nothing listens on this port: the connection fails.
    dead = f"ws://127.0.0.1:{free_port()}/ws/sc/"
    console.driver.evaluate(
        "(url) => document.querySelector('[data-endpoint]').add(new Option(url, url))", dead
    )
    since = console.mark()
    console.connect(dead, wait="close")
    failed = console.records(since=since)
    # The page's own /ws/auth/strict/ refuses anonymous visitors with HTTP 403.
    page = console.driver
    page.goto("/auth/")
    page.wait_for("() => (window.socketConsoles || []).length > 0")
    auth = Console(page)
    since = auth.mark()
    page.click("button", "Connect to /ws/auth/strict/", scope=("[data-lobby-anonymous]", 0))
    auth.wait_for("close", since)
    refused = auth.records(since=since)
    assert page.text("[data-try-result]").find("1006") >= 0

    def outcome(records: list[dict]) -> tuple:
        events = [r for r in records if r["kind"] in ("open", "error", "close")]
        close = events[-1]
        return (
            " → ".join(r["kind"] for r in events),
            (close["code"], close["wasClean"]),
            close["via"],
        )

    observed = {"nothing listening": outcome(failed), "HTTP 403": outcome(refused)}
    assert console.records("reconnecting") == []  # a handshake that never opened: no retry
    assert_cells(console.driver.engine, observed)


def test_anonymous_socket_gets_4401(engine_page: EnginePage) -> None:
    engine_page.goto("/auth/")
    engine_page.wait_for("() => (window.socketConsoles || []).length > 0")
    console = Console(engine_page)
    since = console.mark()
    engine_page.click("button", "Connect to /ws/auth/", scope=("[data-lobby-anonymous]", 0))
    close = console.wait_for("close", since)[0]
    kinds = [r["kind"] for r in console.records(since=since) if r["kind"] in EVENTS]
    assert "code 4401" in engine_page.text("[data-try-result]")
    observed = {
        "4401 from daphne": (
            " → ".join(kinds),
            (close["code"], close["reason"], close["wasClean"]),
        )
    }
    assert_cells(engine_page.engine, observed)


# ---------------------------------------------------------------------------- EventSource


def open_stream(page: EnginePage, url: str, per_stream: int = 0) -> None:
    """Open /http/ and press Connect with these settings."""
    page.goto("/http/")
    page.wait_for("() => window.sseConsole !== undefined")
    page.select("Stream", url)
    page.fill("server ends each response after", str(per_stream))
    page.check("withCredentials", False)
    page.click("button", "Connect")


def stream_records(page: EnginePage, kind: str, count: int = 1) -> list[dict]:
    """Wait until `count` records of `kind` exist; return them all."""
    return page.wait_for(
        """([kind, count]) => {
            const found = window.sseConsole.records.filter((r) => r.kind === kind);
            return found.length >= count ? found : null;
        }""",
        [kind, count],
    )


def test_event_source(engine_page: EnginePage) -> None:
    # The session's daphne ends each response after 3 ticks when asked, and says `retry: 200`:
    # the browser reconnects by itself, with Last-Event-ID, and the stream goes on.
    open_stream(engine_page, "/sse/ticks/", per_stream=3)
    ticks = stream_records(engine_page, "message", 9)
    ids = [int(t["id"]) for t in ticks]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no duplicate
    hellos = stream_records(engine_page, "hello", 3)
    errors = stream_records(engine_page, "error", 2)
    first = engine_page.evaluate("() => window.sseConsole.records[0]")
    engine_page.click("button", "close()")
    closed = stream_records(engine_page, "close")[0]

    open_stream(engine_page, "/sse/lobby/")  # anonymous: 403
    refused = stream_records(engine_page, "error")[0]
    after_403 = engine_page.evaluate("() => window.sseConsole.records.map((r) => r.kind)")
    observed = {
        "EventSource events": (
            ticks[0]["via"],
            hellos[0]["via"],
            (first["readyState"], ticks[0]["readyState"], closed["readyState"]),
        ),
        "EventSource reconnects": (
            [h["data"]["resumed_from"] for h in hellos[:3]],
            [e["readyState"] for e in errors[:2]],
            errors[0]["via"],
        ),
        "EventSource on HTTP 403": (refused["readyState"], after_403),
    }
    assert_cells(engine_page.engine, observed)


# ---------------------------------------------------------------------------- the lobby


def log_in(page: EnginePage, username: str, password: str) -> Console:
    """Log in through the form, land on /auth/, and wait for the lobby's hello."""
    page.goto("/accounts/login/?next=/auth/")
    page.fill("Username", username)
    page.fill("Password", password)
    page.click("button", "Log in")
    page.wait_for("() => location.pathname === '/auth/' && window.socketConsoles?.length > 0")
    console = Console(page)
    console.wait_for("message", where="JSON.parse(r.text).type === 'hello'")
    return console


def online(page: EnginePage, users: list[str]) -> None:
    """Wait until the page's presence list shows exactly these users."""
    page.wait_for(
        """(users) => {
            const items = document.querySelectorAll("[data-online] li");
            const shown = Array.from(items, (li) => li.dataset.user);
            return JSON.stringify(shown) === JSON.stringify(users);
        }""",
        users,
    )


def chat(console: Console, since: int) -> dict:
    """The first chat envelope the page's socket received after `since`."""
    said = console.wait_for("message", since, where="JSON.parse(r.text).type === 'chat'")[0]
    return json.loads(said["text"])


def test_lobby_alice_in_firefox_bob_in_webkit(
    open_engine: Callable[[str], EnginePage], users: None, password: str
) -> None:
    alice_page, bob_page = open_engine("firefox"), open_engine("webkit")
    alice = log_in(alice_page, "alice", password)
    bob = log_in(bob_page, "bob", password)
    online(alice_page, ["alice", "bob"])
    online(bob_page, ["alice", "bob"])

    since = bob.mark()
    alice_page.fill("Message", "hi bob, from Firefox")
    alice_page.click("button", "Send")
    said = chat(bob, since)
    assert (said["user"], said["text"]) == ("alice", "hi bob, from Firefox")
    bob_page.wait_for(
        "(t) => document.querySelector('[data-chat-log]').innerText.includes(t)", said["text"]
    )

    since = alice.mark()
    bob_page.fill("Message", "hi alice, from WebKit")
    bob_page.click("button", "Send")
    said = chat(alice, since)
    assert (said["user"], said["text"]) == ("bob", "hi alice, from WebKit")

    # Bob leaves (WebKit navigates away): Firefox hears it; then alice leaves, and vice versa.
    bob_page.goto("/")
    online(alice_page, ["alice"])
    bob_page.goto("/auth/")  # still logged in: the lobby's socket joins again
    online(alice_page, ["alice", "bob"])
    alice_page.goto("/")
    online(bob_page, ["bob"])
