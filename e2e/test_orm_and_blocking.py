"""
The side-by-side panes of /sync/ and /async/: two sockets of one daphne process, one blocking,
the other pinging its echo, and notes that one style saves and the other reads.
"""

import json
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page

from e2e.console import Console
from tools.servers import ServerProcess

BLOCK_SECONDS = 1.0

# In the page: socket B pings its echo every 50 ms (under the JSON rate limit) while socket A
# blocks; returns A's answer and B's round trips as [sent, received, sinceSendMs] (Date.now()).
PING_WHILE_BLOCKING = """async (block) => {
    const [a, b] = [window.socketConsoles[1], window.socketConsoles[2]];
    const next = (sc) => new Promise((resolve) => {
        sc.addEventListener("message", (e) => resolve(e.detail), { once: true });
    });
    const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const trips = [];
    let blocking = true;
    const ping = async () => {
        while (blocking || trips.length < 3) {
            const sent = Date.now();
            const answer = next(b);
            b.sendJSON({ type: "echo", data: trips.length });
            const record = await answer;
            trips.push([sent, Date.now(), record.sinceSendMs]);
            await pause(Math.max(0, 50 - (Date.now() - sent)));
        }
    };
    const pinging = ping();
    while (trips.length < 3) await pause(10);
    const reply = next(a);
    a.sendJSON(block);
    const answer = JSON.parse((await reply).text);
    blocking = false;
    await pinging;
    return { answer, trips };
}"""


def panes(page: Page, path: str) -> tuple[Console, Console]:
    """Open the page and wait for both side-by-side panes' sockets (they connect by themselves)."""
    Console.open(page, path)
    a, b = Console(page, 1), Console(page, 2)
    for pane in (a, b):
        pane.wait_for("open")
    return a, b


def no_new_traceback(server: ServerProcess, since: int) -> None:
    """The server logged no traceback during the test."""
    assert "Traceback" not in server.log()[since:]


@pytest.mark.parametrize(
    ("path", "block", "stalls"),
    [
        ("/sync/", {"type": "block", "seconds": BLOCK_SECONDS}, True),
        ("/async/", {"type": "block", "seconds": BLOCK_SECONDS}, False),
        ("/async/", {"type": "block", "seconds": BLOCK_SECONDS, "on_loop": True}, True),
    ],
    ids=["sync-time.sleep", "async-asyncio.sleep", "async-time.sleep-on-the-loop"],
)
def test_block_one_pane_and_watch_the_other_pane_echo(
    page: Page, daphne_server: ServerProcess, path: str, block: dict[str, Any], stalls: bool
) -> None:
    log_size = len(daphne_server.log())
    panes(page, path)
    result = page.evaluate(PING_WHILE_BLOCKING, block)
    answer, trips = result["answer"], result["trips"]
    assert answer["type"] == "block", answer
    assert answer["waited"] >= BLOCK_SECONDS
    started, ended = 1000 * answer["started"], 1000 * answer["ended"]
    # Round trips that went and came back while A slept (1 ms of clock rounding either side).
    inside = [t for t in trips if started + 1 < t[0] and t[1] < ended - 1]
    # B's replies that reached the page while A slept. B pings one at a time: if A's sleep
    # holds the event loop, only the reply to a ping sent before it can arrive (at most one).
    # A free loop answers on and on: every 50 ms on an idle machine, and still more than once
    # on a busy one, where single echoes took up to 0.9 s (a count of round trips wholly
    # inside the second, 5 here, failed there).
    received = [t for t in trips if started + 1 < t[1] < ended - 1]
    if stalls:
        assert inside == [] and len(received) <= 1, trips
        # The echo in flight during the sleep waited most of it, as its log line says.
        waited = max(t[2] for t in trips)
        assert waited >= 0.5 * 1000 * BLOCK_SECONDS, trips
    else:
        assert len(received) >= 2, trips
    no_new_traceback(daphne_server, log_size)


def test_a_note_saved_on_sync_shows_on_async(page: Page) -> None:
    text = f"from /sync/ {uuid.uuid4().hex[:8]}"
    a, _ = panes(page, "/sync/")
    a.root.get_by_role("textbox", name="Socket A Note").fill(text)
    since = a.mark()
    a.root.get_by_role("button", name="note, Socket A", exact=True).click()
    saved = json.loads(a.wait_for("message", since)[0]["text"])
    assert (saved["type"], saved["text"], saved["via"]) == ("note", text, "orm")

    _, b = panes(page, "/async/")
    for button, via in (
        ("notes (async ORM)", "async_orm"),
        ("notes (database_sync_to_async)", "database_sync_to_async"),
    ):
        since = b.mark()
        b.root.get_by_role("button", name=f"{button}, Socket B", exact=True).click()
        listed = json.loads(b.wait_for("message", since)[0]["text"])
        assert (listed["type"], listed["via"]) == ("notes", via)
        assert listed["notes"][0] == {k: saved[k] for k in ("id", "text", "author", "created")}


def test_notes_unsafe_answers_with_the_lesson(page: Page, daphne_server: ServerProcess) -> None:
    log_size = len(daphne_server.log())
    a, _ = panes(page, "/async/")
    since = a.mark()
    a.root.get_by_role("button", name="notes.unsafe, Socket A", exact=True).click()
    error = json.loads(a.wait_for("message", since)[0]["text"])
    assert (error["type"], error["code"]) == ("error", "synchronous_only_operation")
    assert "You cannot call this from an async context" in error["message"]
    assert a.ws("readyState") == 1
    no_new_traceback(daphne_server, log_size)
