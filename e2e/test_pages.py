"""Smoke tests: each page loads without script errors, shows its code and labels its controls."""

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.console import Console

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


def test_home_lists_every_demo_and_shows_the_asgi_wiring(page: Page) -> None:
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


@pytest.mark.parametrize("path", STYLE_PAGES)
def test_style_page_shows_its_consumers_and_labelled_controls(page: Page, path: str) -> None:
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
