"""
What each browser engine does: the tables docs/browsers.md shows, asserted cell by cell.

`EXPECTED` (engine x behaviour, on daphne) is asserted by e2e/test_engines.py, `SERVER_EXPECTED`
(behaviour x server x engine) by e2e/test_engines_servers.py. `markdown()` renders both for the
doc, and e2e/test_browsers_doc.py checks that the doc shows exactly that, so the page and the
tests cannot drift apart. `python -m e2e.browsers` prints the tables.
"""

from typing import Any

ENGINE_NAMES = {"chromium": "Chromium", "firefox": "Firefox ESR", "webkit": "WebKitGTK"}
ENGINES = tuple(ENGINE_NAMES)
SERVERS = ("daphne", "uvicorn", "hypercorn", "granian")


class Race(frozenset):
    """A cell with more than one outcome: which one the browser sees depends on timing."""


def same(value: Any) -> dict[str, Any]:
    """A row where every engine agrees."""
    return dict.fromkeys(ENGINES, value)


BOTH = ["onopen", "addEventListener"]

# row -> (what the row shows, {engine: cell}). Observed on the session's daphne.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "on… and addEventListener": (
        "which handlers saw open, message and close (the `on…` property and addEventListener)",
        same((BOTH, ["onmessage", "addEventListener"], ["onclose", "addEventListener"])),
    ),
    "readyState": (
        "readyState over a socket's life; readyState right after `close()`",
        same(([0, 1, 2, 3], 2)),
    ),
    "binaryType": (
        "`binaryType` of a new socket; what a binary message arrives as with "
        '`"blob"`, with `"arraybuffer"`',
        same(("blob", "Blob", "ArrayBuffer")),
    ),
    "bufferedAmount": (
        "`bufferedAmount` before and right after `send()` of 200,000 bytes (then it drains to 0)",
        same((0, 200000)),
    ),
    "send() while CONNECTING": (
        "what `send()` throws while CONNECTING (a probe socket; the console's own socket)",
        same(("InvalidStateError", "InvalidStateError")),
    ),
    "send() after close": (
        "`send()` on a CLOSED socket: what it throws; how much `bufferedAmount` grows "
        '(13 bytes sent: "into the void")',
        {"chromium": (None, 13), "firefox": (None, 13), "webkit": (None, 19)},
    ),
    "close(code) refused": (
        "what `close(1001)` throws; what `close()` throws for 999, 1001, 1005, 1006, 2999, 5000",
        same(("InvalidAccessError", ["InvalidAccessError"])),
    ),
    "close(code, reason > 123 bytes)": (
        "what `close()` throws for a 124-byte reason (the probe; the console's socket)",
        same(("SyntaxError", "SyntaxError")),
    ),
    "close(4999, 123-byte reason)": (
        "the code the consumer receives after `close(4999, <123 bytes>)`: allowed",
        same(4999),
    ),
    "nothing listening": (
        "a socket to a port nothing listens on: events in order; (code, wasClean); "
        "the handlers that saw the close",
        same(("error → close", (1006, False), ["onclose", "addEventListener"])),
    ),
    "HTTP 403": (
        "a handshake the server refuses (HTTP 403, /ws/auth/strict/): the same",
        same(("error → close", (1006, False), ["onclose", "addEventListener"])),
    ),
    "4401 from daphne": (
        "/ws/auth/ anonymous on daphne (accepted, then closed 4401 with a reason, then daphne's "
        "TCP reset): the events in order; (code, reason, wasClean)",
        {
            "chromium": ("open → close", (4401, "", False)),
            "firefox": ("open → close", (4401, "", True)),
            "webkit": ("open → error → close", (4401, "", False)),
        },
    ),
    "EventSource events": (
        "EventSource: handlers of an unnamed event; of a named one (`event: hello`); "
        "readyState after the constructor, while open, after `close()`",
        same((["onmessage", "addEventListener"], ["addEventListener"], (0, 1, 2))),
    ),
    "EventSource reconnects": (
        "EventSource when each response ends after 3 events: `Last-Event-ID` the server got "
        "on each connection; readyState at each `error`; handlers of `error`",
        same(([None, 3, 6], [0, 0], ["onerror", "addEventListener"])),
    ),
    "EventSource on HTTP 403": (
        "EventSource answered 403: readyState at `error`; everything it reported (no retry)",
        same((2, ["new", "error"])),
    ),
}

