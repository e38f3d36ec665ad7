"""
The browser's WebSocket API, as the seed notes teach it, observed by the page's own JavaScript.

Every assertion reads what `static/js/console.js` recorded from the real WebSocket object
(`records`, `readyStates`, `ws`), in Chromium, against daphne serving the real consumers.
"""

import json
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from e2e.console import Console
from tools.servers import ServerProcess, free_port

ECHO = "/ws/sc/generic/"


@pytest.fixture
def console(page: Page) -> Console:
    """The console of the sync page, where these tests talk to the generic echo consumer."""
    return Console.open(page, "/sync/")


def test_constructor_and_both_handler_styles_fire(console: Console, base_url: str) -> None:
    opened = console.connect(ECHO)
    connect = console.records("connect")[-1]
    expected_url = base_url.replace("http", "ws") + ECHO
    assert connect["message"] == f'new WebSocket("{expected_url}", ["showcase.v1"])'
    assert console.ws("url") == expected_url
    assert opened["via"] == ["onopen", "addEventListener"]

    message = console.echo("hello")
    assert (message["dataType"], message["text"]) == ("string", "hello")
    assert message["via"] == ["onmessage", "addEventListener"]

    since = console.mark()
    console.close(1000, "done")
    closed = console.wait_for("close", since)[0]
    assert closed["via"] == ["onclose", "addEventListener"]


def test_error_fires_on_both_handler_styles_when_the_handshake_fails(console: Console) -> None:
    # A port nothing listens on: the connection fails, which is what `error` reports.
    dead = f"ws://127.0.0.1:{free_port()}/ws/sc/"
    console.page.evaluate(
        "(url) => document.querySelector('[data-endpoint]').add(new Option(url, url))", dead
    )
    since = console.mark()
    console.connect(dead, wait="close")
    error = console.wait_for("error", since)[0]
    assert error["via"] == ["onerror", "addEventListener"]
    closed = console.records("close", since)[0]
    assert (closed["code"], closed["wasClean"]) == (1006, False)
    assert closed["at"] >= error["at"]
    # A handshake that never opened would fail again: the console does not retry it.
    assert console.records("reconnecting", since) == []


def test_ready_state_goes_through_0_1_2_3(console: Console) -> None:
    console.connect(ECHO)
    assert console.ready_states()[:2] == [0, 1]
    since = console.mark()
    call = console.close()
    assert (call["kind"], call["readyState"]) == ("call", 2)  # CLOSING right after close()
    closed = console.wait_for("close", since)[0]
    assert closed["readyState"] == 3
    states = console.ready_states()
    assert [s for n, s in enumerate(states) if n == 0 or states[n - 1] != s] == [0, 1, 2, 3]


def test_buffered_amount_rises_on_a_large_send_and_drains(console: Console) -> None:
    console.connect(ECHO)
    since = console.mark()
    console.root.get_by_role("button", name="send 200 kB").click()
    call = console.wait_for("call", since, where="r.message.startsWith('send(text')")[0]
    before, after = call["bufferedAmount"]
    assert before == 0
    assert after >= 200_000  # queued, not yet on the wire
    console.page.wait_for_function("() => window.socketConsoles[0].ws.bufferedAmount === 0")
    echoed = console.wait_for("message", since)[0]
    assert (echoed["dataType"], echoed["size"]) == ("string", 200_000)


def test_send_while_connecting_throws_invalid_state_error(console: Console) -> None:
    since = console.mark()
    console.root.get_by_role("button", name="send() while CONNECTING").click()
    quirk = console.wait_for("quirk", since)[0]
    assert (quirk["name"], quirk["error"]) == ("send-while-connecting", "InvalidStateError")

    # The console's own socket, in the task that constructed it: still CONNECTING.
    console.root.get_by_label("Endpoint").select_option(ECHO)
    threw = console.run("(c) => { c.connect(); c.sendText('too early'); return c.records.at(-1); }")
    assert (threw["kind"], threw["error"], threw["readyState"]) == ("threw", "InvalidStateError", 0)
    # The throw does not hurt the socket: it opens, and nothing early was sent.
    console.wait_for("open", since)
    assert console.echo("on time")["text"] == "on time"


