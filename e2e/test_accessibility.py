"""
Every page, every visitor: axe-core finds nothing (WCAG 2.1 A/AA and best practice, any
impact), nothing is wider than the viewport and no id appears twice, at 1366 and 390 px,
anonymous and logged in. Each page is checked once per width, on one load, after its sockets
and streams are live and their logs have rendered (logs change the DOM).
"""

import os
from collections.abc import Callable

from playwright.sync_api import Page, expect

from e2e import a11y, sse
from e2e.auth import IS_HELLO, PASSWORD, expect_online
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


# A11Y_ALL_CODE=1: axe checks every span of highlighted code, not one of each colour (slow).
ALL_CODE = bool(os.environ.get("A11Y_ALL_CODE"))

# path: what makes the page say something before it is checked
ANONYMOUS_PAGES: dict[str, Callable[[Page], None] | None] = {
    "/": None,
    "/sync/": live_consoles,
    "/async/": live_consoles,
    "/auth/": anonymous_lobby,
    "/http/": ticking_stream,
    "/worker/": finished_job,
    "/accounts/signup/": None,
    "/docs/": None,
    # The guide's page with the widest tables and code.
    "/docs/browser-and-servers/": None,
}


def check(page: Page, path: str) -> list[str]:
    """
    The page's problems at each width, on this one load: checked as loaded at 1366 px, then
    resized to 390 px and checked again (the sockets stay live; only the layout changes).
    """
    problems = []
    for width in a11y.WIDTHS:
        page.set_viewport_size(a11y.viewport(width))
        found = a11y.audit(page, all_code=ALL_CODE)
        problems += [f"{path} at {a11y.WIDTHS[width]} px: {problem}" for problem in found]
    return problems


def load(page: Page, path: str) -> None:
    """Load a page and let its deferred scripts run (they have by the load event)."""
    page.goto(path, wait_until="load")


def test_every_page_for_an_anonymous_visitor(page: Page) -> None:
    """Every page above, one after another in one tab (axe is compiled once per tab)."""
    problems = []
    for path, act in ANONYMOUS_PAGES.items():
        page.set_viewport_size(a11y.viewport("desktop"))
        load(page, path)
        if act:
            act(page)
        problems += check(page, path)
    assert problems == [], "\n".join(problems)


def test_every_page_for_a_logged_in_visitor(page: Page, users: None) -> None:
    """The login form; /auth/ with chat and presence rendered; /http/ with the lobby stream."""
    load(page, "/accounts/login/?next=/auth/")
    problems = check(page, "/accounts/login/")
    page.set_viewport_size(a11y.viewport("desktop"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/auth/")
    console = Console(page)
    console.wait_for("message", where=IS_HELLO)
    expect_online(page, ["alice"])
    page.get_by_role("textbox", name="Message").fill("a chat line long enough to wrap " * 4)
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("[data-chat-log] li[data-id]").wait_for()
    problems += check(page, "/auth/ (logged in)")

    page.set_viewport_size(a11y.viewport("desktop"))
    load(page, "/http/")
    page.get_by_label("Stream", exact=False).and_(page.locator("select")).select_option(
        "/sse/lobby/"
    )
    page.get_by_role("button", name="Connect", exact=True).click()
    sse.wait_for(page, "chat")
    problems += check(page, "/http/ (logged in)")
    assert problems == [], "\n".join(problems)
