"""
The lobby resumes in the browser: two daphne processes of this test's own on one redis-server;
the process under alice is SIGKILLed mid-conversation while bob, on the other, keeps chatting;
it starts again on the same port, and alice's page reconnects by itself (?after=<last id>) and
shows every message once, in order.
"""

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from e2e.auth import log_in
from e2e.console import Console
from tools.servers import ServerProcess, free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lobby_env(empty_redis_db: Callable[[int], str]) -> dict[str, str]:
    """Database 6 of the session's redis-server, emptied: this test's history starts empty."""
    return {"REDIS_URL": empty_redis_db(6), "PRESENCE_TTL": "3"}


def shown(page: Page) -> list[tuple[int, str]]:
    """The chat log as the page shows it: (id, text) per line, top to bottom."""
    return page.locator("[data-chat-log] li[data-id]").evaluate_all(
        "(items) => items.map((li) => [Number(li.dataset.id), li.lastChild.textContent.trim()])"
    )


def say(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def test_a_page_whose_server_was_killed_resumes_every_message_once_in_order(
    new_context: Callable[..., BrowserContext],
    start_server: Callable[..., ServerProcess],
    lobby_env: dict[str, str],
    users: None,
) -> None:
    port = free_port()
    with ThreadPoolExecutor(2) as pool:  # two daphne starts overlap
        first, other = pool.map(
            lambda args: start_server(port=args[0], name=args[1], env=lobby_env),
            [(port, "resume-1"), (None, "resume-2")],
        )
    alice_page = new_context().new_page()
    bob_page = new_context().new_page()
    alice = log_in(alice_page, "alice", first.http_url)
    log_in(bob_page, "bob", other.http_url)
    alice.run("(c) => { c.backoff = { baseMs: 100, capMs: 400 }; }")

    texts = []
    for text in ("one", "two"):
        say(bob_page, text)
        texts.append(text)
    expect(alice_page.locator("[data-chat-log] li[data-id]")).to_have_count(2)
    seen = shown(alice_page)

    since = alice.mark()
    first.stop(sig=9)  # SIGKILL: no close frame, no goodbye
    assert alice.wait_for("close", since)[0]["code"] == 1006
    for text in ("three", "four", "five"):  # alice's page is away for these
        say(bob_page, text)
        texts.append(text)
    expect(bob_page.locator("[data-chat-log] li[data-id]")).to_have_count(5)

    again = start_server(port=port, name="resume-1-again", env=lobby_env)
    alice.wait_for("reconnected", since, timeout=15_000)
    reconnect = alice.records("connect", since)[-1]["url"]
    assert parse_qs(urlsplit(reconnect).query)["after"] == [str(seen[-1][0])]
    is_resume = "r.dataType === 'string' && JSON.parse(r.text).type === 'resume'"
    resume = json.loads(alice.wait_for("message", since, where=is_resume)[0]["text"])
    assert (resume["missed"], resume["complete"]) == (3, True)
    say(bob_page, "six")  # and live again
    texts.append("six")

    expect(alice_page.locator("[data-chat-log] li[data-id]")).to_have_count(6)
    lines = shown(alice_page)
    assert [text for _, text in lines] == texts
    ids = [i for i, _ in lines]
    assert ids == list(range(ids[0], ids[0] + 6))
    # The page showed each message once: no chat envelope was dropped for being a duplicate
    # because none arrived twice, and the log has exactly one line per id.
    chats = [
        json.loads(r["text"])["id"]
        for r in Console(alice_page).records("message")
        if json.loads(r["text"])["type"] == "chat"
    ]
    assert sorted(chats) == ids
    expect(alice_page.locator("[data-lobby-status]")).to_contain_text("connected as alice")
    for server in (first, other, again):
        assert "Traceback" not in server.log(), server.log()


def test_a_fresh_page_shows_the_most_recent_messages_once_then_live_ones(
    new_context: Callable[..., BrowserContext],
    start_server: Callable[..., ServerProcess],
    empty_redis_db: Callable[[int], str],
    users: None,
) -> None:
    server = start_server(name="recent", env={"REDIS_URL": empty_redis_db(7), "LOBBY_RECENT": "3"})
    bob_page = new_context().new_page()
    log_in(bob_page, "bob", server.http_url)
    said = [f"m{n}" for n in range(5)]
    for text in said:
        say(bob_page, text)
    expect(bob_page.locator("[data-chat-log] li[data-id]")).to_have_count(5)

    alice_page = new_context().new_page()
    alice = log_in(alice_page, "alice", server.http_url)  # a fresh page: no `after`
    expect(alice_page.locator("[data-chat-log] li[data-id]")).to_have_count(3)
    assert [text for _, text in shown(alice_page)] == said[2:]
    # The page says there is more than it shows.
    expect(alice_page.locator("[data-chat-log] li.chat-note")).to_contain_text(
        "the 3 most recent messages"
    )
    say(bob_page, "live")
    expect(alice_page.locator("[data-chat-log] li[data-id]")).to_have_count(4)
    lines = shown(alice_page)
    assert [text for _, text in lines] == [*said[2:], "live"]
    envelopes = [json.loads(r["text"]) for r in alice.records("message")]
    resumes = [e for e in envelopes if e["type"] == "resume"]
    assert resumes == [
        {"type": "resume", "after": None, "missed": 3, "complete": False, "oldest": lines[0][0] - 2}
    ]
    assert [e["id"] for e in envelopes if e["type"] == "chat"] == [i for i, _ in lines]
    assert "Traceback" not in server.log(), server.log()
