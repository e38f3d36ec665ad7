"""The pages every demo shares: what a visitor gets before any socket opens."""

import inspect
import re

import pytest
from django.test import Client

from apps.core import docs
from apps.core.tests.contract import communicator
from apps.echo_async import consumers as async_consumers
from apps.echo_async import routing as async_routing
from apps.echo_sync import consumers as sync_consumers
from apps.echo_sync import routing as sync_routing


def title(html: str) -> str:
    """The document title, which must be plain text."""
    match = re.search(r"<title>(.*?)</title>", html, re.S)
    assert match, "no <title>"
    assert "<" not in match.group(1), f"markup in the title: {match.group(1)[:80]!r}"
    return match.group(1).strip()


def test_home_lists_every_demo_and_the_concept_map(client: Client) -> None:
    html = client.get("/").content.decode()
    assert title(html) == "Every consumer style · Channels showcase"
    for href in ("/sync/", "/async/", "/auth/"):
        assert f'href="{href}"' in html
    assert html.count('id="map-heading"') == 1
    assert "ProtocolTypeRouter" in html  # config/asgi.py, shown highlighted


@pytest.mark.parametrize(
    ("path", "heading", "routing", "consumers"),
    [
        ("/sync/", "Sync consumers", sync_routing, sync_consumers),
        ("/async/", "Async consumers", async_routing, async_consumers),
    ],
)
def test_style_page_shows_the_routes_and_source_that_serve_it(
    client: Client, path: str, heading: str, routing, consumers
) -> None:
    html = client.get(path).content.decode()
    assert title(html) == f"{heading} · Channels showcase"
    options = re.findall(r'<option value="([^"]+)"', html)
    # The console, then the side-by-side panes A and B, each offering every route.
    assert options == ["/" + str(p.pattern) for p in routing.websocket_urlpatterns] * 3
    for pattern in routing.websocket_urlpatterns:
        consumer = pattern.callback.consumer_class
        assert f'id="consumer-{consumer.__name__}"' in html
        # A docstring line of the real class, as Pygments rendered it (quotes escaped).
        first_doc_line = inspect.getdoc(consumer).splitlines()[0]
        assert first_doc_line.replace('"', "&quot;").split("`")[0] in html
    assert consumers.__name__.replace(".", "/") + ".py" in html


@pytest.mark.parametrize(
    ("path", "endpoint", "handlers"),
    [
        ("/sync/", "/ws/sc/json/", ["save_note", "latest_notes", "block"]),
        ("/async/", "/ws/ac/json/", ["save_note", "latest_notes", "latest_notes_in_thread",
                                     "latest_notes_unsafe", "block"]),
    ],
)  # fmt: skip
def test_side_by_side_panes_use_the_json_endpoint_and_show_each_handler(
    client: Client, path: str, endpoint: str, handlers: list[str]
) -> None:
    html = client.get(path).content.decode()
    assert re.findall(r'<option value="([^"]+)"[^>]* selected', html) == [endpoint, endpoint]
    assert html.count("data-autoconnect") == 2
    assert re.findall(r'id="handler-([a-z_]+)"', html) == handlers
    for name in handlers:
        assert f'<span class="nf">{name}</span>' in html  # the real source, highlighted
    assert (
        "notes.unsafe" in html if "latest_notes_unsafe" in handlers else "notes.unsafe" not in html
    )


@pytest.mark.parametrize("path", ["/sync/", "/async/"])
def test_style_pages_point_to_the_database_connections_section(client: Client, path: str) -> None:
    html = client.get(path).content.decode()
    assert 'href="/docs/styles/#database-connections"' in html
    assert "database-connections" in docs.anchors(docs.page_path("styles").read_text())


def test_journal_feed_is_empty_for_an_unknown_id(client: Client) -> None:
    response = client.get("/journal/0123456789abcdef0123/")
    assert response.status_code == 200
    assert response.json() == {"events": []}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/", "/ws/sc/extra/", "/sync/"])
async def test_a_socket_to_an_unknown_path_is_refused_cleanly(path: str, caplog) -> None:
    caplog.set_level("INFO", logger="apps.core.consumers")
    comm = communicator(path)
    assert await comm.connect() == (False, 1000)  # a close before accept: HTTP 403 on daphne
    await comm.wait(timeout=1)  # the application ended without raising
    assert f"no WebSocket route for {path}" in caplog.text
