"""Driving the /http/ page's EventSource console and reading what it recorded."""

from typing import Any

from playwright.sync_api import Page

Record = dict[str, Any]


def connect(page: Page, url: str, per_stream: int = 0, with_credentials: bool = False) -> None:
    """Open /http/ and press Connect with these settings."""
    page.goto("/http/", wait_until="domcontentloaded")
    page.wait_for_function("() => window.sseConsole !== undefined")
    page.get_by_label("Stream", exact=False).and_(page.locator("select")).select_option(url)
    page.get_by_label("server ends each response after").fill(str(per_stream))
    page.get_by_label("withCredentials").set_checked(with_credentials)
    page.get_by_role("button", name="Connect", exact=True).click()


def wait_for(page: Page, kind: str, count: int = 1, timeout: float = 5000) -> list[Record]:
    """Wait until `count` records of `kind` exist; return them all."""
    handle = page.wait_for_function(
        """([kind, count]) => {
            const found = window.sseConsole.records.filter((r) => r.kind === kind);
            return found.length >= count ? found : null;
        }""",
        arg=[kind, count],
        timeout=timeout,
    )
    return handle.json_value()


def records(page: Page) -> list[Record]:
    """Everything the page's EventSource console recorded so far."""
    return page.evaluate("() => window.sseConsole.records")
