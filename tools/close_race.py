"""
Reproduce the rare 1006-instead-of-4401: daphne (autobahn) gives a client less than its
advertised 1 s to answer a server-initiated close, then resets the connection.

    python -m tools.close_race                 # how long daphne really waits for the reply
    python -m tools.close_race --browser       # what Chromium reports when it answers late
    python -m tools.close_race --lengthened    # the same with apps/core/daphne_close.py

It starts daphne on a bare ASGI application (no Django): accept, then close with 4401, as the
lobby does for an anonymous socket. The raw client reads the close frame, never answers, and
times the server's TCP reset: with autobahn's `closeHandshakeTimeout = 1` the reset comes
anywhere from 0 to 1 s later, because txaio's batched timer truncates the deadline to a whole
second. The browser mode blocks Chromium's page for a while right after `new WebSocket()`, as a
loaded machine does: when the page answers after the reset, Chromium reports 1006.
docs/upstream/autobahn-close-timeout.md has the analysis and figures.
"""

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

from tools import hostile, servers

CLOSE_CODE = 4401


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept every socket, then close it at once with 4401."""
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": CLOSE_CODE})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def lengthened(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same application, served with the project's longer close handshake."""
    await application(scope, receive, send)


# Loaded by daphne as `tools.close_race:lengthened`? Then apply the adjustment, as apps.core
# does for the project.
if "daphne.ws_protocol" in sys.modules and any(a.endswith(":lengthened") for a in sys.argv):
    from apps.core.daphne_close import lengthen_close_handshake

    lengthen_close_handshake()


async def time_to_reset(port: int) -> float:
    """Read the server's close frame, never answer it, and time the server's reset."""
    reader, writer = await hostile.connect_raw(port, "/")
    started = None
    try:
        while True:
            data = await reader.read(1024)
            if started is None:
                started = time.monotonic()  # the close frame (after the handshake)
            if not data:
                break
    except ConnectionError:
        pass
    finally:
        hostile.reset(writer)
    return time.monotonic() - (started or time.monotonic())


def raw(port: int, count: int) -> None:
    """Print how long daphne waited for a close reply, over `count` sockets."""
    waits = []
    for _ in range(count):
        waits.append(asyncio.run(time_to_reset(port)))
        time.sleep(random.uniform(0, 1))  # close at any fraction of a second
    print(
        f"daphne reset the connection {min(waits):.3f} to {max(waits):.3f} s after its close "
        f"frame (median {statistics.median(waits):.3f} s) over {count} sockets"
    )
    buckets = Counter(int(w * 4) for w in waits)
    for quarter in range(min(buckets), max(buckets) + 1):
        print(f"  {quarter / 4:.2f}-{(quarter + 1) / 4:.2f} s: {'#' * buckets[quarter]}")


BUSY_PAGE = """async ([url, busy]) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  const until = performance.now() + busy;
  while (performance.now() < until) {}  // the page is busy while the handshake completes
  ws.onclose = (event) => resolve(event.code);
})"""


def browser(port: int, count: int, busy_ms: list[int]) -> None:
    """Print the close codes Chromium reports when its page is busy for a while."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launch = {}
        if not os.path.exists(playwright.chromium.executable_path):
            # No Playwright browser here: a system Chromium (e2e/conftest.py does the same).
            launch["executable_path"] = servers.find_binary(
                "chromium", "/usr/lib/chromium/chromium"
            )
        chromium = playwright.chromium.launch(**launch)
        page = chromium.new_page()
        for busy in busy_ms:
            codes = Counter(
                page.evaluate(BUSY_PAGE, [f"ws://127.0.0.1:{port}/", busy]) for _ in range(count)
            )
            print(f"page busy {busy:>5} ms after new WebSocket(): {dict(codes)}")
        chromium.close()


def main() -> None:
    """Start daphne on the bare application and run the chosen probe."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--browser", action="store_true", help="probe with Chromium")
    parser.add_argument("--lengthened", action="store_true", help="apply daphne_close.py")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--busy", default="0,300,600,900,1500,3000", help="ms, for --browser")
    args = parser.parse_args()
    app = "tools.close_race:" + ("lengthened" if args.lengthened else "application")
    with servers.running(servers.start_daphne(name="close-race", app=app)) as server:
        if args.browser:
            browser(server.port, args.count, [int(ms) for ms in args.busy.split(",")])
        else:
            raw(server.port, args.count)


if __name__ == "__main__":
    main()
