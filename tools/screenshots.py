"""
`make screenshots`: one picture per demo page, taken by the browser harness from a real
daphne, so the README's images show what the code does today.

A throwaway database and server (tools/servers.py), Chromium through Playwright, and on each
page the interaction that makes it say something: a socket echo, the lobby, a stream of
events, a job. Writes `docs/screenshots/<page>.png`.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tools.servers import BASE_DIR, running, server_env, start_daphne

SYSTEM_CHROMIUMS = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
VIEWPORT = {"width": 1280, "height": 1000}
IS_TEXT = "r.kind === 'message' && r.dataType === 'string'"


def _console_messages(page: Page, count: int) -> None:
    page.wait_for_function(
        f"(n) => window.socketConsoles[0].records.filter((r) => {IS_TEXT}).length >= n",
        arg=count,
    )


def echo(page: Page) -> None:
    """Connect the console to the page's JSON endpoint and send two commands."""
    # The main console; the side-by-side panes below it (sockets A and B) have their own.
    console = page.get_by_role("region", name="Socket console")
    console.locator("[data-endpoint]").select_option(index=2)
    console.get_by_role("button", name="Connect", exact=True).click()
    page.wait_for_function("() => window.socketConsoles[0].ws?.readyState === 1")
    console.get_by_role("button", name="echo", exact=True).click()
    console.get_by_role("button", name="info (which thread?)").click()
    _console_messages(page, 2)


def lobby(page: Page) -> None:
    """Log in as alice on the way to /auth/ and say something in the lobby."""
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("lobby-alice")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/auth/")
    page.wait_for_function("() => !document.querySelector('[data-chat-send]').disabled")
    page.get_by_label("Message", exact=True).fill("hello from the screenshot")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("[data-chat-log] li").first.wait_for()


def stream(page: Page) -> None:
    """Open the ticks stream, ending each response after 3 events, and watch it reconnect."""
    page.get_by_label("server ends each response after").fill("3")
    page.get_by_role("button", name="Connect", exact=True).click()
    page.wait_for_function(
        "() => window.sseConsole.records.filter((r) => r.kind === 'message').length >= 5",
        timeout=15_000,
    )


def job(page: Page) -> None:
    """Start a job and send an echo while it runs."""
    page.wait_for_function("() => !document.querySelector('[data-job-start]').disabled")
    page.get_by_role("button", name="Start job").click()
    page.get_by_role("button", name="echo now").click()
    page.locator("[data-job-list] li[data-done]").wait_for(timeout=30_000)


# name: (where to go, what to do there, what to show at the top of the picture)
PAGES: dict[str, tuple[str, Callable[[Page], None] | None, str]] = {
    "home": ("/", None, "main"),
    "sync": ("/sync/", echo, "main"),
    "async": ("/async/", echo, "main"),
    "auth": ("/accounts/login/?next=/auth/", lobby, "main"),
    "http": ("/http/", stream, "[data-event-source]"),
    "worker": ("/worker/", job, "main"),
}


def chromium(playwright_executable: str) -> str | None:
    """Playwright's own Chromium if installed, else a system one (as the browser tests do)."""
    if chosen := os.environ.get("SHOWCASE_CHROMIUM"):
        return chosen
    if Path(playwright_executable).exists():
        return None
    for candidate in SYSTEM_CHROMIUMS:
        if found := shutil.which(candidate):
            return found
    sys.exit("No Chromium: run `make system-deps`, or set SHOWCASE_CHROMIUM.")


def main() -> None:
    """Serve the showcase on a throwaway database and photograph every demo page."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=BASE_DIR / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        # DEBUG for the demo accounts only; the server itself runs as in production.
        env = server_env(DATABASE_PATH=str(Path(folder) / "db.sqlite3"), DEBUG="1")
        for command in (["migrate", "--no-input", "-v", "0"], ["ensure_demo_users"]):
            subprocess.run(
                [sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True
            )
        with running(start_daphne({**env, "DEBUG": "0"}, name="daphne-screenshots")) as server:
            with sync_playwright() as playwright:
                executable = chromium(playwright.chromium.executable_path)
                browser = playwright.chromium.launch(executable_path=executable)
                for name, (path, act, top) in PAGES.items():
                    page = browser.new_page(viewport=VIEWPORT, base_url=server.http_url)
                    page.set_default_timeout(10_000)
                    page.goto(path)
                    if act is not None:
                        act(page)
                    page.locator(top).evaluate("(element) => element.scrollIntoView()")
                    target = args.out / f"{name}.png"
                    page.screenshot(path=target)
                    print(f"{target.relative_to(BASE_DIR)}")
                    page.close()
                browser.close()
            if "Traceback" in server.log():
                sys.exit(f"the server logged a traceback:\n{server.log()}")


if __name__ == "__main__":
    main()
