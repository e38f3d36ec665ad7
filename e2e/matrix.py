"""
What the server-matrix tests share (e2e/test_servers.py in Chromium, e2e/test_engines_servers.py
in every engine): the SIGTERM test's fast server flags, and a socket opened from the page's
JavaScript that reports everything that happened to it.
"""

from typing import Any

from playwright.sync_api import Page

from e2e.engines import EnginePage
from tools.servers import ServerProcess

# The SIGTERM test's own servers: pings every 1 s instead of 20 (granian has none), and 2 s of
# grace after SIGTERM instead of 10, so that the test waits seconds, not minutes.
FAST: dict[str, tuple[str, ...]] = {
    "daphne": ("--ping-interval", "1", "--application-close-timeout", "2"),
    "uvicorn": ("--ws-ping-interval", "1", "--timeout-graceful-shutdown", "2"),
    "hypercorn": ("--websocket-ping-interval", "1", "--graceful-timeout", "2"),
    "granian": ("--workers-kill-timeout", "2"),
}

# Opens a socket, sends, and resolves with what happened: open or not, every message, and the
# close event, once the message `until` has arrived (then the page closes with 1000; "*": any
# message) or the server closed. `{"repeat": n}` in `sends` is n letters.
SOCKET_JS = """async ([url, sends, until]) => {
    const ws = new WebSocket(url);
    const messages = [];
    const opened = await new Promise((resolve) => {
        ws.onopen = () => resolve(true);
        ws.onclose = () => resolve(false);
    });
    const closed = new Promise((resolve) => {
        ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
        setTimeout(() => resolve({ code: "no close within 10 s" }), 10000);
    });
    ws.onmessage = (e) => {
        messages.push(e.data);
        if (e.data === until || until === "*") ws.close(1000);
    };
    for (const item of sends) ws.send(typeof item === "string" ? item : "x".repeat(item.repeat));
    const close = await closed;
    return { opened, messages, close };
}"""


def run_socket(
    page: Page | EnginePage,
    server: ServerProcess,
    path: str,
    sends: list[Any] = (),
    until: str | None = None,
) -> dict[str, Any]:
    """Run SOCKET_JS on the page (a Playwright page or any engine's) against `path`."""
    return page.evaluate(SOCKET_JS, [server.ws_url + path, list(sends), until])
