"""
The figures of docs/deploying.md for `make cluster HOSTS=3`: daphne on hosts a and b, Redis (and
the database) on c, with 0, 2 and 10 ms between hosts.

    python -m bench.hosts                        # the full run (a few minutes; needs root)
    python -m bench.hosts --members 100 --handshakes 200 --failovers 2 --delays 0,2   # a look

For each delay, one cluster (tools/servers.py start_cluster, hosts=3, delay_ms) serving
bench.asgi (the project plus the benchmark's fan-out route):
- fan-out: one group_send to `--members` sockets spread over hosts a and b by nginx, `--rounds`
  times: how long until each socket has it (p50, p99);
- handshakes: `--handshakes` sockets opened through nginx, as fast as they complete: per second.
Then, on the first delay's cluster, `--failovers` Redis failovers during chat (bench.failover):
failover time, the lobby flowing again, messages acknowledged and lost.

Prints a Markdown table and writes the results as JSON (`--json`). Bounded by its arguments;
it stops by itself and leaves nothing behind (the clusters' namespaces go with them).
"""

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import failover, load
from tools import servers

FANOUT = "/bench/fanout/nodb/"
PATH = "/ws/ac/generic/"


def progress(text: str) -> None:
    """Say what runs now (on stderr: stdout is the table)."""
    print(f"[bench.hosts] {text}", file=sys.stderr, flush=True)


def prepare(workdir: Path) -> dict[str, str]:
    """The processes' environment, with the static files collected (the deploy step's build)."""
    env = servers.server_env(
        SECRET_KEY=secrets.token_urlsafe(50),
        STATIC_MANIFEST="1",
        STATIC_ROOT=str(workdir / "static"),
        WS_LIMITS=json.dumps({"echo": {"messages_per_second": 0}}),
    )
    manage(env, "collectstatic")
    return env


def manage(env: dict[str, str], command: str) -> None:
    """Run `manage.py COMMAND --no-input` with the processes' environment."""
    subprocess.run(
        [sys.executable, "manage.py", command, "--no-input", "-v", "0"],
        env=env,
        check=True,
        cwd=servers.BASE_DIR,
    )


def migrate(env: dict[str, str], postgres: servers.PostgresProgram) -> None:
    """Create the cluster's database on host c and its tables (start_cluster's `prepare`)."""
    servers.create_database(postgres.url())
    manage(env, "migrate")


async def handshakes(cluster: servers.Cluster, count: int) -> dict[str, Any]:
    """Open `count` sockets through nginx at once; how many per second completed."""
    started = time.perf_counter()
    sockets = await load.open_sockets([cluster.ws_url + PATH] * count, tolerant=True)
    elapsed = time.perf_counter() - started
    await load.close_sockets(sockets)
    return {"opened": len(sockets), "seconds": elapsed, "per_second": len(sockets) / elapsed}


def measure(args: argparse.Namespace, env: dict[str, str], delay: float, workdir: Path) -> dict:
    """One cluster with `delay` ms between hosts: fan-out, handshakes (and the failovers)."""
    progress(f"a HOSTS=3 cluster with {delay:g} ms between hosts")
    run_dir = workdir / f"cluster-{delay:g}ms"
    postgres = servers.PostgresProgram(
        servers.data_host_dir(run_dir) / "postgres", secrets.token_urlsafe(24)
    )
    postgres.init()
    cluster = servers.start_cluster(
        workers=2,
        run_dir=run_dir,
        env={**env, "DATABASE_URL": postgres.url()},
        static_root=workdir / "static",
        app="bench.asgi:application",
        hosts=3,
        delay_ms=delay,
        postgres=postgres,
        prepare=lambda processes_env: migrate(processes_env, postgres),
    )
    row: dict[str, Any] = {"delay_ms": delay}
    try:
        members = [f"{cluster.ws_url}{FANOUT}?listen"] * args.members
        progress(f"fan-out to {args.members} sockets, {args.rounds} rounds")
        result = asyncio.run(load.broadcast(cluster.ws_url + FANOUT, members, args.rounds))
        row["fanout"] = {
            "members": result.members,
            "p50_ms": 1000 * load.percentile(result.deliveries, 50),
            "p99_ms": 1000 * load.percentile(result.deliveries, 99),
        }
        progress(f"{args.handshakes} handshakes through nginx")
        row["handshakes"] = asyncio.run(handshakes(cluster, args.handshakes))
        if args.failovers and delay == args.delays[0]:
            progress(f"{args.failovers} Redis failovers during chat")
            row["failover"] = asyncio.run(failover.chat_through_failovers(cluster, args.failovers))
    finally:
        cluster.stop()
    tracebacks = [name for name, text in cluster.logs().items() if "Traceback" in text]
    if tracebacks:
        raise SystemExit(f"tracebacks in the servers' logs: {', '.join(tracebacks)}")
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as docs/deploying.md shows them."""
    lines = [
        "| between hosts | fan-out p50 | fan-out p99 | handshakes/s through nginx |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        fan, shake = row["fanout"], row["handshakes"]
        lines.append(
            f"| {row['delay_ms']:g} ms | {fan['p50_ms']:.0f} ms | {fan['p99_ms']:.0f} ms | "
            f"{shake['per_second']:.0f} ({shake['opened']} sockets) |"
        )
    for row in rows:
        if "failover" in row:
            lines += ["", failover.summary(row["failover"])]
    return "\n".join(lines)


def main() -> None:
    """`python -m bench.hosts [--members N] [--delays 0,2,10] ...`"""
    parser = argparse.ArgumentParser(prog="python -m bench.hosts", description=__doc__)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--handshakes", type=int, default=2000)
    parser.add_argument("--failovers", type=int, default=20)
    parser.add_argument("--delays", default="0,2,10", help="ms between hosts, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.delays = [float(d) for d in args.delays.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="showcase-bench-hosts-"))
    workdir.chmod(0o755)
    env = prepare(workdir)
    rows = [measure(args, env, delay, workdir) for delay in args.delays]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    lost = [text for row in rows for text in row.get("failover", {}).get("lost", [])]
    if lost:
        raise SystemExit(f"acknowledged and lost in a failover: {lost}")


if __name__ == "__main__":
    main()
