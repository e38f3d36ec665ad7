"""
Every endpoint of both echo apps, driven from its own page: the sync consumers from /sync/,
the async ones from /async/, through the same console.
"""

import json

import pytest
from playwright.sync_api import Page, expect

from e2e.console import Console

PAGES = {
    "/sync/": ("/ws/sc/", "SyncEchoConsumer", "SyncGenericEchoConsumer", "SyncJsonConsumer"),
    "/async/": ("/ws/ac/", "AsyncEchoConsumer", "AsyncGenericEchoConsumer", "AsyncJsonConsumer"),
}
PURE_ECHO = [
    (page_path, PAGES[page_path][0] + suffix) for page_path in PAGES for suffix in ("", "generic/")
]
JSON = [(page_path, PAGES[page_path][0] + "json/") for page_path in PAGES]


@pytest.mark.parametrize(("page_path", "endpoint"), PURE_ECHO)
def test_pure_echo_round_trips_with_each_binary_type(
    page: Page, page_path: str, endpoint: str
) -> None:
    console = Console.open(page, page_path)
    opened = console.connect(endpoint, binary_type="blob")
    assert opened["protocol"] == "showcase.v1"
    text = "héllo ✓ " + "🚀" * 3
    payload = bytes(range(256))
    for binary_type, received_as in (("blob", "Blob"), ("arraybuffer", "ArrayBuffer")):
        # The binaryType select changes the open socket's binaryType on the spot.
        console.root.get_by_label("binaryType").select_option(binary_type)
        assert console.ws("binaryType") == binary_type
        since = console.mark()
        console.send_text(text)
        # The hex field and the buttons, as a person would send bytes.
        console.root.get_by_label("Bytes, in hex").fill(payload.hex(" "))
        console.root.get_by_role("button", name="send(Blob)").click()
        console.root.get_by_label("Bytes, in hex").fill(payload[::-1].hex(" "))
        console.root.get_by_role("button", name="send(ArrayBuffer)").click()
        got = console.wait_for("message", since, count=3)
        assert [(m["dataType"], m.get("text")) for m in got[:1]] == [("string", text)]
        assert [(m["dataType"], m["hex"], m["size"]) for m in got[1:]] == [
            (received_as, payload.hex(" "), 256),
            (received_as, payload[::-1].hex(" "), 256),
        ]
    # Pure echo sends nothing of its own: exactly one reply per message.
    assert len(console.records("message")) == 6


@pytest.mark.parametrize(("page_path", "endpoint"), JSON)
def test_json_envelopes_and_errors(page: Page, page_path: str, endpoint: str) -> None:
    consumer = PAGES[page_path][3]
    console = Console.open(page, page_path)
    console.connect(endpoint)
    commands = console.root.locator("[data-commands]")

    def press(name: str) -> dict:
        since = console.mark()
        commands.get_by_role("button", name=name).click()
        return json.loads(console.wait_for("message", since)[0]["text"])

    assert press("echo") == {"type": "echo", "data": {"n": 1}}
    info = press("info (which thread?)")
    assert (info["type"], info["consumer"], info["path"]) == ("info", consumer, endpoint)
    assert info["subprotocols_offered"] == ["showcase.v1"]
    assert info["user"] is None
    if page_path == "/sync/":
        assert info["thread"] != "MainThread"  # a worker thread of asgiref's executor
    else:
        assert info["thread"] == "MainThread"  # the event loop's thread
    for name, code in (
        ("invalid JSON", "invalid_json"),
        ("non-object", "not_an_object"),
        ("unknown type", "unknown_type"),
    ):
        error = press(name)
        assert (error["type"], error["code"]) == ("error", code)
        assert error["message"]
    since = console.mark()
    console.send_bytes(b'{"type": "echo"}', "Blob")
    error = json.loads(console.wait_for("message", since)[0]["text"])
    assert (error["type"], error["code"]) == ("error", "binary_not_supported")
    # Bad input did not cost the socket.
    assert console.ws("readyState") == 1
    assert console.records("close") == []
    since = console.mark()
    console.send_json({"type": "echo", "data": "still here"})
    reply = json.loads(console.wait_for("message", since)[0]["text"])
    assert reply == {"type": "echo", "data": "still here"}


@pytest.mark.parametrize(("page_path", "endpoint"), [PURE_ECHO[0], PURE_ECHO[2]])
def test_journal_shows_the_disconnect_code_the_browser_sent(
    page: Page, page_path: str, endpoint: str
) -> None:
    console = Console.open(page, page_path)
    console.connect(endpoint, journal=True)
    console.echo("seen by both")
    since = console.mark()
    console.close(4123, "journal")
    console.wait_for("close", since)
    events = console.journal_until("websocket.disconnect")
    assert [(e["direction"], e["type"]) for e in events] == [
        ("received", "websocket.connect"),
        ("sent", "websocket.accept"),
        ("received", "websocket.receive"),
        ("sent", "websocket.send"),
        ("received", "websocket.disconnect"),
    ]
    assert events[1]["subprotocol"] == "showcase.v1"
    assert events[2]["text"] == events[3]["text"] == "seen by both"
    assert events[-1]["code"] == 4123
    # The panel shows the same events to a person, and the console's `journal` holds them.
    panel = console.root.get_by_role("list", name="What the consumer saw")
    expect(panel.locator("li")).to_have_count(5)
    expect(panel.locator("li").last).to_contain_text("websocket.disconnect code=4123")
    assert console.run("(c) => c.journal") == events
