"""
Every endpoint of both echo apps, driven from its own page: the sync consumers from /sync/,
the async ones from /async/, through the same console. The echo and envelope checks live in
e2e/checks.py: cluster/test_through_nginx.py runs them through nginx too.
"""

import pytest
from playwright.sync_api import Page, expect

from e2e import checks
from e2e.checks import JSON, PURE_ECHO
from e2e.console import Console


@pytest.mark.parametrize(("page_path", "endpoint"), PURE_ECHO)
def test_pure_echo_round_trips_with_each_binary_type(
    page: Page, page_path: str, endpoint: str
) -> None:
    checks.pure_echo_round_trips_with_each_binary_type(page, page_path, endpoint)


@pytest.mark.parametrize(("page_path", "endpoint"), JSON)
def test_json_envelopes_and_errors(page: Page, page_path: str, endpoint: str) -> None:
    checks.json_envelopes_and_errors(page, page_path, endpoint)


@pytest.mark.parametrize(("page_path", "endpoint"), [PURE_ECHO[0], PURE_ECHO[2]])
def test_journal_shows_the_disconnect_code_the_browser_sent(
    page: Page, page_path: str, endpoint: str
) -> None:
    console = Console.open(page, page_path)
    console.connect(endpoint, journal=True)
    console.echo("seen by both")
    since = console.mark()
    console.close(4123, "journal")
    console.wait_for("close", since)
    events = console.journal_until("websocket.disconnect")
    assert [(e["direction"], e["type"]) for e in events] == [
        ("received", "websocket.connect"),
        ("sent", "websocket.accept"),
        ("received", "websocket.receive"),
        ("sent", "websocket.send"),
        ("received", "websocket.disconnect"),
    ]
    assert events[1]["subprotocol"] == "showcase.v1"
    assert events[2]["text"] == events[3]["text"] == "seen by both"
    assert events[-1]["code"] == 4123
    # The panel shows the same events to a person, and the console's `journal` holds them.
    panel = console.root.get_by_role("list", name="What the consumer saw")
    expect(panel.locator("li")).to_have_count(5)
    expect(panel.locator("li").last).to_contain_text("websocket.disconnect code=4123")
    assert console.run("(c) => c.journal") == events
