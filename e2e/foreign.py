"""
What the browser tests share about the page of another origin (e2e/foreign_site/index.html,
served by the `foreign_site` fixture): open it aimed at the showcase, read what it got.
"""

from typing import Any

from playwright.sync_api import Page


def foreign_outcomes(page: Page, foreign_site: str, target: str) -> dict[str, Any]:
    """Open the foreign page aimed at `target`; return what each attempt got."""
    page.goto(f"{foreign_site}/index.html?target={target}")
    page.wait_for_function("() => window.done === true", timeout=15_000)
    return page.evaluate("() => window.outcomes")


def assert_nothing_reached(outcomes: dict[str, Any]) -> None:
    """Every socket refused before it opened, no stream event, nothing readable."""
    sockets = {k: v for k, v in outcomes.items() if k.startswith("socket ")}
    assert len(sockets) == 9
    for name, seen in sockets.items():
        # A handshake refused with HTTP 403 is a close 1006 to the page, never an open.
        assert (seen["opened"], seen["messages"], seen["code"]) == (False, [], 1006), name
    streams = {k: v for k, v in outcomes.items() if k.startswith("stream ")}
    for name, seen in streams.items():
        assert (seen["opened"], seen["events"], seen["errored"]) == (False, [], True), name
    # No CORS header: the browser does not let the page read the journal feed at all.
    assert "error" in outcomes["fetch /journal/"]
