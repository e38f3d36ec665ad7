"""
`make bench-cluster`: what the deployment shape of `make cluster` costs and buys, measured.

    python -m bench.cluster                      # about two minutes
    python -m bench.cluster --seconds 1 --idle 200 --members 100 --rounds 5

Three clusters' worth of processes run at once, each idle while another is measured: a cluster
with 1 daphne, one with 2 (nginx, supervisord, redis-server each, as tools/servers.py starts
them for `make cluster`), and a lone daphne on TCP on the same Redis, for "without nginx". All
serve `bench.asgi:application` (the project plus bare references) with the rate limits lifted.
Echo rows are measured in interleaved slices, so noise on a shared machine hits them alike:
compare ratios within one run. It prints; `make bench` measures the same as one of its sections
and puts it into docs/benchmarks.md, which one whole run writes.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from bench import load, report
from bench.__main__ import NO_RATE_LIMIT, progress, run
from tools import servers

PATH = "/ws/ac/generic/"  # AsyncWebsocketConsumer: the project's route, middleware included
PAYLOAD = "x" * 32
FANOUT = "/bench/fanout/"


def arguments() -> argparse.Namespace:
    """Command-line options; the defaults are what `make bench-cluster` measures."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--connections", type=int, default=50, help="echo concurrency")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per echo row")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved slices per row")
    parser.add_argument("--idle", type=int, default=2000, help="sockets opened through nginx")
    parser.add_argument("--members", type=int, default=1000, help="broadcast recipients")
    parser.add_argument("--rounds", type=int, default=20, help="broadcasts")
    parser.add_argument("--daphne-args", default="", help="daphne's flags, as one string")
    return parser.parse_args()


@contextlib.contextmanager
def deployment(args: argparse.Namespace, workdir: Path) -> Iterator[dict[str, Any]]:
    """A 1-daphne cluster, a 2-daphne cluster and a lone daphne on the first one's Redis."""
    env = servers.server_env(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_PATH=str(workdir / "db.sqlite3"),
        STATIC_MANIFEST="1",
        STATIC_ROOT=str(workdir / "static"),
        WS_LIMITS=json.dumps(NO_RATE_LIMIT),
    )
    for command in (
        ("migrate", "--no-input", "-v", "0"),
        ("collectstatic", "--no-input", "-v", "0"),
    ):
        subprocess.run(
            [sys.executable, "manage.py", *command], env=env, check=True, cwd=servers.BASE_DIR
        )
    flags = tuple(shlex.split(args.daphne_args))
    started: list[Any] = []
    try:
        for workers in (1, 2):
            progress(f"starting a cluster with {workers} daphne")
            started.append(
                servers.start_cluster(
                    workers,
                    run_dir=workdir / f"cluster{workers}",
                    env=env,
                    daphne_args=flags,
                    static_root=workdir / "static",
                    app="bench.asgi:application",
                )
            )
        one, two = started
        # "Without nginx": daphne on TCP, as `make run` serves, on the same Redis as `one`.
        lone = servers.start_daphne(
            {**env, **one.redis_env(), "STATIC_MANIFEST": "0"},
            extra_args=flags,
            name="bench-lone-daphne",
            app="bench.asgi:application",
        )
        started.append(lone)
        yield {"one": one, "two": two, "lone": lone}
    finally:
        for server in reversed(started):
            server.stop()
    # A bench run that leaves a traceback in any server's log has measured a failure.
    logs = {name: text for cluster in (one, two) for name, text in cluster.logs().items()}
    logs[lone.log_path.name] = lone.log()
    broken = sorted(name for name, text in logs.items() if "Traceback" in text)
    if broken:
        raise SystemExit(f"tracebacks in the servers' logs: {', '.join(broken)}")


def echo_rows(args: argparse.Namespace, procs: dict[str, Any]) -> list[dict[str, Any]]:
    """Echo round trips through nginx (1 and 2 daphne) and straight to daphne, interleaved."""
    entries = [
        ("daphne alone (TCP)", 1, procs["lone"].ws_url + PATH),
        ("nginx -> 1 daphne", 1, procs["one"].ws_url + PATH),
        ("nginx -> 2 daphne", 2, procs["two"].ws_url + PATH),
    ]
    slices: dict[int, list[load.EchoResult]] = {i: [] for i in range(len(entries))}
    for _ in range(args.repeats):
        for i, (name, _, url) in enumerate(entries):
            progress(f"echo {name}")
            window = args.seconds / args.repeats
            slices[i].append(
                run(load.echo_closed_loop(url, PAYLOAD, args.connections, 0.3, window))
            )
    rows = []
    for i, (name, workers, _) in enumerate(entries):
        results = slices[i]
        latencies = [t for r in results for t in r.latencies]
        rows.append(
            {
                "path": name,
                "daphne": workers,
                "rate": statistics.median(r.rate for r in results),
                "slices": [round(r.rate) for r in results],
                "p50_ms": 1000 * load.percentile(latencies, 50),
                "p99_ms": 1000 * load.percentile(latencies, 99),
                "client_cpu": statistics.mean(r.client_cpu for r in results),
                "errors": sum(r.errors for r in results),
            }
        )
    return rows


