"""
The showcase through nginx, on two daphne processes: checks the single-process browser tests
also run (e2e/checks.py: the same assertions, against the cluster), then what only a cluster
shows.
"""

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from websockets.sync.client import connect as ws_connect

from apps.core.tests.databases import on, postgres_alias
from e2e import checks
from e2e.checks import JSON, PURE_ECHO, STYLE_PAGES
from e2e.cluster.conftest import access_log, logged_request
from e2e.cluster.helpers import connect_on, lobby_on, log_in_over_http
from e2e.console import Console
from tools.servers import Cluster

# The cluster runs on PostgreSQL (conftest.py): users and sessions live there.
pytestmark = on(postgres_alias(), transaction=True)


# The single-process checks, through nginx (their docstrings in e2e/checks.py say what).
def test_log_in_through_the_page_then_hello_and_presence(page: Page, users: None) -> None:
    checks.log_in_through_the_page_then_hello_and_presence(page)


@pytest.mark.parametrize(("page_path", "endpoint"), PURE_ECHO)
def test_pure_echo_round_trips_with_each_binary_type(
    page: Page, page_path: str, endpoint: str
) -> None:
    checks.pure_echo_round_trips_with_each_binary_type(page, page_path, endpoint)


@pytest.mark.parametrize(("page_path", "endpoint"), JSON)
def test_json_envelopes_and_errors(page: Page, page_path: str, endpoint: str) -> None:
    checks.json_envelopes_and_errors(page, page_path, endpoint)


def test_home_lists_every_demo_and_shows_the_asgi_wiring(page: Page) -> None:
    checks.home_lists_every_demo_and_shows_the_asgi_wiring(page)


@pytest.mark.parametrize("path", STYLE_PAGES)
def test_style_page_shows_its_consumers_and_labelled_controls(page: Page, path: str) -> None:
    checks.style_page_shows_its_consumers_and_labelled_controls(page, path)


def test_pages_come_from_both_processes_and_static_files_from_nginx(
    page: Page, cluster: Cluster
) -> None:
    before = len(access_log(cluster))
    for _ in range(2):
        Console.open(page, "/sync/")
    script = page.locator("script[src*='console']").get_attribute("src")
    # ManifestStaticFilesStorage: the page links the file by a hash of its content.
    assert re.fullmatch(r"/static/js/console\.[0-9a-f]{12}\.js", script)
    response = page.request.get(script)
    assert response.ok
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["server"].startswith("nginx")
    requests = access_log(cluster)[before:]
    pages = {e["upstream"] for e in requests if e["path"] == "/sync/"}
    assert pages == {f"unix:{cluster.socket_path(name)}" for name in cluster.daphnes}
    # Static files never reach a daphne.
    assert {e["upstream"] for e in requests if e["path"].startswith("/static/")} == {"-"}


def test_scope_client_is_the_browsers_address_not_a_claimed_one(
    page: Page, cluster: Cluster
) -> None:
    console = Console.open(page, "/async/")
    logged = len(access_log(cluster))
    where = connect_on(console, "/ws/ac/json/", None)
    assert where["database"] == "postgresql"  # the cluster runs on PostgreSQL, as deployed
    since = console.mark()
    console.close()
    console.wait_for("close", since)
    # daphne --proxy-headers: scope["client"] is the browser's address and port as nginx saw
    # them (without the headers, on a unix socket, it would be None).
    host, port = where["client"]
    handshake = logged_request(cluster, port, since=logged)
    assert (handshake["addr"], handshake["path"]) == (host, "/ws/ac/json/")
    assert host == "127.0.0.1"
    daphne = {cluster.pid(name): name for name in cluster.daphnes}[where["process"]]
    access = (cluster.run_dir / "logs" / f"{daphne.split(':')[1]}-access.log").read_text()
    assert f"{host}:{port} - - " in access  # daphne's access log names the browser too

    # A client that claims another address itself (Chromium sends no such header on a
    # handshake, so a plain client makes the claim): nginx replaces the header.
    logged = len(access_log(cluster))
    with ws_connect(
        cluster.ws_url + "/ws/ac/json/",
        origin=cluster.http_url,
        additional_headers={"X-Forwarded-For": "203.0.113.9"},
    ) as ws:
        ws.send(json.dumps({"type": "info"}))
        claimed = json.loads(ws.recv(timeout=5))
    host, port = claimed["client"]
    assert host == "127.0.0.1"
    # The claim reached nginx.
    assert logged_request(cluster, port, since=logged)["xff"] == "203.0.113.9"


