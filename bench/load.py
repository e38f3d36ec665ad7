"""
The load generator that `make bench` and `make soak` share: opening many sockets, closed-loop
echo round trips, sequence-numbered streams, broadcasts, and the bookkeeping around them.

The client is one asyncio process on uvloop using the `websockets` client without compression,
pinned to its own core where the OS allows; it measures its own CPU so every report can say
whether the client, rather than the server, was the limit.
"""

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil
from websockets.asyncio.client import ClientConnection, connect

from tools.servers import ServerProcess, page_origin

# Project endpoints check the Origin header (AllowedHostsOriginValidator).


# ---------------------------------------------------------------------------- processes
def cores() -> tuple[int | None, int | None]:
    """(server core, client core): two different cores, or (None, None) where we cannot pin."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[-1]


def pin(pid: int, core: int | None) -> bool:
    """
    Pin every thread of a process, and of its children (granian serves from a worker
    process), to one core; threads they start later inherit it.
    """
    if core is None:
        return False
    try:
        children = [child.pid for child in psutil.Process(pid).children(recursive=True)]
        for process in (pid, *children):
            for tid in os.listdir(f"/proc/{process}/task"):
                os.sched_setaffinity(int(tid), {core})
    except (OSError, psutil.Error):
        return False
    return True


def wait_for_worker(server: ServerProcess, timeout: float = 15.0) -> None:
    """Granian's socket listens before its worker process exists: wait for the worker."""
    if server.command[1:3] != ["-m", "granian"]:
        return
    deadline = time.monotonic() + timeout
    while not psutil.Process(server.process.pid).children():
        if time.monotonic() > deadline:
            raise TimeoutError("granian started no worker")
        time.sleep(0.05)


def serving_pid(server: ServerProcess) -> int:
    """The process that holds the sockets: granian's worker, or the server process itself."""
    children = psutil.Process(server.process.pid).children()
    return children[0].pid if len(children) == 1 else server.process.pid


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    return psutil.Process(pid).memory_info().rss


class CpuMeter:
    """CPU time a process spent between `start()` and `stop()`, as % of one core."""

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid)
        self.percent = 0.0

    def start(self) -> None:
        """Begin the window."""
        self.cpu = sum(self.process.cpu_times()[:2])
        self.wall = time.perf_counter()

    def stop(self) -> float:
        """End the window and return the percentage."""
        cpu = sum(self.process.cpu_times()[:2]) - self.cpu
        self.percent = 100 * cpu / max(time.perf_counter() - self.wall, 1e-9)
        return self.percent


def settle_gc() -> None:
    """
    Collect now and move what survives out of the collector's sight (`gc.freeze`): with
    thousands of sockets open, a full collection would otherwise pause the client for tens of
    milliseconds in the middle of a measurement and show up as server latency.
    """
    gc.collect()
    gc.freeze()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# ---------------------------------------------------------------------------- sockets
async def open_socket(url: str) -> ClientConnection:
    """One client socket, as a browser on this origin would open it (minus compression)."""
    return await connect(
        url, origin=page_origin(url), compression=None, max_size=None, open_timeout=30
    )


async def open_sockets(
    urls: Iterable[str], concurrency: int = 50, tolerant: bool = False
) -> list[ClientConnection]:
    """
    Open one socket per URL, at most `concurrency` handshakes in flight. A failed handshake
    raises, unless `tolerant`: then the sockets that did open are returned.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> ClientConnection:
        async with gate:
            return await open_socket(url)

    opened = await asyncio.gather(*(one(url) for url in urls), return_exceptions=tolerant)
    return [ws for ws in opened if isinstance(ws, ClientConnection)]


async def close_sockets(
    sockets: Iterable[ClientConnection], concurrency: int | None = None
) -> None:
    """Close them all, at most `concurrency` at a time, ignoring sockets already gone."""
    gate = asyncio.Semaphore(concurrency) if concurrency else contextlib.nullcontext()

    async def one(ws: ClientConnection) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)

    await asyncio.gather(*(one(ws) for ws in sockets))


# ---------------------------------------------------------------------------- echo
@dataclass
class EchoResult:
    """Closed-loop echo figures over the measured window."""

    round_trips: int
    seconds: float
    latencies: list[float]
    client_cpu: float
    errors: int = 0

    @property
    def rate(self) -> float:
        """Round trips per second."""
        return self.round_trips / self.seconds

    @property
    def p50_ms(self) -> float:
        """Median round-trip time in milliseconds."""
        return 1000 * percentile(self.latencies, 50)

    @property
    def p99_ms(self) -> float:
        """99th percentile round-trip time in milliseconds."""
        return 1000 * percentile(self.latencies, 99)


async def echo_closed_loop(
    url: str, payload: str, connections: int, warmup: float, seconds: float
) -> EchoResult:
    """
    `connections` sockets each send `payload`, wait for its echo and send again; round trips
    completing during the `seconds` after `warmup` are counted and timed.
    """
    sockets = await open_sockets([url] * connections)
    settle_gc()
    meter = CpuMeter()
    started = time.perf_counter()
    window_start, window_end = started + warmup, started + warmup + seconds
    latencies: list[float] = []
    errors = 0

    async def loop(ws: ClientConnection) -> None:
        nonlocal errors
        while True:
            sent = time.perf_counter()
            if sent >= window_end:
                return
            await ws.send(payload)
            reply = await ws.recv()
            done = time.perf_counter()
            # An empty reply, or the JSON endpoints' error envelope (e.g. database_error).
            if not reply or reply.startswith('{"type": "error"'):
                errors += 1
            if window_start <= sent and done <= window_end:
                latencies.append(done - sent)

    async def window() -> None:
        await asyncio.sleep(window_start - time.perf_counter())
        meter.start()
        await asyncio.sleep(window_end - time.perf_counter())
        meter.stop()

    try:
        await asyncio.gather(window(), *(loop(ws) for ws in sockets))
    finally:
        await close_sockets(sockets)
    return EchoResult(len(latencies), seconds, latencies, meter.percent, errors)


# ---------------------------------------------------------------------------- connections
@dataclass
class ConnectResult:
    """Idle sockets held by one server process."""

    sockets: int
    failed: int
    seconds: float
    rss_before: int
    rss_after: int
    client_cpu: float

    @property
    def per_second(self) -> float:
        """New connections per second."""
        return self.sockets / self.seconds

    @property
    def bytes_per_socket(self) -> float:
        """Server memory per idle socket."""
        return (self.rss_after - self.rss_before) / max(self.sockets, 1)


async def hold_idle(url: str, count: int, server_pid: int, settle: float = 1.0) -> ConnectResult:
    """Open `count` idle sockets, timing the handshakes and the server's memory growth."""
    await asyncio.sleep(settle)
    before = rss(server_pid)
    meter = CpuMeter()
    meter.start()
    started = time.perf_counter()
    sockets = await open_sockets([url] * count, tolerant=True)
    elapsed = time.perf_counter() - started
    meter.stop()
    try:
        await asyncio.sleep(settle)
        after = rss(server_pid)
    finally:
        await close_sockets(sockets)
    return ConnectResult(len(sockets), count - len(sockets), elapsed, before, after, meter.percent)