# row -> (what the row shows, {server: {engine: cell}}). Observed by the engines on each server.
SERVER_EXPECTED: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "extensions": (
        "`ws.extensions` once open (each engine offers permessage-deflate; Firefox without "
        "`client_max_window_bits`)",
        {
            "daphne": same(""),
            "uvicorn": same(""),
            "hypercorn": {
                "chromium": "permessage-deflate; client_max_window_bits=15",
                "firefox": "permessage-deflate",
                "webkit": "permessage-deflate; client_max_window_bits=15",
            },
            "granian": same(""),
        },
    ),
    "close()": (
        "the page's bare `close()`: (code, reason, wasClean) of its close event",
        {
            "daphne": same((1000, "", True)),
            "uvicorn": same((1005, "", True)),
            "hypercorn": same((1005, "", True)),
            "granian": same((1005, "", True)),
        },
    ),
    "close(4321, reason)": (
        '`close(4321, "bye ✓")`: (code, reason, wasClean)',
        {
            "daphne": same((1000, "", True)),
            "uvicorn": same((4321, "bye ✓", True)),
            "hypercorn": same((4321, "bye ✓", True)),
            "granian": same((4321, "bye ✓", True)),
        },
    ),
    "server close": (
        'the consumer closes 4000 "server says bye": (code, reason, wasClean)',
        {
            "daphne": {
                "chromium": (4000, "", False),
                "firefox": (4000, "", True),
                "webkit": (4000, "", False),
            },
            "uvicorn": same((4000, "server says bye", True)),
            "hypercorn": same((4000, "server says bye", True)),
            "granian": {
                "chromium": Race(
                    {(4000, "server says bye", False), (4000, "server says bye", True)}
                ),
                "firefox": (4000, "server says bye", False),
                "webkit": Race({(4000, "server says bye", False), (4000, "server says bye", True)}),
            },
        },
    ),
    "600 KiB": (
        "a 600 KiB message, over the server's 512 KiB cap: (code, wasClean)",
        {
            "daphne": same((1006, False)),
            "uvicorn": {
                # uvicorn closes 1009 and drops the connection while the page still sends:
                # whether the close frame or the reset is read first varies run to run.
                "chromium": Race({(1009, True), (1009, False), (1006, False)}),
                "firefox": Race({(1009, False), (1006, False)}),
                "webkit": Race({(1006, False), (1009, False)}),
            },
            "hypercorn": same((1009, True)),
            # The consumer closes while the page is still sending: a reset can beat the close.
            "granian": {
                "chromium": Race({(4009, True), (4009, False)}),
                "firefox": (4009, False),
                "webkit": Race({(4009, True), (4009, False)}),
            },
        },
    ),
    "SIGTERM": (
        "SIGTERM to the server with the socket open: (code, wasClean)",
        {
            "daphne": same((1006, False)),
            "uvicorn": {
                "chromium": Race({(1012, True), (1012, False)}),
                "firefox": Race({(1012, True), (1012, False)}),
                "webkit": (1006, False),
            },
            # Once its grace is over hypercorn cancels each connection: the 1011 it sends from
            # the cancelled application can lose to the end of the connection, in any engine
            # (under load: one SIGTERM gave one Chromium page's two sockets (1011, true) and
            # (1006, false); WebKit has shown (1006, false) too).
            "hypercorn": {
                "chromium": Race({(1011, True), (1006, False)}),
                # hypercorn closes 1011 and ends the connection at once: Firefox's wasClean
                # depends on whether its close reply went out first (true in some runs).
                "firefox": Race({(1011, False), (1011, True), (1006, False)}),
                "webkit": Race({(1011, True), (1006, False)}),
            },
            "granian": same((1006, False)),
        },
    ),
}


def cell(row: str, engine: str, server: str | None = None) -> Any:
    """The expected cell of an engine (on a server, for SERVER_EXPECTED's rows)."""
    if server is None:
        return EXPECTED[row][1][engine]
    return SERVER_EXPECTED[row][1][server][engine]


def column(engine: str, observed: dict[str, Any], server: str | None = None) -> dict[str, Any]:
    """
    The expected cells for the rows a test observed, for one diff of them all. A `Race` cell
    accepts any of its outcomes.
    """
    expected = {}
    for row, value in observed.items():
        wanted = cell(row, engine, server)
        expected[row] = value if isinstance(wanted, Race) and value in wanted else wanted
    return expected


# ---------------------------------------------------------------------------- the doc


def show(value: Any, nested: bool = False) -> str:
    """A cell as the doc prints it: a tuple's parts split by ";", JavaScript's true and false."""
    if isinstance(value, Race):
        return " or ".join(sorted(show(v, True) for v in value))
    if isinstance(value, tuple):
        if nested:
            return "(" + ", ".join(show(v, True) for v in value) + ")"
        return "; ".join(show(v, True) for v in value)
    if isinstance(value, list):
        return "[" + ", ".join(show(v, True) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if value == "":
        return '""'
    return str(value)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _cells(cells: dict[str, Any]) -> list[str]:
    """An engine's cell, or "same" where it equals Chromium's: the differences stand out."""
    first = show(cells[ENGINES[0]])
    rest = [show(cells[engine]) for engine in ENGINES[1:]]
    return [first, *("same" if value == first else f"**{value}**" for value in rest)]


def engine_table() -> str:
    """EXPECTED as a Markdown table: a row per behaviour, a column per engine."""
    lines = [_row(["behaviour", *ENGINE_NAMES.values()]), _row(["---"] * (len(ENGINES) + 1))]
    for description, cells in EXPECTED.values():
        lines.append(_row([description, *_cells(cells)]))
    return "\n".join(lines)


def server_table() -> str:
    """SERVER_EXPECTED as a Markdown table: a row per behaviour and server, a column per engine."""
    lines = [
        _row(["behaviour", "server", *ENGINE_NAMES.values()]),
        _row(["---"] * (len(ENGINES) + 2)),
    ]
    for description, servers in SERVER_EXPECTED.values():
        for n, server in enumerate(SERVERS):
            lines.append(_row([description if n == 0 else "", server, *_cells(servers[server])]))
    return "\n".join(lines)


def markdown() -> str:
    """Both tables, as docs/browsers.md holds them between its table markers."""
    return engine_table() + "\n\n" + server_table()


if __name__ == "__main__":
    print(markdown())
