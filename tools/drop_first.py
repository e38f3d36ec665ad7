"""
Reproduce daphne's "drop-first" shutdown: on SIGTERM, daphne stops waiting for its applications
too early, or never tells them at all, and drops their sockets.

    python -m tools.drop_first              # what the clients and applications saw
    python -m tools.drop_first --patched    # the same with apps/core/daphne_shutdown.py
    python -m tools.drop_first --verbose    # daphne -v 2, its log printed: the KeyError

It starts daphne on a bare ASGI application (no Django; the close handshake lengthened as the
project does, apps/core/daphne_close.py). Every socket is accepted; when its application is
cancelled (daphne's shutdown cancels every application and means to wait for them), it closes
the socket with 4503, as the lobby does, and then, on the "slow" path only, spends
CLEANUP_SECONDS cleaning up (the lobby leaves Redis) and logs "cleaned up". A raw client
opens a slow socket, waits until daphne's application checker has run (it removes each
handshake's leftover entry once a second), opens a quick socket, waits `delay`, and sends
SIGTERM. Two faults show:

- delay under a second: `kill_all_applications` raises KeyError on the quick socket's handshake
  leftover. Both sockets are dropped without a close frame (a browser reports 1006), and no
  application is told.
- later: both are cancelled, but daphne waits with `asyncio.gather`, done as soon as the quick
  application has ended; the slow one's cleanup is cut off ("cleaned up" never logged), and
  its 4503 goes out only if it was written before the connections are dropped.

docs/upstream/daphne-sigterm-drop-first.md has the analysis and figures.
"""

import argparse
import asyncio
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tools import servers

CLOSE_CODE = 4503
CHECKER_PERIOD = 1.0  # daphne's application_checker runs once a second
CLEANUP_SECONDS = 0.5


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept every socket; when cancelled (the server stops), close it with 4503."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    except asyncio.CancelledError:
        print(f"{scope['path']} told of the shutdown", flush=True)
        await send({"type": "websocket.close", "code": CLOSE_CODE})
        if scope["path"] == "/slow":
            await asyncio.sleep(CLEANUP_SECONDS)
            print(f"{scope['path']} cleaned up", flush=True)
        raise


async def patched(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same application, served by a daphne with apps/core/daphne_shutdown.py applied."""
    await application(scope, receive, send)


# Loaded by daphne? Give clients the project's 5 s to answer a close either way (autobahn's
# default "1 s" can be none at all: docs/upstream/autobahn-close-timeout.md), so only the
# shutdown differs; as `tools.drop_first:patched`, apply the fix too, as apps.core does.
if "daphne.server" in sys.modules:
    from apps.core.daphne_close import lengthen_close_handshake
    from apps.core.daphne_shutdown import wait_for_every_application

    lengthen_close_handshake()
    if any(a.endswith(":patched") for a in sys.argv):
        wait_for_every_application()


async def close_code(socket: Any) -> int | str:
    """The close code the server sent, or "dropped" if the connection ended without one."""
    try:
        while True:
            await socket.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else "dropped"


@dataclass
class Stop:
    """What one stop looked like: each socket's close code, and what the applications did."""

    codes: dict[str, int | str]
    told: list[str]
    cleaned_up: bool

    def __str__(self) -> str:
        codes = ", ".join(f"{path[1:]} {code}" for path, code in self.codes.items())
        return f"{codes} (told: {' '.join(self.told) or 'none'}; cleaned up: {self.cleaned_up})"


async def one_stop(app: str, delay: float, verbose: bool = False) -> Stop:
    """Start daphne, open the slow socket, then the quick one `delay` s before SIGTERM."""
    extra = ("-v", "2") if verbose else ()
    server = await asyncio.to_thread(
        servers.start_daphne, name="drop-first", app=app, extra_args=extra
    )
    try:
        origin = server.http_url
        slow = await connect(server.ws_url + "/slow", origin=origin)
        await asyncio.sleep(CHECKER_PERIOD * 1.5)  # the slow one's handshake leftover is gone
        quick = await connect(server.ws_url + "/quick", origin=origin)
        await asyncio.sleep(delay)
        server.process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(close_code(slow), close_code(quick))
        await asyncio.to_thread(server.process.wait, 15)
    finally:
        server.stop()
    log = server.log()
    if verbose:
        print(log)
    return Stop(
        codes=dict(zip(("/slow", "/quick"), codes, strict=True)),
        told=[path for path in ("/slow", "/quick") if f"{path} told" in log],
        cleaned_up="/slow cleaned up" in log,
    )


def main() -> None:
    """Stop daphne `--count` times for each delay and print what the clients saw."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patched", action="store_true", help="apply daphne_shutdown.py")
    parser.add_argument("--verbose", action="store_true", help="daphne -v 2, and print its log")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--delays", default="0,0.5,1.5", help="seconds from B's handshake")
    args = parser.parse_args()
    app = "tools.drop_first:" + ("patched" if args.patched else "application")
    for delay in (float(d) for d in args.delays.split(",")):
        seen: Counter[str] = Counter()
        for _ in range(args.count):
            seen[str(asyncio.run(one_stop(app, delay, args.verbose)))] += 1
        print(f"SIGTERM {delay:.1f} s after the quick socket's handshake:")
        for outcome, times in seen.most_common():
            print(f"  {times} x {outcome}")


if __name__ == "__main__":
    main()
