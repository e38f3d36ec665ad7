"""
The /http/ page in Chromium against real daphne: the browser's own EventSource, reading
Server-Sent Events from `AsyncHttpConsumer`s. Assertions read what the page's JavaScript
recorded (`window.sseConsole.records`). The session daphne ticks ten times a second and tells
the browser to reconnect after 200 ms (e2e/conftest.py).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.sse import connect, records, wait_for
from tools.servers import ServerProcess


@pytest.fixture(autouse=True)
def no_traceback(daphne_server: ServerProcess) -> Iterator[None]:
    """Streams that end, clients that leave: none may leave a traceback in the server's log."""
    start = len(daphne_server.log())
    yield
    assert "Traceback" not in daphne_server.log()[start:]


def test_page_loads_without_errors_and_shows_the_real_consumers(page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/http/")
    expect(page.get_by_role("heading", level=1)).to_have_text("HTTP consumers: Server-Sent Events")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="HTTP", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.get_by_label("Source of TicksConsumer")).to_contain_text("class TicksConsumer(")
    expect(page.get_by_label("Source of LobbyStreamConsumer")).to_contain_text("lobby_chat")
    expect(page.locator("[data-stream-state]")).to_have_text("no stream")
    assert errors == []


def test_ticks_through_both_handler_styles_and_named_events(page: Page) -> None:
    connect(page, "/sse/ticks/", with_credentials=True)
    ticks = wait_for(page, "message", 3)
    first = records(page)[0]
    assert first["kind"] == "new"
    assert first["readyState"] == 0  # CONNECTING, straight after the constructor
    assert first["withCredentials"] is True
    opened = wait_for(page, "open")[0]
    assert opened["via"] == ["onopen", "addEventListener"]
    assert opened["readyState"] == 1
    # Default events reach the property and the listener; named ones only the listener.
    assert [t["id"] for t in ticks[:3]] == ["1", "2", "3"]
    assert [t["data"]["n"] for t in ticks[:3]] == [1, 2, 3]
    assert all(t["via"] == ["onmessage", "addEventListener"] for t in ticks)
    assert all(t["readyState"] == 1 for t in ticks)
    hello = wait_for(page, "hello")[0]
    assert hello["via"] == ["addEventListener"]
    assert hello["data"]["first_id"] == 1
    expect(page.locator("[data-stream-state]")).to_have_text("1 OPEN")

    page.get_by_role("button", name="close()").click()
    closed = wait_for(page, "close")[0]
    assert closed["readyState"] == 2
    assert page.evaluate("() => window.sseConsole.es.readyState") == 2
    expect(page.locator("[data-stream-state]")).to_have_text("2 CLOSED")


def test_browser_reconnects_by_itself_with_no_gap_and_no_duplicate(page: Page) -> None:
    # The server ends each response after 3 ticks; the browser reconnects after `retry:`
    # with Last-Event-ID, and the stream goes on at the next id.
    connect(page, "/sse/ticks/", per_stream=3)
    ticks = wait_for(page, "message", 9, timeout=10_000)
    ids = [int(t["id"]) for t in ticks]
    assert ids == list(range(1, len(ids) + 1))
    hellos = wait_for(page, "hello", 3)
    assert [h["data"]["resumed_from"] for h in hellos[:3]] == [None, 3, 6]
    byes = wait_for(page, "bye", 2)
    assert [b["data"]["last_id"] for b in byes[:2]] == [3, 6]
    # Each end of a response: `error` with readyState 0 (reconnecting), then `open` again.
    errors = wait_for(page, "error", 2)
    assert all(e["readyState"] == 0 for e in errors)
    assert all(e["via"] == ["onerror", "addEventListener"] for e in errors)
    assert len(wait_for(page, "open", 3)) >= 3


def test_anonymous_lobby_stream_gets_403_and_the_browser_gives_up(page: Page) -> None:
    connect(page, "/sse/lobby/")
    error = wait_for(page, "error")[0]
    assert error["readyState"] == 2  # not 200: no reconnect, CLOSED for good
    expect(page.locator("[data-stream-state]")).to_have_text("2 CLOSED")
    assert [r["kind"] for r in records(page)] == ["new", "error"]


SAID_OVER_SSE = '(r) => r.kind === "chat" && r.data.text === "hello over SSE"'


def said_over_sse(record: dict[str, Any]) -> bool:
    """The chat event this test's POST sent."""
    return record["data"]["text"] == "hello over SSE"


def test_lobby_on_sse_hears_a_csrf_protected_post(page: Page, django_user_model: Any) -> None:
    django_user_model.objects.create_user("alice", password="a long demo passphrase")
    page.goto("/accounts/login/?next=/http/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("a long demo passphrase")
    page.get_by_role("button", name="Log in").click()
    connect(page, "/sse/lobby/")
    assert wait_for(page, "hello")[0]["data"]["user"] == "alice"
    # Chat goes up as a CSRF-protected POST and comes back down the stream, as a named event
    # (after the lobby's recent messages, which a fresh stream gets first: earlier tests').
    page.get_by_label("Chat to the lobby").fill("hello over SSE")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(f"() => window.sseConsole.records.some({SAID_OVER_SSE})")
    (chat,) = [r for r in records(page) if r["kind"] == "chat" and said_over_sse(r)]
    assert chat["data"]["user"] == "alice"
    assert chat["via"] == ["addEventListener"]
    assert int(chat["id"]) == chat["data"]["id"]
    assert wait_for(page, "post")[0]["data"]["status"] == 201
    # A POST without the CSRF token is refused.
    refused = page.request.post("/http/lobby/say/", form={"text": "no token"})
    assert refused.status == 403
    chats = [r["data"]["text"] for r in records(page) if r["kind"] == "chat"]
    assert chats.count("hello over SSE") == 1
    assert "no token" not in chats
