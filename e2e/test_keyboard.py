"""
The main flows with the keyboard alone (Tab, Shift+Tab, Enter, Space and typing; no mouse,
no element.click()): connect, send, close and the browser-rule buttons on /sync/; log in,
chat and log out on /auth/; start a job on /worker/. Every stop of the focus must show a
focus indicator it does not show unfocused, and each action is proved by the page's own
records (`window.socketConsoles`), not by what it renders.
"""

import json

import pytest
from playwright.sync_api import Page, expect

from e2e.a11y import remember_unfocused_styles, tab_to
from e2e.auth import IS_HELLO, PASSWORD, open_lobby
from e2e.console import Console

IS_CHAT = "r.dataType === 'string' && JSON.parse(r.text).type === 'chat'"


def test_connect_send_close_and_the_browser_rules(page: Page) -> None:
    console = Console.open(page, "/sync/")
    remember_unfocused_styles(page)
    root = console.root
    button = lambda name: root.get_by_role("button", name=name, exact=True)  # noqa: E731

    tab_to(page, button("Connect"))
    since = console.mark()
    page.keyboard.press("Enter")
    assert console.wait_for("open", since)[0]["protocol"] == "showcase.v1"

    tab_to(page, button("send(text)"))
    since = console.mark()
    page.keyboard.press("Space")
    assert console.wait_for("message", since)[0]["text"] == '{"type": "echo", "data": "hello"}'

    tab_to(page, button("close(code, reason)"))
    since = console.mark()
    page.keyboard.press("Enter")
    called = console.wait_for("call", since)[0]
    assert called["message"] == 'close(1000, "done")'  # the form's code and reason
    closed = console.wait_for("close", since)[0]
    assert (closed["code"], closed["wasClean"]) == (1000, True)

    since = console.mark()
    for name, key in (
        ("send() while CONNECTING", "Space"),
        ("send() after close", "Enter"),
        ("close(1001)", "Space"),
        ("close with a 124-byte reason", "Enter"),
    ):
        tab_to(page, button(name))
        page.keyboard.press(key)
    quirks = console.wait_for("quirk", since, count=4)
    assert {q["name"]: q["error"] for q in quirks} == {
        "send-while-connecting": "InvalidStateError",
        "send-after-close": None,
        "close-invalid-code": "InvalidAccessError",
        "close-long-reason": "SyntaxError",
    }

    # Back up the page to Connect, and connect again.
    tab_to(page, button("Connect"), backwards=True)
    since = console.mark()
    page.keyboard.press("Space")
    console.wait_for("open", since)


@pytest.mark.django_db(transaction=True)
def test_log_in_chat_and_log_out(page: Page, users: None) -> None:
    page.goto("/accounts/login/?next=/auth/")
    remember_unfocused_styles(page)
    tab_to(page, page.get_by_label("Username"))
    page.keyboard.type("alice")
    tab_to(page, page.get_by_label("Password"))
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/auth/")
    console = open_lobby(page)
    hello = json.loads(console.wait_for("message", where=IS_HELLO)[0]["text"])
    assert hello["user"] == "alice"

    remember_unfocused_styles(page)
    since = console.mark()
    tab_to(page, page.get_by_role("textbox", name="Message"))
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    chat = json.loads(console.wait_for("message", since, where=IS_CHAT)[0]["text"])
    assert (chat["user"], chat["text"]) == ("alice", "typed, not clicked")

    tab_to(page, page.get_by_role("button", name="Log out"), backwards=True)
    page.keyboard.press("Enter")
    expect(page.locator("[data-lobby-anonymous]")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("signed in")


def test_start_a_job(page: Page) -> None:
    console = Console.open(page, "/worker/")
    console.wait_for("message", where=IS_HELLO)
    remember_unfocused_styles(page)
    tab_to(page, page.get_by_label("count the primes up to"))
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("30000")
    tab_to(page, page.get_by_role("button", name="Start job"))
    since = console.mark()
    page.keyboard.press("Space")
    done = console.wait_for("message", since, where="JSON.parse(r.text).type === 'done'")[0]
    assert json.loads(done["text"])["n"] == 30000
