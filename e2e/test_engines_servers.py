"""
The cells of the server matrix that a browser sees, in every engine on each of the four
servers: how a close arrives (code, reason, wasClean) whoever starts it, a message over the
server's cap, the extensions negotiated, and SIGTERM with sockets open.

Each test compares what the engine observed with `SERVER_EXPECTED` in e2e/browsers.py (the
browser x server table of docs/browsers.md). e2e/test_servers.py asserts the rest of the
matrix (what the consumer got, headers, pings) in Chromium.
"""

import signal
from collections.abc import Callable

from e2e import artifacts
from e2e.browsers import ENGINES, column
from e2e.console import Console
from e2e.engines import EnginePage
from e2e.matrix import FAST, run_socket
from tools.servers import SERVER_FLAGS, ServerProcess, start_server

ECHO = "/ws/sc/generic/"


def closed_by(console: Console, button: str) -> tuple:
    """Press a button of the console; (code, reason, wasClean) of the close that follows."""
    since = console.mark()
    console.click(button)
    close = console.wait_for("close", since)[0]
    return (close["code"], close["reason"], close["wasClean"])


def test_closes_and_limits(engine_page: EnginePage, matrix_server: ServerProcess) -> None:
    console = Console.open(engine_page, matrix_server.http_url + "/sync/")
    opened = console.connect(ECHO, reconnect=False)
    observed = {"extensions": opened["extensions"], "close()": closed_by(console, "close()")}

    console.connect(ECHO, reconnect=False)
    console.fill("code", "4321")
    console.fill("reason", "bye ✓")
    observed["close(4321, reason)"] = closed_by(console, "close(code, reason)")

    console.connect("/ws/sc/json/", reconnect=False)
    observed["server close"] = closed_by(console, "server close 4000")

    result = run_socket(engine_page, matrix_server, ECHO, [{"repeat": 600 * 1024}])
    assert result["opened"] and result["messages"] == []
    observed["600 KiB"] = (result["close"]["code"], result["close"]["wasClean"])
    assert observed == column(engine_page.engine, observed, matrix_server.name)


def test_sigterm_in_every_engine(
    open_engine: Callable[[str], EnginePage],
    matrix_server: ServerProcess,
    daphne_env: dict[str, str],
) -> None:
    # One server of the test's own (its grace after SIGTERM shortened to 2 s), a page of each
    # engine on it, one SIGTERM: what each engine reports.
    name = matrix_server.name
    own = artifacts.register(
        start_server(
            name,
            daphne_env,
            app="e2e.asgi:application",
            flags=SERVER_FLAGS[name] + FAST[name],
            name=f"{name}-sigterm-engines",
        )
    )
    try:
        consoles = {}
        for engine in ENGINES:
            consoles[engine] = Console.open(open_engine(engine), own.http_url + "/sync/")
            consoles[engine].connect(ECHO, reconnect=False)
        marks = {engine: console.mark() for engine, console in consoles.items()}
        own.process.send_signal(signal.SIGTERM)
        observed, expected = {}, {}
        for engine, console in consoles.items():
            close = console.wait_for("close", marks[engine], timeout=15_000)[0]
            observed[engine] = (close["code"], close["wasClean"])
            expected[engine] = column(engine, {"SIGTERM": observed[engine]}, name)["SIGTERM"]
        assert observed == expected
        own.process.wait(15)
        assert own.tracebacks() == []
    finally:
        own.stop()
        artifacts.unregister(own)
