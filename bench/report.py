"""
Turning `make bench` results into the printed tables, docs/benchmarks.md and the chart.
"""

import os
import platform
import statistics
import subprocess
import threading
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tools import servers

DOCS = servers.BASE_DIR / "docs"
PACKAGES = ("Django", "channels", "daphne", "Twisted", "uvicorn", "hypercorn", "granian",
            "uvloop", "websockets", "channels-redis", "redis")  # fmt: skip
SHORT_LAYER = {
    "InMemoryChannelLayer": "memory",
    "InMemoryChannelLayer + NoDatabaseMixin": "memory\n+ mixin",
    "RedisChannelLayer": "redis",
    "RedisPubSubChannelLayer": "pubsub",
    'RedisChannelLayer + NoDatabaseMixin, Python\'s GC ("")': "redis + mixin\nPython's GC",
    'RedisChannelLayer + NoDatabaseMixin, project\'s GC ("50000,10,10")': "redis + mixin\nour GC",
}
SYNC_STYLES = ["raw sync", "generic sync", "json sync"]
ASYNC_STYLES = ["raw async", "generic async", "json async"]
TARGET = 0.90  # project endpoint / bare Channels consumer of the same style
# Async project endpoints that keep Channels' stock dispatch (they use the ORM, so no
# NoDatabaseMixin): judged against the stock bare consumer.
STOCK_DISPATCH = {"json async"}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        redis = subprocess.run(
            [servers.find_binary("redis-server"), "--version"], capture_output=True, text=True
        ).stdout.split()[2]
    except (OSError, IndexError):
        redis = "not found"
    return {
        "load": round(os.getloadavg()[0], 1),
        "cores": os.cpu_count(),
        "cpu": model,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: version(name) for name in PACKAGES} | {"redis-server": redis},
    }


