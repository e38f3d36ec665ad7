"""
A page of another origin, in the visitor's Chromium with the visitor's session cookie, cannot
use the showcase's sockets or read its streams (issue 21; apps/core/origins.py).

The page (e2e/foreign/) is served from another port of 127.0.0.1: the same site for cookies, so
the browser sends alice's cookie with every handshake it starts, but another origin. Before the
fix it read presence and chat, chatted as alice, and saved a note as her. The same page runs
against the cluster through nginx in e2e/cluster/test_security.py.
"""

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from e2e.cluster.helpers import log_in_over_http

pytestmark = pytest.mark.django_db(transaction=True)


def foreign_outcomes(page: Page, foreign_site: str, target: str) -> dict[str, Any]:
    """Open the foreign page aimed at `target`; return what each attempt got."""
    page.goto(f"{foreign_site}/index.html?target={target}")
    page.wait_for_function("() => window.done === true", timeout=15_000)
    return page.evaluate("() => window.outcomes")


def assert_nothing_reached(outcomes: dict[str, Any]) -> None:
    """Every socket refused before it opened, no stream event, nothing readable."""
    sockets = {k: v for k, v in outcomes.items() if k.startswith("socket ")}
    assert len(sockets) == 9
    for name, seen in sockets.items():
        # A handshake refused with HTTP 403 is a close 1006 to the page, never an open.
        assert (seen["opened"], seen["messages"], seen["code"]) == (False, [], 1006), name
    streams = {k: v for k, v in outcomes.items() if k.startswith("stream ")}
    for name, seen in streams.items():
        assert (seen["opened"], seen["events"], seen["errored"]) == (False, [], True), name
    # No CORS header: the browser does not let the page read the journal feed at all.
    assert "error" in outcomes["fetch /journal/"]


def test_a_page_on_another_port_cannot_use_the_visitors_sockets_or_streams(
    new_context: Callable[..., BrowserContext], base_url: str, foreign_site: str, users: None
) -> None:
    context = new_context()
    log_in_over_http(context, "alice")
    outcomes = foreign_outcomes(context.new_page(), foreign_site, base_url)
    assert_nothing_reached(outcomes)
    # And alice's own page still works with the same cookie: the origin, not the cookie, counted.
    page = context.new_page()
    page.goto(f"{base_url}/auth/")
    page.wait_for_function(
        "() => (window.socketConsoles || [])[0]?.records.some("
        "(r) => r.kind === 'message' && JSON.parse(r.text).type === 'hello')"
    )