def test_sends_after_close_are_discarded_silently(console: Console) -> None:
    since = console.mark()
    console.root.get_by_role("button", name="send() after close").click()
    quirk = console.wait_for("quirk", since, where="r.name === 'send-after-close'")[0]
    assert quirk["error"] is None
    before, after = quirk["bufferedAmount"]
    assert after == before + len("into the void")  # counted, per the spec, never sent

    # The same on the console's socket, with the server's journal as the witness.
    console.connect(ECHO, journal=True)
    since = console.mark()
    console.close()
    console.wait_for("close", since)
    call = console.send_text("into the void")
    assert call["kind"] == "call"
    assert call["readyState"] == 3
    events = console.journal_until("websocket.disconnect")
    assert [e for e in events if e["type"] == "websocket.receive"] == []


# ---------------------------------------------------------------------------- closing
#
# What the browser sees when it or the server closes depends on the server as much as on the
# browser: e2e/test_servers.py runs those tests on each of the four servers.


def test_invalid_close_arguments_throw(console: Console) -> None:
    since = console.mark()
    console.root.get_by_role("button", name="close(1001)").click()
    console.root.get_by_role("button", name="close with a 124-byte reason").click()
    quirks = console.wait_for("quirk", since, count=2)
    assert {q["name"]: q["error"] for q in quirks} == {
        "close-invalid-code": "InvalidAccessError",
        "close-long-reason": "SyntaxError",
    }

    # On the console's own socket: the throws leave it open; 123 bytes is still allowed.
    console.connect(ECHO)
    assert console.close(1001)["error"] == "InvalidAccessError"
    assert console.close(5000, "x")["error"] == "InvalidAccessError"
    assert console.close(4000, "é" * 61 + "xy")["error"] == "SyntaxError"  # 124 bytes
    assert console.ws("readyState") == 1
    since = console.mark()
    assert console.close(4000, "é" * 61 + "x")["kind"] == "call"  # 123 bytes
    console.wait_for("close", since)


def test_subprotocol_negotiation_is_visible_in_ws_protocol(console: Console) -> None:
    for offered, expected in ((True, "showcase.v1"), (False, "")):
        opened = console.connect(ECHO, subprotocol=offered)
        assert console.ws("protocol") == opened["protocol"] == expected
        expect(console.root.locator("[data-protocol]")).to_have_text(f'"{expected}"')
        since = console.mark()
        console.close()
        console.wait_for("close", since)


# ---------------------------------------------------------------------------- limits


# A bucket that refills slowly: with the default 100 messages a second, a server slowed by a
# busy machine read the burst so late that the bucket had refilled and never ran dry.
SLOW_BUCKET = {"messages_per_second": 1, "burst": 20}


def test_too_many_messages_close_4429(
    page: Page, start_server: Callable[..., ServerProcess]
) -> None:
    limits = SLOW_BUCKET
    server = start_server(name="daphne-4429", env={"WS_LIMITS": json.dumps({"echo": limits})})
    console = Console.open(page, server.http_url + "/sync/")
    console.connect(ECHO, reconnect=False)
    since = console.mark()
    # Twice the burst, at once: even a server that takes seconds to read them all has refilled
    # only a few tokens by then.
    console.run(
        "(c, n) => { for (let i = 0; i < n; i += 1) c.sendText(String(i)); }", limits["burst"] * 2
    )
    closed = console.wait_for("close", since)[0]
    assert closed["code"] == 4429
    echoed = [int(m["text"]) for m in console.records("message", since)]
    # Everything up to the refusal came back, in order; nothing after it.
    assert echoed == list(range(len(echoed)))
    assert limits["burst"] <= len(echoed) < limits["burst"] * 2