def test_two_users_on_different_processes_chat_and_logout_reaches_every_process(
    new_context: Callable[..., BrowserContext],
    cluster: Cluster,
    users: None,
) -> None:
    first, second = (cluster.pid(name) for name in cluster.daphnes)
    alice_context = new_context()
    log_in_over_http(alice_context, "alice")
    alice_tab = alice_context.new_page()
    alice_tab.goto("/auth/")
    alice_first = lobby_on(alice_context.new_page(), first)
    alice_second = lobby_on(alice_context.new_page(), second)
    bob_context = new_context()
    log_in_over_http(bob_context, "bob")
    bob_page = bob_context.new_page()
    bob = lobby_on(bob_page, second)
    expect(alice_tab.locator("[data-online] li")).to_have_count(2)

    since = bob.mark()
    alice_first.page.get_by_role("textbox", name="Message").fill("from the first process")
    alice_first.page.get_by_role("button", name="Send", exact=True).click()
    said = bob.wait_for("message", since, where="JSON.parse(r.text).type === 'chat'")[0]
    assert json.loads(said["text"])["user"] == "alice"
    since = alice_first.mark()
    bob.send_json({"type": "chat", "text": "from the second"})
    said = alice_first.wait_for("message", since, where="JSON.parse(r.text).type === 'chat'")[0]
    assert json.loads(said["text"])["text"] == "from the second"

    # Logging out is one HTTP POST to one process: alice's sockets on both processes close.
    # The click starts a navigation: wait for the POST's answer and for the page it leads to
    # (the navigation's own wait, TIMEOUT_MS), not for `expect`'s shorter default, which a
    # starved browser outran at load 15 (issue 17). If the POST never gets an answer, this says so.
    marks = [alice_first.mark(), alice_second.mark()]
    with (
        alice_tab.expect_response(lambda r: r.url.endswith("/accounts/logout/")) as logout,
        alice_tab.expect_navigation(url=re.compile(r"/auth/$")),
    ):
        alice_tab.get_by_role("button", name="Log out").click()
    assert logout.value.status == 302
    expect(alice_tab.locator("[data-lobby-anonymous]")).to_be_visible()
    for tab, since in zip((alice_first, alice_second), marks, strict=True):
        assert tab.wait_for("close", since)[0]["code"] == 4401
    expect(bob_page.locator("[data-online] li")).to_have_count(1)
    assert bob.records("close") == []


def test_anonymous_lobby_sockets_through_nginx(page: Page) -> None:
    # On daphne alone the same close reaches Chromium unclean (e2e/test_auth.py): daphne resets
    # the TCP connection after the closing handshake. Here that reset hits nginx, which has
    # already passed the close on and ends the browser's connection properly.
    page.goto("/auth/")
    page.wait_for_function("() => (window.socketConsoles || []).length > 0")
    console = Console(page)
    since = console.mark()
    page.get_by_role("button", name="Connect to /ws/auth/", exact=True).click()
    close = console.wait_for("close", since)[0]
    assert (close["code"], close["reason"], close["wasClean"]) == (4401, "", True)
    assert console.records("reconnecting", since) == []
    events = console.journal_until("websocket.disconnect")
    sent = [(e["code"], e["reason"]) for e in events if e["type"] == "websocket.close"]
    assert sent == [(4401, "log in first: this socket has no user")]

    # The strict endpoint's refusal (HTTP 403 before accept) passes through nginx unchanged.
    since = console.mark()
    page.get_by_role("button", name="Connect to /ws/auth/strict/").click()
    close = console.wait_for("close", since)[0]
    kinds = [r["kind"] for r in console.records(since=since) if r["kind"] != "call"]
    assert kinds == ["connect", "error", "close"]
    assert (close["code"], close["wasClean"]) == (1006, False)


def test_journal_panel_collects_the_consumers_events_from_any_process(
    page: Page, cluster: Cluster
) -> None:
    console = Console.open(page, "/async/")
    where = connect_on(console, "/ws/ac/json/", None, journal=True)
    journal_id = console.run("(c) => c.journalId")
    console.send_json({"type": "echo", "data": "seen by the consumer"})
    since = console.mark()
    console.close(4321, "bye")
    console.wait_for("close", since)
    panel = console.root.get_by_role("list", name="What the consumer saw")
    expect(panel.locator("li").last).to_contain_text("websocket.disconnect code=4321")
    events = console.run("(c) => c.journal")
    assert ("sent", "websocket.send") in [(e["direction"], e["type"]) for e in events]
    # The feed answers the same from each process, not only from the one that served the
    # socket: ask until nginx's round robin has sent the question to both.
    names = {cluster.pid(name): name for name in cluster.daphnes}
    other = next(name for pid, name in names.items() if pid != where["process"])
    for _ in range(4):
        assert page.request.get(f"/journal/{journal_id}/").json()["events"] == events
    polls = [e for e in access_log(cluster) if e["path"] == f"/journal/{journal_id}/"]
    assert f"unix:{cluster.socket_path(other)}" in {e["upstream"] for e in polls}