def process_rss(cluster: servers.Cluster) -> dict[str, int]:
    """Resident memory of each daphne, and of nginx's worker, by name."""
    sizes = {name.split(":")[1]: load.rss(cluster.pid(name)) for name in cluster.daphnes}
    workers = psutil.Process(cluster.nginx.process.pid).children()
    sizes["nginx worker"] = sum(w.memory_info().rss for w in workers)
    return sizes


def sockets_through_nginx(args: argparse.Namespace, cluster: servers.Cluster) -> dict[str, Any]:
    """Open `args.idle` sockets through nginx; time it, and each process's memory growth."""

    async def measure() -> dict[str, Any]:
        await asyncio.sleep(1.0)
        before = process_rss(cluster)
        started = time.perf_counter()
        sockets = await load.open_sockets([cluster.ws_url + PATH] * args.idle, tolerant=True)
        elapsed = time.perf_counter() - started
        try:
            await asyncio.sleep(1.0)
            after = process_rss(cluster)
        finally:
            await load.close_sockets(sockets)
        per_process = {
            name: {
                "sockets": len(sockets) / cluster.workers
                if name != "nginx worker"
                else len(sockets),
                "rss_before_mib": before[name] / 2**20,
                "rss_after_mib": after[name] / 2**20,
            }
            for name in before
        }
        for figures in per_process.values():
            grown = (figures["rss_after_mib"] - figures["rss_before_mib"]) * 1024
            figures["kib_per_socket"] = grown / max(figures["sockets"], 1)
        return {
            "opened": len(sockets),
            "failed": args.idle - len(sockets),
            "seconds": elapsed,
            "per_second": len(sockets) / elapsed,
            "processes": per_process,
        }

    progress(f"{args.idle} sockets through nginx to {cluster.workers} daphne")
    return run(measure())


def spread(cluster: servers.Cluster) -> dict[str, int]:
    """How many WebSocket handshakes nginx sent to each daphne, from its access log."""
    counts: dict[str, int] = {}
    log = (cluster.run_dir / "nginx-access.log").read_text()
    for socket_path in re.findall(
        rf'"GET {re.escape(FANOUT)}\?listen [^"]*" 101 .*?upstream=unix:(\S+)', log
    ):
        name = Path(socket_path).stem
        counts[name] = counts.get(name, 0) + 1
    return counts


def broadcast(args: argparse.Namespace, cluster: servers.Cluster) -> dict[str, Any]:
    """One group_send to `args.members` sockets spread over the daphne processes by nginx."""
    progress(f"broadcast to {args.members} sockets through nginx, {cluster.workers} daphne")
    members = [f"{cluster.ws_url}{FANOUT}?listen"] * args.members
    result: load.FanoutResult = run(load.broadcast(cluster.ws_url + FANOUT, members, args.rounds))
    return {
        "members": result.members,
        "rounds": args.rounds,
        "p50_ms": 1000 * load.percentile(result.deliveries, 50),
        "p99_ms": 1000 * load.percentile(result.deliveries, 99),
        "last_p50_ms": 1000 * load.percentile(result.to_last, 50),
        "missing": result.missing,
        "client_cpu": result.client_cpu,
        "spread": spread(cluster),
    }


def round_ratios(results: dict[str, Any], row: int, base: int) -> list[float]:
    """Row `row` over row `base`, round by round: slices measured back to back met alike noise."""
    echo = results["echo"]
    return [a / b for a, b in zip(echo[row]["slices"], echo[base]["slices"], strict=True)]


