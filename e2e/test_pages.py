"""
Smoke tests: each page loads without script errors, shows its code and labels its controls.
The checks live in e2e/checks.py: cluster/test_through_nginx.py runs them through nginx too.
"""

import pytest
from playwright.sync_api import Page

from e2e import checks
from e2e.checks import STYLE_PAGES


def test_home_lists_every_demo_and_shows_the_asgi_wiring(page: Page) -> None:
    checks.home_lists_every_demo_and_shows_the_asgi_wiring(page)


@pytest.mark.parametrize("path", STYLE_PAGES)
def test_style_page_shows_its_consumers_and_labelled_controls(page: Page, path: str) -> None:
    checks.style_page_shows_its_consumers_and_labelled_controls(page, path)
