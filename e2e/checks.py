"""
Browser checks that run twice: against the session's daphne (test_auth, test_endpoints,
test_pages) and through nginx on the cluster (cluster/test_through_nginx). Each takes a page
whose base URL says which; the test modules that call them say what they run against.
"""

import json
import re
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from e2e.auth import expect_online, log_in, messages
from e2e.console import Console

PAGES = {
    "/sync/": ("/ws/sc/", "SyncEchoConsumer", "SyncGenericEchoConsumer", "SyncJsonConsumer"),
    "/async/": ("/ws/ac/", "AsyncEchoConsumer", "AsyncGenericEchoConsumer", "AsyncJsonConsumer"),
}
PURE_ECHO = [
    (page_path, PAGES[page_path][0] + suffix) for page_path in PAGES for suffix in ("", "generic/")
]
JSON = [(page_path, PAGES[page_path][0] + "json/") for page_path in PAGES]

STYLE_PAGES = {
    "/sync/": ("Sync consumers", "apps/echo_sync/consumers.py", "SyncEchoConsumer"),
    "/async/": ("Async consumers", "apps/echo_async/consumers.py", "AsyncEchoConsumer"),
}
# The Channels class each endpoint's consumer derives from, as the page names it.
STYLES = {
    "/sync/": ["SyncConsumer", "WebsocketConsumer", "JsonWebsocketConsumer"],
    "/async/": ["AsyncConsumer", "AsyncWebsocketConsumer", "AsyncJsonWebsocketConsumer"],
}


def collect_errors(page: Page) -> list[str]:
    """Uncaught exceptions and console errors of the page, from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def log_in_through_the_page_then_hello_and_presence(page: Page) -> None:
    """alice logs in through the form; the lobby says hello and lists her, the socket stays open."""
    console = log_in(page, "alice")
    hello = messages(console, "hello")[0]
    assert hello["user"] == "alice"
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("signed in as alice")
    expect(page.locator("[data-lobby-status]")).to_contain_text("connected as alice")
    expect_online(page, ["alice"])
    # The socket opened on the lobby endpoint and was not closed.
    assert urlsplit(console.ws("url")).path == "/ws/auth/"
    assert console.ws("readyState") == 1
    assert console.records("close") == []


def pure_echo_round_trips_with_each_binary_type(page: Page, page_path: str, endpoint: str) -> None:
    """Text, and bytes sent as Blob and ArrayBuffer, come back as sent under either binaryType."""
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


def json_envelopes_and_errors(page: Page, page_path: str, endpoint: str) -> None:
    """The command buttons' envelopes, and bad input answered with errors on a live socket."""
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


def home_lists_every_demo_and_shows_the_asgi_wiring(page: Page) -> None:
    """The home page links each demo and shows config/asgi.py."""
    errors = collect_errors(page)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("consumer style")
    main = page.get_by_role("main")
    for title, path in (("Sync consumers", "/sync/"), ("Async consumers", "/async/")):
        expect(main.get_by_role("link", name=title, exact=True)).to_have_attribute("href", path)
    page.locator("summary", has_text="config/asgi.py").click()
    expect(page.locator("details pre code")).to_contain_text("ProtocolTypeRouter")
    main.get_by_role("link", name="Sync consumers", exact=True).click()
    expect(page).to_have_url(re.compile(r"/sync/$"))
    assert errors == []


def style_page_shows_its_consumers_and_labelled_controls(page: Page, path: str) -> None:
    """A style page shows its consumers' real source and a console whose controls are named."""
    heading, module, first_consumer = STYLE_PAGES[path]
    errors = collect_errors(page)
    console = Console.open(page, path)
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name=heading.split()[0], exact=True)).to_have_attribute(
        "aria-current", "page"
    )

    # The real source of the consumers that answer this page's sockets.
    source = page.get_by_label(f"Source of {first_consumer}")
    expect(source).to_contain_text(f"class {first_consumer}(")
    expect(source).to_contain_text("def websocket_connect(self, event")
    expect(page.locator("details").filter(has_text=module)).to_have_count(1)
    assert page.locator("article.endpoint pre.code").count() == 3
    expect(page.locator("article.endpoint .badge")).to_have_text(STYLES[path])
    # The console offers exactly this app's endpoints, each named with its consumer.
    prefix = "/ws/sc/" if path == "/sync/" else "/ws/ac/"
    options = console.root.locator("[data-endpoint] option")
    assert options.evaluate_all("(os) => os.map((o) => o.value)") == [
        prefix,
        prefix + "generic/",
        prefix + "json/",
    ]
    labels = options.all_text_contents()
    assert [label.split(" — ")[1].split(" (")[0] for label in labels] == [
        first_consumer,
        first_consumer.replace("Echo", "GenericEcho"),
        first_consumer.replace("Echo", "Json"),
    ]

    # Every control has an accessible name a person (and a screen reader) can find it by.
    root = console.root
    for label in ("Endpoint", "Text", "Bytes, in hex", "binaryType", "code", "reason"):
        expect(root.get_by_label(label)).to_be_visible()
    for label in ("offer subprotocol", "journal the server's events", "reconnect after a server"):
        expect(root.get_by_label(label)).to_be_checked()
    for name in (
        "Connect",
        "send(text)",
        "send(Blob)",
        "send(ArrayBuffer)",
        "close(code, reason)",
        "close()",
        "send() while CONNECTING",
        "send() after close",
    ):
        expect(root.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(root.get_by_role("log", name="What the browser saw")).to_be_attached()
    # Nothing to send on before a socket is open.
    expect(root.get_by_role("button", name="send(text)", exact=True)).to_be_disabled()
    expect(root.locator("[data-ready-state]")).to_have_text("no socket")

    console.connect(prefix)
    expect(root.locator("[data-ready-state]")).to_have_text("1 OPEN")
    expect(root.get_by_role("button", name="send(text)", exact=True)).to_be_enabled()
    expect(root.get_by_role("log").locator("li.log-open")).to_contain_text(
        "via onopen + addEventListener"
    )
    assert errors == []
