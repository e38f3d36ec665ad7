"""Two daphne processes on one redis-server and one database, as a deployment runs them."""

from playwright.sync_api import Page

from e2e.console import Console
from tools.servers import ServerProcess


def test_each_process_serves_the_console_and_keeps_its_own_journal(
    page: Page, daphne_pair: list[ServerProcess]
) -> None:
    first, second = daphne_pair
    assert first.port != second.port
    journals = []
    for server in daphne_pair:
        console = Console.open(page, server.http_url + "/async/")
        console.connect("/ws/ac/", journal=True)
        assert console.echo(f"via {server.port}")["text"] == f"via {server.port}"
        assert console.ws("url").startswith(server.ws_url)
        journals.append(console.run("(c) => c.journalId"))
        since = console.mark()
        console.close()
        console.wait_for("close", since)
        console.journal_until("websocket.disconnect")

    # The journal lives in the memory of the process that served the socket: asking the
    # other process finds nothing (apps/core/journal.py says so).
    for mine, other, journal_id in ((first, second, journals[0]), (second, first, journals[1])):
        own = page.request.get(f"{mine.http_url}/journal/{journal_id}/").json()["events"]
        assert [e["type"] for e in own] == [
            "websocket.connect",
            "websocket.accept",
            "websocket.receive",
            "websocket.send",
            "websocket.disconnect",
        ]
        assert page.request.get(f"{other.http_url}/journal/{journal_id}/").json() == {"events": []}
