"""
The lobby on a socket and on Server-Sent Events side by side, in two browsers on one daphne:
bob chats through his lobby socket (/auth/), alice through the stream page's POST (/http/),
and each sees the other's message with the same lobby id.
"""

import json
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import BrowserContext, Page

from e2e.auth import PASSWORD, log_in
from e2e.sse import connect, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

IS_CHAT = "r.dataType === 'string' && JSON.parse(r.text).type === 'chat'"


def wait_for_chat(page: Page, text: str) -> dict:
    """The stream's `chat` event carrying this text, once it has arrived."""
    handle = page.wait_for_function(
        """(text) => window.sseConsole.records.find(
            (r) => r.kind === "chat" && r.data.text === text) || null""",
        arg=text,
    )
    return handle.json_value()


def test_chat_crosses_between_a_lobby_socket_and_a_lobby_stream(
    new_context: Callable[..., BrowserContext],
) -> None:
    for name in ("alice", "bob"):
        get_user_model().objects.create_user(name, password=PASSWORD)
    bob_page = new_context().new_page()
    bob = log_in(bob_page, "bob")  # the socket lobby on /auth/
    alice_page = new_context().new_page()
    log_in(alice_page, "alice")
    connect(alice_page, "/sse/lobby/")
    wait_for(alice_page, "hello")

    since = bob.mark()
    bob_page.get_by_role("textbox", name="Message").fill("from the socket")
    bob_page.get_by_role("button", name="Send", exact=True).click()
    # A stream opened without Last-Event-ID starts with the lobby's history: earlier tests'
    # chat may come first, so look for this message by its text.
    on_stream = wait_for_chat(alice_page, "from the socket")
    assert (on_stream["data"]["user"], on_stream["data"]["text"]) == ("bob", "from the socket")
    on_socket = json.loads(bob.wait_for("message", since, where=IS_CHAT)[0]["text"])
    assert on_socket["id"] == on_stream["data"]["id"] == int(on_stream["id"])

    since = bob.mark()
    alice_page.get_by_label("Chat to the lobby").fill("from the stream")
    alice_page.get_by_role("button", name="Send").click()
    heard = json.loads(bob.wait_for("message", since, where=IS_CHAT)[0]["text"])
    assert (heard["user"], heard["text"]) == ("alice", "from the stream")
    back = wait_for_chat(alice_page, "from the stream")
    assert back["data"]["id"] == heard["id"] > on_socket["id"]
