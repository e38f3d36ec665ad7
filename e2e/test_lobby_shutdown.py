"""
SIGTERM to the server under a lobby page, on daphne and on uvicorn: what the browser sees, how
long the shutdown takes, and that the page comes back by itself to the restarted process while
the other process's user sees the first one leave at once (not after the presence TTL).

Two servers of this test's own on one redis-server: alice on the one that stops, bob on a daphne
that stays. The figures are printed (`pytest -s`); docs/reliability.md quotes them.
"""

import json
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from e2e import artifacts
from e2e.auth import expect_online, log_in, online
from tools.servers import ServerProcess, free_port, start_uvicorn

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds an entry of a silent socket stays online: short, so that the rarer path below (the
# entry expires instead of being removed) stays quick; "at once" is well under half of it.
PRESENCE_TTL = 6


@pytest.fixture
def lobby_env(empty_redis_db: Callable[[int], str]) -> dict[str, str]:
    """Database 7 of the session's redis-server, emptied, and a short presence TTL."""
    return {"REDIS_URL": empty_redis_db(7), "PRESENCE_TTL": str(PRESENCE_TTL)}


@pytest.fixture
def start_uvicorn_server(daphne_env: dict[str, str]) -> Iterator[Callable[..., ServerProcess]]:
    """Like `start_server`, for uvicorn: started with this test's env, stopped afterwards."""
    started: list[ServerProcess] = []

    def start(port: int, env: dict[str, str]) -> ServerProcess:
        server = artifacts.register(start_uvicorn({**daphne_env, **env}, port=port))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        artifacts.unregister(server)


def chat_texts(page: Page) -> list[str]:
    return page.locator("[data-chat-log] li[data-id]").evaluate_all(
        "(items) => items.map((li) => li.lastChild.textContent.trim())"
    )


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_sigterm_closes_lobby_sockets_so_pages_come_back_and_presence_drops_them(
    kind: str,
    new_context: Callable[..., BrowserContext],
    start_server: Callable[..., ServerProcess],
    start_uvicorn_server: Callable[..., ServerProcess],
    lobby_env: dict[str, str],
    users: None,
) -> None:
    def start_stopping_one(port: int, name: str) -> ServerProcess:
        if kind == "uvicorn":
            return start_uvicorn_server(port, lobby_env)
        return start_server(port=port, name=name, env=lobby_env)

    port = free_port()
    with ThreadPoolExecutor(2) as pool:  # the two starts overlap
        stopping_started = pool.submit(start_stopping_one, port, "sigterm-daphne")
        staying = start_server(name="sigterm-staying", env=lobby_env)
        stopping = stopping_started.result()
    alice_page = new_context().new_page()
    bob_page = new_context().new_page()
    alice = log_in(alice_page, "alice", stopping.http_url)
    bob = log_in(bob_page, "bob", staying.http_url)
    alice.run("(c) => { c.backoff = { baseMs: 200, capMs: 400 }; }")
    expect_online(bob_page, ["alice", "bob"])
    bob_page.get_by_role("textbox", name="Message").fill("before")
    bob_page.get_by_role("button", name="Send", exact=True).click()
    expect(alice_page.locator("[data-chat-log] li[data-id]")).to_have_count(1)

    since, bob_since = alice.mark(), bob.mark()
    signalled = time.monotonic()
    stopping.process.send_signal(signal.SIGTERM)
    closed = alice.wait_for("close", since, timeout=15_000)[0]
    seen_closed = time.monotonic() - signalled
    # The user on the stopping process leaves the other page's list: at once when the
    # consumer closed with 4503 (it left the lobby as it went), or, when daphne's shutdown
    # dropped the connection first, at the latest when the entry expires (PRESENCE_TTL, then
    # the staying process's next heartbeat, every third of it).
    expect(bob_page.locator("[data-online] li")).to_have_count(
        1, timeout=(PRESENCE_TTL + PRESENCE_TTL / 3 + 3) * 1000
    )
    assert online(bob_page) == ["bob"]
    gone = time.monotonic() - signalled
    stopping.process.wait(15)
    shutdown = time.monotonic() - signalled
    print(
        f"\n{kind} SIGTERM: browser saw close {closed['code']} wasClean {closed['wasClean']}"
        f" after {seen_closed:.2f} s; the other process's page showed alice gone after"
        f" {gone:.2f} s; the process exited after {shutdown:.2f} s"
    )
    # daphne: the application closes with 4503 (it learns of the shutdown when daphne cancels
    # it); uvicorn closes every socket with 1012 itself before the application hears of it.
    if kind == "uvicorn":
        # wasClean varies: uvicorn closes the TCP connection right after its close frame,
        # without waiting for the browser's reply.
        assert closed["code"] == 1012
        assert gone < PRESENCE_TTL / 2  # the consumer heard of it and left at once
    elif closed["code"] == 1006:
        # Once in a while daphne's shutdown drops the connection before it cancels the
        # consumer (docs/reliability.md, "Shutting down"): no 4503 can go out, and the presence
        # entry may outlive the process until it expires (asserted above).
        pass
    else:
        assert closed["code"] == 4503
        assert gone < PRESENCE_TTL / 2  # at once, not by expiry
    assert alice.records("reconnecting", since), "the page did not try to come back"
    presence = [
        json.loads(r["text"])["users"]
        for r in bob.records("message", bob_since)
        if json.loads(r["text"])["type"] == "presence"
    ]
    assert ["bob"] in presence

    bob_page.get_by_role("textbox", name="Message").fill("while alice was away")
    bob_page.get_by_role("button", name="Send", exact=True).click()
    stopping_log = stopping.log()  # before the restarted process writes to the same file
    start_stopping_one(port, "sigterm-daphne-restarted")
    alice.wait_for("reconnected", since, timeout=15_000)
    expect_online(bob_page, ["alice", "bob"])
    expect(alice_page.locator("[data-chat-log] li[data-id]")).to_have_count(2)
    assert chat_texts(alice_page) == ["before", "while alice was away"]
    assert "Traceback" not in stopping_log, stopping_log
