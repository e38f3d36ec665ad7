"""
Smoke tests: each page loads without script errors, shows its code and labels its controls.
The checks live in e2e/checks.py: cluster/test_through_nginx.py runs them through nginx too.
"""

import pytest
from playwright.sync_api import Page

from e2e import checks
from e2e.checks import STYLE_PAGES
from e2e.console import Console


def test_home_lists_every_demo_and_shows_the_asgi_wiring(page: Page) -> None:
    checks.home_lists_every_demo_and_shows_the_asgi_wiring(page)


@pytest.mark.parametrize("path", STYLE_PAGES)
def test_style_page_shows_its_consumers_and_labelled_controls(page: Page, path: str) -> None:
    checks.style_page_shows_its_consumers_and_labelled_controls(page, path)


# The changes to the page's DOM during one second: ten of the status lines' refreshes.
CHANGES_JS = """async () => {
    let changes = 0;
    const observer = new MutationObserver((found) => { changes += found.length; });
    const everything = { subtree: true, childList: true, characterData: true, attributes: true };
    observer.observe(document.body, everything);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    observer.disconnect();
    return changes;
}"""


@pytest.mark.parametrize("path", ["/sync/", "/async/", "/http/"])
def test_an_idle_page_changes_nothing_on_screen(page: Page, path: str) -> None:
    # The status lines (readyState, bufferedAmount) refresh ten times a second. Rewritten with
    # the same text each time, they cost every open page a style pass, a layout and a paint:
    # six idle demo pages took 58% of a core in Chromium, 8% once only changes were written.
    if path == "/http/":
        page.goto(path)
        page.wait_for_function("() => window.sseConsole !== undefined")
    else:
        echo = "/ws/sc/generic/" if path == "/sync/" else "/ws/ac/generic/"
        Console.open(page, path).connect(echo)
    assert page.evaluate(CHANGES_JS) == 0