class LoadWatch:
    """
    The machine's load average (1 minute) before, during (sampled every few seconds) and after
    a run: figures from a machine other work was using are not the machine's figures, and the
    page says which they are.
    """

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self.stopped = threading.Event()
        self.before = self.after = 0.0

    def __enter__(self) -> "LoadWatch":
        self.before = os.getloadavg()[0]
        self.thread = threading.Thread(target=self._sample, name="load-watch", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.after = os.getloadavg()[0]

    def _sample(self) -> None:
        while not self.stopped.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def figures(self) -> dict[str, Any]:
        """Before, during (lowest, highest, mean) and after, with the core count."""
        during = self.samples or [self.before]
        return {
            "cores": os.cpu_count(),
            "before": round(self.before, 2),
            "during": {
                "min": round(min(during), 2),
                "max": round(max(during), 2),
                "mean": round(statistics.mean(during), 2),
                "samples": len(self.samples),
            },
            "after": round(self.after, 2),
        }


def load_sentence(load: dict[str, Any]) -> str:
    """What the load figures say about the run, in one sentence."""
    during = load["during"]
    said = (
        f"Load average (1 minute) {load['before']:.1f} before the run, {during['min']:.1f} to "
        f"{during['max']:.1f} during it (mean {during['mean']:.1f}, {during['samples']} "
        f"samples), {load['after']:.1f} after it, on {load['cores']} cores"
    )
    if max(load["before"], during["max"]) <= load["cores"] / 2:
        return f"{said}: a quiet machine, nothing else ran."
    if during["max"] <= load["cores"]:
        return f"{said}: the run kept the cores busy, with little else running."
    return (
        f"{said}: above the core count, so other work shared the cores; the slices of a row "
        "scatter, and only large ratios within the run mean anything."
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def ratio(value: float, base: float | None) -> str:
    """value/base as a percentage, or a dash."""
    return f"{100 * value / base:.0f}%" if base else "-"


def echo_table(results: dict[str, Any]) -> str:
    """Every echo row, with its ratios to the bare Channels consumer and the two ceilings."""
    rows = results["echo"]
    websockets = next((r["rate"] for r in rows if r["server"] == "websockets"), None)
    asgi = {r["server"]: r["rate"] for r in rows if r["style"] == "bare ASGI"}
    out = []
    for r in rows:
        reference = same_dispatch(rows, r)
        verdict = ""
        if r["kind"] == "project" and reference:
            verdict = " ok" if r["rate"] >= TARGET * reference else " UNDER 90%"
        out.append(
            [
                r["server"],
                r["style"],
                r["kind"],
                r["path"],
                f"{r['rate']:,.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                ratio(r["rate"], reference) + verdict,
                ratio(r["rate"], asgi.get(r["server"])),
                ratio(r["rate"], websockets),
                f"{r['client_cpu']:.0f}%" + (" client-bound" if r["client_cpu"] >= 90 else ""),
            ]
        )
    header = ["server", "style", "consumer", "path", "round trips/s", "p50 ms", "p99 ms",
              "÷ bare Channels", "÷ bare ASGI", "÷ websockets", "client CPU"]  # fmt: skip
    note = (
        "÷ bare Channels: a project endpoint against the bare consumer of its style that "
        "dispatches the same way (the raw and generic async endpoints use `NoDatabaseMixin`, "
        "so they are compared with the bare one that does too; the JSON one uses the ORM and "
        "keeps the stock dispatch: what remains is the showcase's own tax; target ≥ 90%); "
        "a bare consumer with the mixin against the stock one (the gain). "
        "A row marked client-bound had the client's core busy: its server could do more."
    )
    return note + "\n\n" + table(header, out)


def same_dispatch(rows: list[dict[str, Any]], row: dict[str, Any]) -> float | None:
    """The rate a row is judged against: see the note under the echo table."""
    if row["kind"] not in ("project", "bare + NoDatabaseMixin", "bare + QueuedSendMixin"):
        return None
    wanted = ["bare Channels"]
    if (
        row["kind"] == "project"
        and row["style"].endswith("async")
        and row["style"] not in STOCK_DISPATCH
    ):
        wanted.insert(0, "bare + NoDatabaseMixin")
    for kind in wanted:
        for r in rows:
            if (r["server"], r["style"], r["kind"]) == (row["server"], row["style"], kind):
                return r["rate"]
    return None


def optimisation_table(results: dict[str, Any]) -> str:
    """Bare async consumers with and without NoDatabaseMixin, side by side."""
    rows = results["echo"]
    index = {(r["server"], r["style"], r["kind"]): r for r in rows}
    out = []
    for (server, style, kind), r in index.items():
        if kind != "bare + NoDatabaseMixin":
            continue
        before = index[(server, style, "bare Channels")]
        project = index.get((server, style, "project"))
        out.append(
            [
                server,
                style,
                f"{before['rate']:,.0f}",
                f"{r['rate']:,.0f}",
                f"{100 * (r['rate'] / before['rate'] - 1):+.0f}%",
                f"{before['p50_ms']:.2f} → {r['p50_ms']:.2f}",
                f"{project['rate']:,.0f}" if project else "-",
            ]
        )
    header = ["server", "style", "stock rt/s", "with mixin rt/s", "gain", "p50 ms",
              "project endpoint rt/s"]  # fmt: skip
    return table(header, out)


def sync_send_table(results: dict[str, Any]) -> str:
    """The sync endpoints with stock and queued sends, measured in the same slices."""
    index = {(r["server"], r["style"], r["kind"]): r for r in results["syncsend"]}
    out = []
    for server, style in dict.fromkeys((r["server"], r["style"]) for r in results["syncsend"]):
        stock = index[(server, style, "project, SYNC_SEND=stock")]
        queued = index[(server, style, "project, SYNC_SEND=queued")]
        bare = index[(server, style, "bare Channels")]
        bare_queued = index[(server, style, "bare + QueuedSendMixin")]
        out.append(
            [
                server,
                style,
                stock["path"],
                f"{stock['rate']:,.0f}",
                f"{queued['rate']:,.0f}",
                f"{100 * (queued['rate'] / stock['rate'] - 1):+.0f}%",
                f"{stock['p50_ms']:.2f} → {queued['p50_ms']:.2f}",
                f"{stock['p99_ms']:.2f} → {queued['p99_ms']:.2f}",
                f"{bare['rate']:,.0f} → {bare_queued['rate']:,.0f}",
                f"{100 * (bare_queued['rate'] / bare['rate'] - 1):+.0f}%",
                f"{max(r['errors'] for r in (stock, queued, bare, bare_queued))}",
            ]
        )
    header = ["server", "style", "path", "stock rt/s", "queued rt/s", "gain", "p50 ms",
              "p99 ms", "bare Channels → + QueuedSendMixin rt/s", "bare gain",
              "errors"]  # fmt: skip
    note = (
        "The project's sync endpoints on two server processes of the same server, one with "
        "SYNC_SEND=stock (Channels' `async_to_sync` send, which waits for the event loop) and "
        "one with SYNC_SEND=queued (`apps.core.consumers.QueuedSendMixin`: the send is handed "
        "to the loop in order and the handler carries on), in the same interleaved slices; "
        "then the bare sync consumers without and with the mixin."
    )
    return note + "\n\n" + table(header, out)


def connections_table(results: dict[str, Any]) -> str:
    """Idle sockets, memory per socket and handshake rate."""
    out = [
        [
            r["server"],
            r["path"],
            f"{r['sockets']:,} of {r['sockets'] + r['failed']:,}",
            f"{r['per_second']:,.0f}",
            f"{r['kib_per_socket']:.1f}",
            f"{r['rss_before_mib']:.0f} → {r['rss_after_mib']:.0f}",
            f"{r['client_cpu']:.0f}%",
        ]
        for r in results["connections"]
    ]
    header = ["server", "path", "idle sockets held", "new connections/s", "KiB per socket",
              "server RSS MiB", "client CPU"]  # fmt: skip
    return table(header, out)


FANOUT_NOTE = (
    "Each broadcast is timed from its send to each member's copy. The last two rows are the "
    "lobby's case (RedisChannelLayer, `NoDatabaseMixin`, two processes) with Python's garbage "
    "collector thresholds and with the project's `GC_THRESHOLD`, broadcasts taking turns "
    "between them (two more server processes, each pair on its own Redis database)."
)


def servers_table(results: dict[str, Any]) -> str:
    """Which server? Echo rates measured side by side (interleaved), and the idle sockets."""
    rows = results.get("servers", [])
    rate = {(r["server"], r["kind"], r["style"]): r for r in rows}
    daphne = {(k, s): r["rate"] for (n, k, s), r in rate.items() if n == "daphne"}
    out = []
    for server in dict.fromkeys(r["server"] for r in rows):
        cells = [server]
        asgi = rate[(server, "ceiling", "bare ASGI")]["rate"]
        for kind, style in (("ceiling", "bare ASGI"), ("project", "raw sync"),
                            ("bare Channels", "raw async"), ("project", "raw async")):  # fmt: skip
            r = rate[(server, kind, style)]
            cells.append(
                f"{r['rate']:,.0f} ({ratio(r['rate'], daphne.get((kind, style)))} of daphne"
                + (f", {ratio(r['rate'], asgi)} of its ceiling)" if kind != "ceiling" else ")")
            )
        idle = [r for r in results.get("connections", []) if r["server"] == server]
        cells.append(" / ".join(f"{r['kib_per_socket']:.0f}" for r in idle) or "-")
        cells.append(" / ".join(f"{r['per_second']:,.0f}" for r in idle) or "-")
        out.append(cells)
    header = ["server", "bare ASGI echo (ceiling)", "sync consumer /ws/sc/",
              "stock async consumer", "async + NoDatabaseMixin /ws/ac/",
              "KiB per idle socket (async / sync)", "handshakes/s (async / sync)"]  # fmt: skip
    note = (
        "Round trips/s, 50 connections, 32 B text, the four servers running at once and every "
        "row's slices interleaved across them, so that load from elsewhere hits them alike "
        "(the echo table below measures one server after the other). Idle sockets: the "
        "connections table (2,000 held, 50 opening at a time, on the async and sync generic "
        "echo), measured one server after the other."
    )
    return note + "\n\n" + table(header, out)


def fanout_table(results: dict[str, Any]) -> str:
    """Broadcast delivery latency per layer and group size."""
    out = [
        [
            r["layer"],
            str(r["processes"]),
            f"{r['members']:,}",
            str(r["rounds"]),
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['last_p50_ms']:.1f}",
            str(r["missing"]),
            f"{r['client_cpu']:.0f}%",
        ]
        for r in results["fanout"]
    ]
    header = ["channel layer", "server processes", "members", "broadcasts", "delivery p50 ms",
              "delivery p99 ms", "to last member p50 ms", "missing", "client CPU"]  # fmt: skip
    return table(header, out)


def profile_table(results: dict[str, Any]) -> str:
    """Shares of the server's samples per bucket, per endpoint."""
    rows = results["profile"]
    if rows and "skipped" in rows[0]:
        return f"Skipped: {rows[0]['skipped']}."
    buckets = ["thread crossings", "on the worker thread", "database cleanup",
               "WebSocket framing", "idle"]  # fmt: skip
    out = [
        [r["style"], r["path"], f"{r['rate']:,.0f}", f"{r['samples']:,}"]
        + [f"{r[b]:.0f}%" for b in buckets]
        for r in rows
    ]
    header = ["consumer", "path", "round trips/s (sampled)", "samples", "asgiref thread crossings",
              "on the worker thread", "close_old_connections", "WebSocket framing",
              "idle (of all samples)"]  # fmt: skip
    note = (
        "Share of daphne's busy samples (threads not blocked in epoll or waiting for work) "
        "whose stack is in each place; a sample can be in several. py-spy pauses the server "
        "to sample it, so these rates are lower than in the echo table."
    )
    return note + "\n\n" + table(header, out)


def orm_table(results: dict[str, Any]) -> str:
    """A note saved, the latest read back, each way, beside the same endpoint's echo."""
    rows = results["orm"]
    # Rows of runs before the PostgreSQL ones have no database: SQLite.
    echo = {
        (r.get("database", "sqlite"), r["style"]): r["rate"] for r in rows if r["kind"] == "echo"
    }
    out = [
        [
            r.get("database", "sqlite"),
            r["style"],
            r["kind"],
            f"{r['rate']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            ratio(r["rate"], echo.get((r.get("database", "sqlite"), r["style"]))),
            f"{r['client_cpu']:.0f}%",
            str(r["errors"]),
        ]
        for r in rows
    ]
    header = ["database", "style", "command · way", "round trips/s", "p50 ms", "p99 ms",
              "÷ echo", "client CPU", "errors"]  # fmt: skip
    note = (
        f"{results['settings'].get('orm_connections', '?')} connections, closed loop, like "
        "the echo rows; daphne, one process, on SQLite (a fresh file in /dev/shm: on disk every "
        "commit waits for its fsync, which caps every style alike) and on a throwaway "
        "PostgreSQL on the same machine (no fsync either), over TCP: with Django's default "
        "CONN_MAX_AGE 0 (a new connection, and its password exchange, for every message), "
        "with CONN_MAX_AGE 60 and health checks, and with Django's pool and health checks "
        '(docs/styles.md, "Database connections"). '
        "`note` saves one row (INSERT), `notes` reads the ten latest with their authors "
        "(SELECT ... JOIN, LIMIT 10); every way runs its queries in asgiref's one "
        "thread-sensitive thread, so they queue behind each other whatever the style. "
        "÷ echo: against the plain JSON echo of the same endpoint, measured beside it."
    )
    return note + "\n\n" + table(header, out)


def summary(results: dict[str, Any]) -> str:
    """The run's headline ratios, in sentences."""
    lines = []
    echo = results.get("echo", [])
    rate = {(r["server"], r["style"], r["kind"]): r["rate"] for r in echo}
    websockets = rate.get(("websockets", "bare websockets", "ceiling"))
    for server in dict.fromkeys(r["server"] for r in echo if r["server"] != "websockets"):
        asgi = rate.get((server, "bare ASGI", "ceiling"))
        sync = statistics.median(rate[(server, s, "bare Channels")] for s in SYNC_STYLES)
        stock = statistics.median(rate[(server, s, "bare Channels")] for s in ASYNC_STYLES)
        lean = statistics.median(rate[(server, s, "bare + NoDatabaseMixin")] for s in ASYNC_STYLES)
        project = [
            r["rate"] / same_dispatch(echo, r)
            for r in echo
            if r["server"] == server and r["kind"] == "project"
        ]
        met = sum(r >= TARGET for r in project)
        bound = any(
            r["client_cpu"] >= 90
            and r["kind"] == "ceiling"
            and r["server"] in (server, "websockets")
            for r in echo
        )
        lines.append(
            f"- {server}: stock async consumers {stock / sync:.1f} times the sync ones; with "
            f"`NoDatabaseMixin` {lean / sync:.1f} times ({lean / stock - 1:+.0%} over stock "
            "async). "
            f"Medians over the three styles: sync {sync:,.0f}, async {stock:,.0f}, async with "
            f"the mixin {lean:,.0f} round trips/s, against {asgi:,.0f} for a bare ASGI echo "
            f"({asgi / websockets:.0%} of bare `websockets`"
            + ("; a ceiling was client-bound, the true one is higher" if bound else "")
            + f"). Project endpoints: {met} of 6 at "
            f"≥ 90% of the bare consumer that dispatches alike (lowest {min(project):.0%})."
        )
    session = next((r["us"] for r in results.get("tax", []) if "session" in r["layer"]), None)
    for server in dict.fromkeys(r["server"] for r in echo if r["server"] != "websockets"):
        lean = rate.get((server, "generic async", "bare + NoDatabaseMixin"))
        if session and lean:
            lines.append(
                f"- {server}: a lean async echo costs the server {1e6 / lean:.0f} µs per round "
                f"trip; Channels' session wrapper in AuthMiddlewareStack adds {session:.1f} µs to "
                f"every send ({session * lean / 1e4:.0f}% of it), the project's limiter "
                "well under 1 µs."
            )
    for r in results.get("connections", []):
        lines.append(
            f"- {r['server']} {r['path']}: {r['sockets']:,} idle sockets, "
            f"{r['kib_per_socket']:.0f} KiB each, {r['per_second']:,.0f} new connections/s."
        )
    for r in results.get("fanout", []):
        if r["members"] == max(f["members"] for f in results["fanout"]):
            lines.append(
                f"- {r['layer']}, {r['processes']} process(es): a broadcast reaches "
                f"{r['members']:,} sockets in {r['last_p50_ms']:.0f} ms (median; per-socket "
                f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms)."
            )
    return "\n".join(lines)