# ---------------------------------------------------------------------------- fan-out
@dataclass
class FanoutResult:
    """Broadcast delivery: every (broadcast, member) latency, and the time to the last member."""

    members: int
    deliveries: list[float]
    to_last: list[float]
    missing: int
    client_cpu: float


async def broadcast(
    trigger_url: str, member_urls: list[str], rounds: int, wait: float = 10.0
) -> FanoutResult:
    """
    Open the members (sockets that joined the group), then send `rounds` broadcasts through
    one more socket, one at a time, timing each member's copy from the moment it was sent.
    Broadcast 0 only warms up (first use of the layer's connections) and is not counted.
    """
    return (await broadcasts_side_by_side([(trigger_url, member_urls)], rounds, wait))[0]


async def broadcasts_side_by_side(
    groups: list[tuple[str, list[str]]], rounds: int, wait: float = 10.0
) -> list[FanoutResult]:
    """
    `broadcast` for several groups (trigger URL, member URLs) at once, taking turns: round n
    goes to each group in turn, so that noise on the machine hits them alike. The groups must
    not share members (different server processes, or channel layers).
    """
    members = [await open_sockets(urls) for _, urls in groups]
    triggers = [await open_socket(url) for url, _ in groups]
    settle_gc()
    rounds += 1
    arrivals = [[[] for _ in range(rounds)] for _ in groups]
    complete = [[asyncio.Event() for _ in range(rounds)] for _ in groups]

    async def listen(group: int, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                got = arrivals[group][int(message)]
                got.append(time.perf_counter())
                if len(got) == len(members[group]):
                    complete[group][int(message)].set()

    listeners = [
        asyncio.create_task(listen(group, ws))
        for group, sockets in enumerate(members)
        for ws in sockets
    ]
    results = [FanoutResult(len(sockets), [], [], 0, 0.0) for sockets in members]
    meter = CpuMeter()
    meter.start()
    try:
        for number in range(rounds):
            for group, result in enumerate(results):
                await asyncio.sleep(0.05)  # let the last broadcast's writes drain
                sent = time.perf_counter()
                await triggers[group].send(str(number))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(complete[group][number].wait(), wait)
                got = arrivals[group][number]
                if number == 0:
                    continue
                result.missing += result.members - len(got)
                result.deliveries.extend(t - sent for t in got)
                if got:
                    result.to_last.append(max(got) - sent)
    finally:
        meter.stop()
        for result in results:
            result.client_cpu = meter.percent
        # All at once: each close makes a member leave its group over the channel layer, and a
        # thousand leaving together must wait their turn for the process's bounded Redis
        # connections (apps/core/redis_clients.py), not fail with a traceback each.
        await close_sockets(triggers + [ws for sockets in members for ws in sockets])
        for task in listeners:
            task.cancel()
    return results


# ---------------------------------------------------------------------------- sequences
@dataclass
class Sequence:
    """
    One socket's numbered stream: what was sent, and how the echoes came back.

    An echo numbered below the next expected one is a duplicate if that number came back
    before, otherwise a late (reordered) arrival; numbers never seen by the end are lost.
    """

    sent: int = 0
    expected: int = 0
    seen: set[int] = field(default_factory=set)
    duplicated: int = 0
    reordered: int = 0
    wrong: int = 0

    def arrived(self, number: int) -> None:
        """Account for one echo carrying `number`."""
        if number in self.seen:
            self.duplicated += 1
            return
        self.seen.add(number)
        if number < self.expected:
            self.reordered += 1
        elif number > self.expected:
            # Skipped numbers are lost unless they turn up later (and count as reordered).
            self.expected = number + 1
        else:
            self.expected += 1

    @property
    def lost(self) -> int:
        """Messages sent whose echo never came back."""
        return self.sent - len(self.seen)
