"""
A page of another origin, in the visitor's Chromium with the visitor's session cookie, cannot
use the showcase's sockets or read its streams (issue 21; apps/core/origins.py).

The page (e2e/foreign_site/) is served from another port of 127.0.0.1: the same site for cookies, so
the browser sends alice's cookie with every handshake it starts, but another origin. Before the
fix it read presence and chat, chatted as alice, and saved a note as her. The same page runs
against the cluster through nginx in e2e/cluster/test_security.py.
"""

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext

from e2e.cluster.helpers import log_in_over_http
from e2e.foreign import assert_nothing_reached, foreign_outcomes

pytestmark = pytest.mark.django_db(transaction=True)


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
