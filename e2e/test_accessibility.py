"""
Every page, every visitor: axe-core finds nothing (WCAG 2.1 A/AA and best practice, any
impact), nothing is wider than the viewport, no id appears twice and no two controls share a
role and a name, at 1366 and 390 px, anonymous and logged in. Each page is checked at both
widths on one load, after its sockets and streams are live and their logs have rendered
(logs change the DOM).
"""

import os
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from e2e import a11y, sse
from e2e.auth import IS_HELLO, expect_online, log_in
from e2e.console import Console


def live_consoles(page: Page) -> None:
    """
    /sync/ and /async/: the main console on the JSON endpoint with its journal, an echo and
    its journal panel filled; both side-by-side panes open and answered.
    """
    prefix = "/ws/sc/" if page.url.endswith("/sync/") else "/ws/ac/"
    console = Console(page)
    console.connect(prefix + "json/", journal=True)
    console.echo('{"type": "echo", "data": "accessible"}')
    console.journal_until("websocket.send")
    page.locator("[data-journal-log] li").nth(2).wait_for()
    for index in (1, 2):
        pane = Console(page, index)
        pane.wait_for("open")
        pane.echo('{"type": "info"}')


def anonymous_lobby(page: Page) -> None:
    """/auth/ anonymous: try /ws/auth/, which accepts, then closes with 4401."""
    page.get_by_role("button", name="Connect to /ws/auth/", exact=True).click()
    Console(page).wait_for("close", where="r.code === 4401")
    expect(page.locator("[data-try-result]")).to_contain_text("4401")


def ticking_stream(page: Page) -> None:
    """/http/: the ticks stream, a few events in."""
    page.get_by_role("button", name="Connect", exact=True).click()
    sse.wait_for(page, "message", count=3)


def finished_job(page: Page) -> None:
    """/worker/: a small job run to the end, and an echo."""
    console = Console(page)
    console.wait_for("message", where=IS_HELLO)
    page.get_by_label("count the primes up to").fill("20000")
    page.get_by_role("button", name="Start job").click()
    page.locator("[data-job-list] li[data-done]").wait_for(timeout=15_000)


# A11Y_FULL=1: axe checks every span of highlighted code, not one of each colour, and colour
# contrast at every width (several times slower).
FULL = bool(os.environ.get("A11Y_FULL"))

# path: what makes the page say something before it is checked
ANONYMOUS_PAGES: dict[str, Callable[[Page], None] | None] = {
    "/": None,
    "/sync/": live_consoles,
    "/async/": live_consoles,
    "/auth/": anonymous_lobby,
    "/http/": ticking_stream,
    "/worker/": finished_job,
    "/accounts/login/": None,
    "/accounts/signup/": None,
    "/docs/": None,
    # The guide's page with the widest tables and code.
    "/docs/browser-and-servers/": None,
}


def check(page: Page, path: str) -> list[str]:
    """
    The page's problems at each width, on this one load: checked as loaded at 1366 px, then
    resized to 390 px and checked again (the sockets stay live; only the layout changes).
    Colour contrast, the costliest rule, runs at the first width only: the stylesheet's media
    queries change layout, never a colour.
    """
    problems = []
    for index, width in enumerate(a11y.WIDTHS):
        page.set_viewport_size(a11y.viewport(width))
        found = a11y.audit(page, contrast=FULL or index == 0, all_code=FULL)
        problems += [f"{path} at {a11y.WIDTHS[width]} px: {problem}" for problem in found]
    return problems


def load(page: Page, path: str) -> None:
    """Load a page and let its deferred scripts run (they have by the load event)."""
    page.goto(path, wait_until="load")


@pytest.mark.parametrize("path", ANONYMOUS_PAGES)
def test_page_for_an_anonymous_visitor(page: Page, path: str) -> None:
    load(page, path)
    if act := ANONYMOUS_PAGES[path]:
        act(page)
    problems = check(page, path)
    assert problems == [], "\n".join(problems)


def say(page: Page, text: str) -> None:
    """Chat in the lobby on /auth/, and wait for the line to show."""
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()
    # Its own line: the lobby may show recent lines of other tests too (LOBBY_RECENT).
    page.locator("[data-chat-log] li[data-id]", has_text=text.strip()).last.wait_for()


def chatting_lobby(page: Page) -> None:
    """/auth/ logged in: presence rendered and a chat line long enough to wrap."""
    expect_online(page, ["alice"])
    say(page, "a chat line long enough to wrap " * 4)


def lobby_stream(page: Page) -> None:
    """/http/ logged in: the lobby's stream, showing a line said on /auth/ before it opened."""
    say(page, "said before the stream opened")
    load(page, "/http/")
    page.get_by_label("Stream", exact=False).and_(page.locator("select")).select_option(
        "/sse/lobby/"
    )
    page.get_by_role("button", name="Connect", exact=True).click()
    sse.wait_for(page, "chat")


# The pages that change when a visitor is logged in (the header changes on every page), and
# what makes each say something, starting on /auth/ just after logging in.
LOGGED_IN_PAGES = {"/auth/": chatting_lobby, "/http/": lobby_stream}


@pytest.mark.parametrize("path", LOGGED_IN_PAGES)
def test_page_for_a_logged_in_visitor(page: Page, users: None, path: str) -> None:
    log_in(page, "alice")  # through the form, to /auth/, once the lobby said hello
    LOGGED_IN_PAGES[path](page)
    problems = check(page, f"{path} (logged in)")
    assert problems == [], "\n".join(problems)