def tables(results: dict[str, Any]) -> str:
    """Every table the run has data for, with headings."""
    s = results["settings"]
    parts = [
        f"Echo: {s['connections']} connections, {s['payload_bytes']}-byte text, closed loop, "
        f"{s['seconds']:g} s measured per row, in {s['repeats']} slices interleaved with the "
        f"other rows of its style (each after {s['warmup']:g} s of warm-up; the rate is the "
        "median slice, the percentiles are over every round trip). Servers run with "
        f"WS_LIMITS='{_json(s['ws_limits'])}' (rate limit lifted; the limiter still runs). "
        f"Server pinned to core {s['server_core']}, client to core {s['client_core']}.",
    ]
    if results.get("echo") and all(k in results for k in ("connections", "fanout")):
        parts += ["## In short", summary(results)]
    if "servers" in results:
        parts += ["## Which server? Side by side", servers_table(results)]
    if "echo" in results:
        parts += ["## Echo round trips", echo_table(results)]
        if any(r["kind"] == "bare + NoDatabaseMixin" for r in results["echo"]):
            parts += ["## Optimisation: async dispatch without the database hop",
                      optimisation_table(results)]  # fmt: skip
    if results.get("syncsend"):
        parts += ["## Optimisation: sync sends that do not wait for the event loop",
                  sync_send_table(results)]  # fmt: skip
    if "connections" in results:
        parts += ["## Idle connections", connections_table(results)]
    if "fanout" in results:
        parts += [
            "## Fan-out (group_send to N sockets, daphne)",
            FANOUT_NOTE,
            fanout_table(results),
        ]
    elif results.get("gcfanout"):
        parts += ["## Fan-out: garbage collector thresholds", FANOUT_NOTE,
                  fanout_table({"fanout": results["gcfanout"]})]  # fmt: skip
    if "profile" in results:
        parts += ["## Where the server's time goes (py-spy, daphne, raw echo)",
                  profile_table(results)]  # fmt: skip
    if "tax" in results:
        parts += [
            "## The project's own layers, per message (in-process timing)",
            "Not timed: `JournalMiddleware`, which passes a connection that did not opt in"
            " straight to the router at connect and is not on its message path at all.\n\n"
            + table(["layer", "µs per message"],
                    [[r["layer"], f"{r['us']:.2f}"] for r in results["tax"]]),
        ]  # fmt: skip
    if "orm" in results:
        parts += ["## The ORM from each style (a note saved, the latest read back)",
                  orm_table(results)]  # fmt: skip
    if "cluster" in results:
        from bench import cluster  # it imports this module

        parts.append(cluster.section(results["cluster"]).rstrip("\n"))
    if "load" in results:
        parts.append(load_sentence(results["load"]))
    parts.append(f"Wall time: {results['wall_seconds']:.0f} s.")
    return "\n\n".join(parts)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(", ", ": "))


