"""
`make soak`: many sockets on every echo endpoint of one daphne for a while, nothing lost.

It starts daphne on the project's own application (nothing lifted: each socket sends well
within the per-connection rate limit), holds `--sockets` sockets spread evenly over the six
echo endpoints, and has each send sequence-numbered messages at `--rate` per second (text and
bytes alternately where the endpoint echoes both). At the end it waits for the last echoes and
reports, per endpoint, messages lost, duplicated, reordered or changed (the target is zero),
and daphne's memory before, during and after.

    python -m bench.soak                     # 1,000 sockets for 2 minutes
    python -m bench.soak --seconds 20 --sockets 200
    python -m bench.soak --chaos 0.2 --seconds 60 --sockets 500    # make soak SOAK_MODE=chaos

With `--chaos F`, a fraction F of the sockets are hostile instead (tools/hostile.py): each, once a
second, connects, sends, and drops the connection abruptly (a TCP reset mid-message, mid-
handshake, or right behind a close it asked for), then does it again. The steady sockets must
still lose, duplicate and reorder nothing; and once everything is closed, the server's live
consumer instances and asyncio tasks must return to where they were before the first socket
(daphne runs with SHOWCASE_STATS=1 for that: apps/core/stats.py), and its memory must stay
flat while the chaos goes on. Any run fails if daphne's log holds a traceback.
"""

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.request import urlopen

import uvloop
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench import load
from bench.report import table
from tools import hostile, servers

# (path, speaks JSON): the six echo endpoints of design.md.
ENDPOINTS = [
    ("/ws/sc/", False),
    ("/ws/sc/generic/", False),
    ("/ws/sc/json/", True),
    ("/ws/ac/", False),
    ("/ws/ac/generic/", False),
    ("/ws/ac/json/", True),
]
DRAIN_SECONDS = 10.0
# How the chaos sockets leave, each cycle one of these, at random. Each sends a few messages at
# most: the chaos is in how the sockets go, not in how much they send.
CHAOS = {
    "reset mid-message": hostile.reset_mid_message,
    "reset mid-handshake": hostile.reset_mid_handshake,
    "send past the close": functools.partial(hostile.send_past_close, count=5),
}
# After the run, how long the server may take to end the consumers of closed sockets.
SETTLE_SECONDS = 30.0
# Memory is flat if the last sample while sending is within this of the first: a leak of one
# consumer per chaos cycle (about 40 KiB, 100 cycles a second) would be several times over it.
FLAT_RSS_GROWTH = 0.2


def arguments() -> argparse.Namespace:
    """Command-line options; the defaults are what `make soak` runs."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[1]
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to send")
    parser.add_argument("--sockets", type=int, default=1000, help="sockets held, in total")
    parser.add_argument("--rate", type=float, default=1.0, help="messages per socket per second")
    parser.add_argument("--daphne-args", default="", help="daphne's flags, as one string")
    parser.add_argument(
        "--chaos",
        type=float,
        default=0.0,
        help="fraction of the sockets that drop abruptly and reconnect every second",
    )
    return parser.parse_args()


@dataclass
class Stream:
    """One soak socket: its endpoint, its numbered stream and the send times still pending."""

    path: str
    speaks_json: bool
    ws: ClientConnection
    sequence: load.Sequence = field(default_factory=load.Sequence)
    pending: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    sending: bool = True
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    closed_early: bool = False

    def message(self, number: int) -> str | bytes:
        """What to send as message `number`: JSON, or text and bytes alternately."""
        if self.speaks_json:
            return json.dumps({"type": "echo", "data": number})
        return str(number) if number % 2 == 0 else str(number).encode()

    def number(self, reply: str | bytes) -> int | None:
        """The number an echo carries, or None if it is not the echo of a message we sent."""
        try:
            if self.speaks_json:
                content = json.loads(reply)
                return content["data"] if content.get("type") == "echo" else None
            number = int(reply)
            return number if isinstance(reply, str) == (number % 2 == 0) else None
        except (ValueError, TypeError, KeyError):
            return None

    async def send_for(self, seconds: float, rate: float) -> None:
        """Send numbered messages at `rate` per second, starting at a random phase."""
        interval = 1 / rate
        deadline = time.monotonic() + seconds
        await asyncio.sleep(random.uniform(0, interval))
        next_at = time.monotonic()
        while next_at < deadline:
            number = self.sequence.sent
            self.pending[number] = time.perf_counter()
            try:
                await self.ws.send(self.message(number))
            except ConnectionClosed:
                self.pending.pop(number, None)
                break
            self.sequence.sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        self.sending = False
        if not self.pending:
            self.drained.set()

    async def receive(self) -> None:
        """Account for every echo until the socket closes."""
        try:
            async for reply in self.ws:
                arrived = time.perf_counter()
                number = self.number(reply)
                if number is None:
                    self.sequence.wrong += 1
                    continue
                self.sequence.arrived(number)
                if (sent := self.pending.pop(number, None)) is not None:
                    self.latencies.append(arrived - sent)
                if not self.sending and not self.pending:
                    self.drained.set()
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed_early = True


def server_stats(server: servers.ServerProcess) -> dict[str, Any]:
    """The server's own figures (apps/core/stats.py): instances, tasks, threads, memory."""
    with urlopen(server.http_url + "/stats/", timeout=10) as response:  # noqa: S310
        return json.load(response)


