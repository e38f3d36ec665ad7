"""Two daphne processes on one redis-server and one database, as a deployment runs them."""

from playwright.sync_api import Page

from e2e.console import Console
from tools.servers import ServerProcess


def test_each_process_serves_the_console_and_either_answers_for_the_journal(
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

    # With REDIS_URL the journal lives in Redis (apps/core/journal.py): either process answers
    # for a socket the other one served, as behind a load balancer it must.
    for journal_id in journals:
        answers = [
            page.request.get(f"{server.http_url}/journal/{journal_id}/").json()["events"]
            for server in daphne_pair
        ]
        assert answers[0] == answers[1]
        assert [e["type"] for e in answers[0]] == [
            "websocket.connect",
            "websocket.accept",
            "websocket.receive",
            "websocket.send",
            "websocket.disconnect",
        ]