def chart(results: dict[str, Any], path: Path) -> None:
    """Echo rates per server (with ceilings) and fan-out latency, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    echo = results.get("echo", [])
    server_names = [s for s in dict.fromkeys(r["server"] for r in echo) if s != "websockets"]
    side_by_side = results.get("servers", [])
    panels = max(len(server_names) + (1 if results.get("fanout") else 0) + bool(side_by_side), 1)
    columns = min(panels, 3)
    grid_rows = -(-panels // columns)
    fig, grid = plt.subplots(
        grid_rows, columns, figsize=(6.5 * columns, 5.5 * grid_rows), squeeze=False
    )
    axes = [[ax for row in grid for ax in row]]
    for ax in axes[0][panels:]:
        ax.set_visible(False)
    websockets = next((r["rate"] for r in echo if r["server"] == "websockets"), None)
    kinds = [("bare Channels", "#9aa5b1"), ("project", "#2f6fb0"),
             ("bare + NoDatabaseMixin", "#e08a1e"),
             ("bare + QueuedSendMixin", "#8a4fb0")]  # fmt: skip
    if side_by_side:
        ax = axes[0].pop(0)
        names = list(dict.fromkeys(r["server"] for r in side_by_side))
        rows = [("ceiling", "bare ASGI", "#2a9d55"), ("project", "raw sync", "#9aa5b1"),
                ("bare Channels", "raw async", "#2f6fb0"),
                ("project", "raw async", "#e08a1e")]  # fmt: skip
        height = 0.8 / len(rows)
        for k, (kind, style, colour) in enumerate(rows):
            values = {r["server"]: r["rate"] for r in side_by_side
                      if (r["kind"], r["style"]) == (kind, style)}  # fmt: skip
            label = {"ceiling": "bare ASGI echo", "bare Channels": "stock async consumer"}.get(
                kind, "sync consumer" if style == "raw sync" else "async + NoDatabaseMixin"
            )
            ax.barh([i + k * height for i in range(len(names))], [values[n] for n in names],
                    height, label=label, color=colour)  # fmt: skip
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))], names)
        ax.invert_yaxis()
        ax.set_xlabel("echo round trips per second (higher is better)")
        ax.set_title("the four servers side by side (interleaved, under load)")
        ax.legend(fontsize=8, loc="best")
    for ax, server in zip(axes[0], server_names, strict=False):
        styles = [s for s in dict.fromkeys(r["style"] for r in echo if r["server"] == server)
                  if s != "bare ASGI"]  # fmt: skip
        height = 0.8 / len(kinds)
        for k, (kind, colour) in enumerate(kinds):
            values = {r["style"]: r["rate"] for r in echo
                      if r["server"] == server and r["kind"] == kind}  # fmt: skip
            ys = [i + k * height for i, s in enumerate(styles) if s in values]
            ax.barh(ys, [values[s] for s in styles if s in values], height, label=kind,
                    color=colour)  # fmt: skip
        asgi = next((r["rate"] for r in echo if r["server"] == server and r["kind"] == "ceiling"),
                    None)  # fmt: skip
        if asgi:
            ax.axvline(asgi, color="#2a9d55", linestyle="--", label=f"bare ASGI ({asgi:,.0f})")
        if websockets:
            ax.axvline(websockets, color="#b03030", linestyle=":",
                       label=f"bare websockets ({websockets:,.0f})")  # fmt: skip
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(styles))], styles)
        ax.invert_yaxis()
        ax.set_xlabel("echo round trips per second (higher is better)")
        ax.set_title(f"{server}: {results['settings']['connections']} connections, 32 B text")
        ax.legend(fontsize=8, loc="best")
    if results.get("fanout"):
        ax = axes[0][len(server_names)]
        rows = results["fanout"]
        labels = [f"{SHORT_LAYER.get(r['layer'], r['layer'])}\nN={r['members']:,}" for r in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["p50_ms"] for r in rows], 0.4, label="p50",
               color="#2f6fb0")  # fmt: skip
        ax.bar([x + 0.2 for x in xs], [r["p99_ms"] for r in rows], 0.4, label="p99",
               color="#e08a1e")  # fmt: skip
        ax.set_xticks(list(xs), labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("broadcast delivery latency, ms (log; lower is better)")
        ax.set_title("fan-out: one group_send to N sockets (daphne)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_docs(results: dict[str, Any], text: str) -> None:
    """
    docs/benchmarks.md (tables, machine, its load, command) and docs/benchmarks.png, the whole
    page from this one run: nothing of an earlier run, taken under other conditions, is kept.
    """
    DOCS.mkdir(exist_ok=True)
    chart(results, DOCS / "benchmarks.png")
    m = results["machine"]
    versions = ", ".join(f"{name} {v}" for name, v in m["versions"].items())
    doc = f"""# Benchmarks