def comparable(stats: dict[str, Any]) -> tuple[int, int]:
    """What must return to its baseline: live socket consumers and asyncio tasks."""
    return stats["instances"].get("websocket", 0), stats["tasks"]


async def settled(server: servers.ServerProcess, baseline: dict[str, Any]) -> dict[str, Any]:
    """The server's figures once they are back at the baseline, or at the deadline."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        stats = await asyncio.to_thread(server_stats, server)
        if comparable(stats) <= comparable(baseline) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.5)


async def chaos_socket(port: int, index: int, stop: asyncio.Event, cycles: Counter) -> None:
    """One hostile socket: connect, misbehave, reset; again every second until `stop`."""
    path, speaks_json = ENDPOINTS[index % len(ENDPOINTS)]
    kind = "json" if speaks_json else "echo"
    await asyncio.sleep(random.uniform(0, 1))
    while not stop.is_set():
        started = time.monotonic()
        name, behaviour = random.choice(list(CHAOS.items()))
        try:
            await asyncio.wait_for(behaviour(port, path, kind, ""), 10)
            cycles[name] += 1
        except (OSError, TimeoutError, hostile.HandshakeRefused) as error:
            cycles[f"{name} (failed: {error or type(error).__name__})"[:90]] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, 1 - (time.monotonic() - started)))


async def soak(args: argparse.Namespace, server: servers.ServerProcess) -> dict[str, Any]:
    """Hold the sockets, send, drain, close; return every figure."""
    pid = server.process.pid
    memory: dict[str, float] = {"before": load.rss(pid)}
    chaotic = round(args.sockets * args.chaos)
    steady = args.sockets - chaotic
    baseline = await asyncio.to_thread(server_stats, server) if chaotic else {}
    urls = [ENDPOINTS[i % len(ENDPOINTS)] for i in range(steady)]
    started = time.perf_counter()
    sockets = await load.open_sockets(server.ws_url + path for path, _ in urls)
    connect_seconds = time.perf_counter() - started
    streams = [Stream(path, json_, ws) for (path, json_), ws in zip(urls, sockets, strict=True)]
    memory["connected"] = load.rss(pid)
    load.settle_gc()
    receivers = [asyncio.create_task(stream.receive()) for stream in streams]
    during: list[int] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(5)
            during.append(load.rss(pid))

    sampler = asyncio.create_task(sample())
    meter = load.CpuMeter()
    server_meter = load.CpuMeter(pid)
    meter.start()
    server_meter.start()
    stop_chaos = asyncio.Event()
    cycles: Counter[str] = Counter()
    chaos = [
        asyncio.create_task(chaos_socket(server.port, i, stop_chaos, cycles))
        for i in range(chaotic)
    ]
    await asyncio.gather(*(stream.send_for(args.seconds, args.rate) for stream in streams))
    stop_chaos.set()
    await asyncio.gather(*chaos)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(stream.drained.wait() for stream in streams)), DRAIN_SECONDS
        )
    meter.stop()
    server_meter.stop()
    sampler.cancel()
    memory["during (max)"] = max(during, default=load.rss(pid))
    memory["end of sending"] = load.rss(pid)
    for stream in streams:
        stream.closing = True
    await load.close_sockets(sockets)
    await asyncio.gather(*receivers)
    await asyncio.sleep(2)
    after = await settled(server, baseline) if chaotic else {}
    memory["after close"] = load.rss(pid)
    return {
        "streams": streams,
        "memory": memory,
        "samples": during,
        "connect_seconds": connect_seconds,
        "client_cpu": meter.percent,
        "server_cpu": server_meter.percent,
        "chaotic": chaotic,
        "cycles": cycles,
        "baseline": baseline,
        "after": after,
    }


def stream_row(label: str, streams: list[Stream]) -> list[str]:
    """One line of the soak table: counts over these streams, echo latency, early closes."""
    latencies = [t for s in streams for t in s.latencies]
    counts = [
        len(streams),
        sum(s.sequence.sent for s in streams),
        sum(len(s.sequence.seen) for s in streams),
        sum(s.sequence.lost for s in streams),
        sum(s.sequence.duplicated for s in streams),
        sum(s.sequence.reordered for s in streams),
        sum(s.sequence.wrong for s in streams),
    ]
    return [
        label,
        *(f"{c:,}" for c in counts),
        f"{1000 * load.percentile(latencies, 50):.1f}",
        f"{1000 * load.percentile(latencies, 99):.1f}",
        str(sum(s.closed_early for s in streams)),
    ]


def chaos_checks(figures: dict[str, Any]) -> tuple[list[str], bool]:
    """The chaos run's tables (cycles; the server before and after) and whether they pass."""
    baseline, after, samples = figures["baseline"], figures["after"], figures["samples"]
    cycle_rows = [[name, f"{count:,}"] for name, count in sorted(figures["cycles"].items())]
    cycle_rows.append(["all", f"{sum(figures['cycles'].values()):,}"])
    growth = (samples[-1] - samples[0]) / samples[0] if len(samples) > 1 else 0.0
    rows = [
        [
            "live socket consumers",
            str(baseline["instances"].get("websocket", 0)),
            str(after["instances"].get("websocket", 0)),
        ],
        ["asyncio tasks", str(baseline["tasks"]), str(after["tasks"])],
        ["threads", str(baseline["threads"]), str(after["threads"])],
        ["RSS MiB", f"{baseline['rss'] / 2**20:.1f}", f"{after['rss'] / 2**20:.1f}"],
    ]
    no_leak = comparable(after) <= comparable(baseline)
    flat = growth <= FLAT_RSS_GROWTH
    lines = [
        table(["chaos cycle (connect, misbehave, reset)", "count"], cycle_rows),
        table(["daphne (SHOWCASE_STATS)", "before the first socket", "after the run"], rows),
        f"Consumers and tasks back to the baseline: {'yes' if no_leak else 'NO: LEAK'}. "
        f"RSS while sending, first to last sample ({len(samples)} samples, every 5 s): "
        f"{samples[0] / 2**20 if samples else 0:.1f} -> {samples[-1] / 2**20 if samples else 0:.1f}"
        f" MiB ({100 * growth:+.1f}%, flat if within {100 * FLAT_RSS_GROWTH:.0f}%): "
        f"{'flat' if flat else 'NOT FLAT'}.",
    ]
    return lines, no_leak and flat


