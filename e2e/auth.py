"""
Logging in and the lobby page, for every browser test that needs a user: the demo password,
the login form, the lobby's hello, its envelopes and its "online" list.
"""

import json
import re

from playwright.sync_api import Page, expect

from e2e.console import Console

PASSWORD = "a long demo passphrase"
IS_HELLO = "r.dataType === 'string' && JSON.parse(r.text).type === 'hello'"


def log_in(page: Page, username: str, base: str = "") -> Console:
    """Log in through the login form, land on /auth/, and wait for the lobby's hello."""
    page.goto(f"{base}/accounts/login/?next=/auth/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/auth/$"))
    return open_lobby(page)


def open_lobby(page: Page, url: str | None = None) -> Console:
    """The lobby page, once its socket said hello (lobby.js connects by itself)."""
    if url:
        page.goto(url)
    page.wait_for_function("() => (window.socketConsoles || []).length > 0")
    console = Console(page)
    console.wait_for("message", where=IS_HELLO)
    return console


def messages(console: Console, type_: str, since: int = 0) -> list[dict]:
    """The JSON envelopes of one type the page's socket received."""
    found = [json.loads(r["text"]) for r in console.records("message", since)]
    return [m for m in found if m["type"] == type_]


def online(page: Page) -> list[str]:
    """The users the page's "online" list shows, in its order."""
    return page.locator("[data-online] li").evaluate_all(
        "(items) => items.map(i => i.dataset.user)"
    )


def expect_online(page: Page, users: list[str]) -> None:
    """Wait until the page's "online" list shows exactly these users, in this order."""
    locator = page.locator("[data-online] li")
    expect(locator).to_have_count(len(users))
    assert online(page) == users