What each consumer style, server and channel layer costs on one machine, measured in one run
with the ceilings beside them, so the ratios hold even where the absolute figures do not.
Reproduce with `{results["command"]}` (it starts and stops every server itself; this run
took {results["wall_seconds"]:.0f} s; the code is in `bench/`). Every figure on this page comes
from that one run.

- Machine: {m["cores"]} cores, {m["cpu"]}, {m["os"]}, Python {m["python"]}.
- {load_sentence(results["load"])}
- Versions: {versions}.
- Method: every server serves `bench.asgi:application`: the project's own routes (`/ws/...`,
  with origin check, auth, journal and limiter) plus bare references without middleware
  (`/bench/...`): a plain ASGI echo, minimal Channels consumers of each style, the same with
  `apps.core.consumers.NoDatabaseMixin` (async) or `QueuedSendMixin` (sync), and a fan-out
  consumer. One `websockets` echo server is the ceiling no ASGI server can beat. Every server
  runs with the flags of `make run` (tools/servers.py's `SERVER_FLAGS`; daphne:
  `{results.get("daphne_args") or "the table's"}`), one process each; uvicorn, hypercorn and
  granian on uvloop. The client is one uvloop process using the `websockets` client, without
  compression; its CPU is in every table (100% would mean the client, not the server, was the
  limit).

![Echo round trips per consumer style and server, and fan-out latency](benchmarks.png)

{text}
"""
    (DOCS / "benchmarks.md").write_text(doc)