def report(
    args: argparse.Namespace, figures: dict[str, Any], wall: float, tracebacks: list[str]
) -> tuple[str, bool]:
    """The soak tables, and whether nothing was lost, duplicated, reordered or changed."""
    groups = [(path, [s for s in figures["streams"] if s.path == path]) for path, _ in ENDPOINTS]
    rows = [stream_row(path, streams) for path, streams in groups]
    rows.append(stream_row("all", figures["streams"]))
    closed_early = sum(s.closed_early for s in figures["streams"])
    totals = [sum(getattr(s.sequence, name) for s in figures["streams"])
              for name in ("lost", "duplicated", "reordered", "wrong")]  # fmt: skip
    header = ["endpoint", "sockets", "sent", "echoed", "lost", "duplicated", "reordered",
              "changed", "p50 ms", "p99 ms", "closed early"]  # fmt: skip
    memory = figures["memory"]
    memory_rows = [[moment, f"{value / 2**20:.1f}"] for moment, value in memory.items()]
    intact = totals == [0, 0, 0, 0] and closed_early == 0
    chaotic = figures["chaotic"]
    chaos_lines, chaos_ok = chaos_checks(figures) if chaotic else ([], True)
    clean = intact and chaos_ok and not tracebacks
    steady = "steady " if chaotic else ""
    verdicts = [
        f"{steady}sockets: "
        + ("nothing lost, duplicated, reordered or changed" if intact else "FAILED"),
        f"tracebacks in daphne's log: {len(tracebacks)}",
    ]
    text = "\n\n".join(
        [
            f"Soak: {args.sockets:,} sockets on daphne across {len(ENDPOINTS)} echo endpoints"
            + (
                f", {chaotic:,} of them chaotic (--chaos {args.chaos:g}), the rest steady"
                if chaotic
                else ""
            )
            + f"; {args.rate:g} message/s each steady socket for {args.seconds:g} s (within the "
            f"rate limits, nothing lifted); {figures['connect_seconds']:.1f} s to connect them. "
            f"Client CPU {figures['client_cpu']:.0f}%, daphne CPU {figures['server_cpu']:.0f}% "
            "of one core while sending.",
            table(header, rows),
            table(["daphne RSS", "MiB"], memory_rows),
            *chaos_lines,
            *tracebacks,
            f"Result: {'PASSED' if clean else 'FAILED'} ({'; '.join(verdicts)})."
            f" Wall time {wall:.0f} s.",
        ]
    )
    return text, clean


def main() -> None:
    """Start daphne, soak it, print the tables; exit 1 unless every check passed."""
    args = arguments()
    os.chdir(servers.BASE_DIR)
    server_core, client_core = load.cores()
    load.pin(os.getpid(), client_core)
    started = time.perf_counter()
    # The chaos run reads the server's insides (apps/core/stats.py), off otherwise. Every socket
    # comes from this one address: the cap on open sockets per address is lifted.
    env = servers.server_env(
        SHOWCASE_STATS="1" if args.chaos else "0",
        WS_LIMITS=json.dumps({"connections": {"per_user": 0, "per_address": 0}}),
    )
    server = servers.start_daphne(
        env, extra_args=tuple(shlex.split(args.daphne_args)), name="soak-daphne"
    )
    load.pin(server.process.pid, server_core)
    with servers.running(server):
        figures = uvloop.run(soak(args, server))
    tracebacks = server.tracebacks()  # stopped: the whole log, shutdown included
    text, clean = report(args, figures, time.perf_counter() - started, tracebacks)
    print(text)
    servers.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (servers.ARTIFACTS / "soak.txt").write_text(text + "\n")
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