def tables(results: dict[str, Any]) -> str:
    """The section's Markdown tables."""
    base = results["echo"][0]["rate"]
    one = results["echo"][1]["rate"]
    lines = [
        "### Echo round trips through nginx",
        "",
        f"{results['connections']} sockets, 32-byte text, `{PATH}` (AsyncWebsocketConsumer), "
        "closed loop; median of the interleaved slices.",
        "",
        "| path | daphne processes | round trips/s | slices | vs daphne alone "
        "| vs nginx -> 1 | p50 ms | p99 ms | client CPU |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["echo"]:
        lines.append(
            f"| {row['path']} | {row['daphne']} | {row['rate']:,.0f} | "
            f"{', '.join(f'{s:,}' for s in row['slices'])} | {row['rate'] / base:.2f} | "
            f"{row['rate'] / one:.2f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['client_cpu']:.0f}% |"
        )
    nginx_cost = ", ".join(f"{r:.2f}" for r in round_ratios(results, 1, 0))
    second = ", ".join(f"{r:.2f}" for r in round_ratios(results, 2, 1))
    lines += [
        "",
        f"Round by round (each round measures the three rows back to back): nginx -> 1 daphne "
        f"over daphne alone {nginx_cost}; nginx -> 2 daphne over nginx -> 1 daphne {second}.",
    ]
    idle = results["idle"]
    lines += [
        "",
        f"### {idle['opened']:,} sockets opened through nginx (2 daphne)",
        "",
        f"Opened in {idle['seconds']:.1f} s ({idle['per_second']:,.0f} handshakes/s, 50 at a "
        f"time), {idle['failed']} failed.",
        "",
        "| process | sockets | RSS before MiB | RSS after MiB | KiB per socket |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, p in idle["processes"].items():
        lines.append(
            f"| {name} | {p['sockets']:,.0f} | {p['rss_before_mib']:.1f} | "
            f"{p['rss_after_mib']:.1f} | {p['kib_per_socket']:.1f} |"
        )
    fan = results["fanout"]
    lines += [
        "",
        f"### One broadcast to {fan['members']:,} sockets through nginx (2 daphne, Redis)",
        "",
        "| recipients per process | rounds | p50 ms | p99 ms | last recipient p50 ms "
        "| missing | client CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {', '.join(f'{k}: {v}' for k, v in sorted(fan['spread'].items()))} | {fan['rounds']} | "
        f"{fan['p50_ms']:.0f} | {fan['p99_ms']:.0f} | {fan['last_p50_ms']:.0f} | "
        f"{fan['missing']} | {fan['client_cpu']:.0f}% |",
    ]
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the three deployments, measure echo, idle sockets and a broadcast, stop them."""
    results: dict[str, Any] = {"connections": args.connections}
    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as workdir,
        deployment(args, Path(workdir)) as procs,
    ):
        results["echo"] = echo_rows(args, procs)
        results["idle"] = sockets_through_nginx(args, procs["two"])
        results["fanout"] = broadcast(args, procs["two"])
    return results


def main() -> None:
    """Start the processes, measure, print (`make bench` puts the section in the docs)."""
    args = arguments()
    os.chdir(servers.BASE_DIR)
    load.pin(os.getpid(), load.cores()[1])  # the client keeps to one core; the servers do not
    started_at = time.perf_counter()
    with report.LoadWatch() as load_average:
        results = measure(args)
    results["load"] = load_average.figures()
    results["wall_seconds"] = time.perf_counter() - started_at
    print(tables(results))
    print(f"\n{report.load_sentence(results['load'])}")
    servers.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (servers.ARTIFACTS / "bench-cluster.json").write_text(json.dumps(results, indent=1))


def section(results: dict[str, Any]) -> str:
    """The whole section for docs/benchmarks.md: the tables, and how to read them."""
    idle = results["idle"]["processes"]
    daphne_kib = statistics.mean(
        p["kib_per_socket"] for n, p in idle.items() if n != "nginx worker"
    )
    nginx_kib = idle["nginx worker"]["kib_per_socket"]

    def verdict(ratios: list[float], what: str) -> str:
        low, high = min(ratios), max(ratios)
        if low <= 1 <= high:
            return f"{what} is within the noise (rounds from {low:.2f} to {high:.2f})"
        if low > 1:
            return f"{what} came out faster in every round, by {low - 1:.0%} to {high - 1:.0%}"
        return f"{what} came out slower in every round, by {1 - high:.0%} to {1 - low:.0%}"

    findings = "; ".join(
        [
            verdict(round_ratios(results, 1, 0), "going through nginx"),
            verdict(round_ratios(results, 2, 1), "a second daphne"),
        ]
    )
    text = tables(results)
    return f"""## The cluster: nginx in front of N daphne (`make cluster`)

Measured in the same run (`bench/cluster.py`; `make bench-cluster` prints this section alone).
Every server process (nginx, daphne, redis-server) may use every core; the client keeps to
one. Read the ratios within each table, where every row met the same noise.

{text}

**What this machine can show, and what it cannot.** With 2 cores, one daphne, nginx, Redis and
the client already share all the CPU there is, so a second daphne process can only take the
part of a core the others leave idle: `WORKERS=2` beside `WORKERS=1` shows that the processes
share the load (the broadcast's recipients split evenly, each process holding half the
sockets), not how far it scales. nginx's own cost (one more hop per message, each way) comes
out of the same two cores. In this run, {findings}. What does hold here is
memory: each daphne grows by about {daphne_kib:.0f} KiB per idle socket, whichever process
holds it, and nginx by about {nginx_kib:.0f} KiB per proxied socket (its two connections and
their buffers), so 10,000 sockets cost about {10_000 * daphne_kib / 1024:,.0f} MiB across the
daphne processes plus {10_000 * nginx_kib / 1024:,.0f} MiB in nginx.

**What the figures predict for more cores.** A daphne process is one event loop (and one
thread for sync handlers): it never uses more than a core, so on one process the echo rate
stays at one core's worth (about 10,000 round trips/s for a lean async consumer on this CPU,
in the tables above). Behind nginx, N processes on N free cores should each give about that,
until nginx's worker (one here; `worker_processes auto` on a big machine) or the clients become
the limit, and the `WORKERS=1` to `WORKERS=2` step is the first point of that line on a machine
with room for it. Handshakes spread the same way. A broadcast is different: each process
delivers only its own share of the recipients, which more processes shrink, but
`RedisChannelLayer` puts one message per recipient through the single-threaded Redis, so past
a few processes Redis sets the pace (the Pub/Sub layer sends one message per process instead).
"""


if __name__ == "__main__":
    main()
