"""
`make bench`: what each consumer style, server and channel layer costs, measured side by side.

Every server runs `bench.asgi:application` (the project plus bare references) pinned to one
core; this process is the client, pinned to another. The project's per-connection rate limit is
lifted through WS_LIMITS (the limiter still runs on every message). Results print as a table
and go to docs/benchmarks.md, docs/benchmarks.png and artifacts/bench.json.

    python -m bench                  # the full run (a few minutes)
    python -m bench --seconds 1 --idle 200 --members 50 --rounds 5 --no-docs   # a quick look
"""

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import redis
import uvloop

from bench import load, profile, report, tax
from tools import servers

# The per-socket rate limits, and the per-user and per-address cap on open sockets (one client
# address opens every socket of a load test): the limiters still run, they just never refuse.
NO_RATE_LIMIT = {
    "echo": {"messages_per_second": 0},
    "json": {"messages_per_second": 0},
    "connections": {"per_user": 0, "per_address": 0},
}
TEXT = "x" * 32
JSON_TEXT = '{"type":"echo","data":"abcdefg"}'  # 32 bytes too

# (style, project path, bare Channels path, bare + NoDatabaseMixin path, payload)
STYLES = [
    ("raw sync", "/ws/sc/", "/bench/raw-sync/", None, TEXT),
    ("raw async", "/ws/ac/", "/bench/raw-async/", "/bench/nodb/raw-async/", TEXT),
    ("generic sync", "/ws/sc/generic/", "/bench/generic-sync/", None, TEXT),
    (
        "generic async",
        "/ws/ac/generic/",
        "/bench/generic-async/",
        "/bench/nodb/generic-async/",
        TEXT,
    ),
    ("json sync", "/ws/sc/json/", "/bench/json-sync/", None, JSON_TEXT),
    ("json async", "/ws/ac/json/", "/bench/json-async/", "/bench/nodb/json-async/", JSON_TEXT),
]
# The sync styles again with QueuedSendMixin (its sends do not wait for the event loop).
QUEUED = {
    "raw sync": "/bench/queued/raw-sync/",
    "generic sync": "/bench/queued/generic-sync/",
    "json sync": "/bench/queued/json-sync/",
}
APP = "bench.asgi:application"
SERVER_CORE, CLIENT_CORE = load.cores()
# The databases of the ORM section's rows: SQLite, and PostgreSQL with Django's default
# (a connection per handler) and with the settings docs/styles.md advises (DATABASE_URL options).
# No commas in the names: --orm-databases takes a comma-separated list.
ORM_DATABASES = {
    "sqlite": None,
    "postgresql": {},
    "postgresql CONN_MAX_AGE 60 + checks": {"conn_max_age": "60", "conn_health_checks": "true"},
    "postgresql pool + checks": {"pool": "true", "conn_health_checks": "true"},
}


def arguments() -> argparse.Namespace:
    """Command-line options; the defaults are what `make bench` measures."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[1])
    parser.add_argument("--connections", type=int, default=50, help="echo concurrency")
    parser.add_argument(
        "--orm-connections", type=int, default=10, help="concurrency of the ORM section's rows"
    )
    parser.add_argument(
        "--orm-databases",
        default=",".join(ORM_DATABASES),
        help="the ORM section's databases (comma-separated, of ORM_DATABASES)",
    )
    parser.add_argument("--seconds", type=float, default=2.4, help="measured time per echo row")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved slices per row")
    parser.add_argument("--warmup", type=float, default=0.3, help="unmeasured time per slice")
    parser.add_argument("--idle", type=int, default=2000, help="idle sockets per server")
    parser.add_argument("--members", default="100,1000", help="fan-out group sizes")
    parser.add_argument("--rounds", type=int, default=20, help="broadcasts per group size")
    parser.add_argument("--servers", default=",".join(servers.SERVERS))
    parser.add_argument(
        "--sections", default="echo,servers,syncsend,connections,fanout,profile,tax,orm,cluster"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other sections of the last run (artifacts/bench.json), replace these; "
        "prints only: docs/benchmarks.md comes from one whole run",
    )
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--daphne-args", default="", help="daphne's flags, as one string")
    return parser.parse_args()


def run(coroutine: Any) -> Any:
    """Run one client section on a fresh uvloop event loop."""
    return uvloop.run(coroutine)


def start(
    args: argparse.Namespace, server: str, env: dict[str, str], name: str | None = None
) -> servers.ServerProcess:
    """Start a server with `make run`'s flags on the bench app, pinned to the server core."""
    flags = None  # tools/servers.py's SERVER_FLAGS
    if server == "daphne" and args.daphne_args:
        flags = tuple(shlex.split(args.daphne_args))
    process = servers.start_server(
        server, env, app=APP, flags=flags, name=name or f"bench-{server}"
    )
    load.wait_for_worker(process)
    load.pin(process.process.pid, SERVER_CORE)
    return process


def bench_env(**overrides: str) -> dict[str, str]:
    """A server environment with the rate limit lifted."""
    return servers.server_env(WS_LIMITS=json.dumps(NO_RATE_LIMIT), **overrides)


def progress(text: str) -> None:
    """One line on stderr, so a long run shows where it is."""
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def echo_rows(
    args: argparse.Namespace, server: str, entries: list[tuple[str, str, str, str]]
) -> list[dict[str, Any]]:
    """
    Measure endpoints (kind, style, url, payload) in interleaved slices, A B C A B C..., so
    that a burst of noise on the machine hits them alike; each row gets the median slice rate
    and the percentiles of all its round trips.
    """
    slices: dict[int, list[load.EchoResult]] = {i: [] for i in range(len(entries))}
    for _ in range(args.repeats):
        for i, (kind, _style, url, payload) in enumerate(entries):
            progress(f"echo {server:10} {kind:22} {url}")
            slices[i].append(
                run(
                    load.echo_closed_loop(
                        url, payload, args.connections, args.warmup, args.seconds / args.repeats
                    )
                )
            )
    rows = []
    for i, (kind, style, url, _) in enumerate(entries):
        results = slices[i]
        latencies = [t for result in results for t in result.latencies]
        rows.append(
            {
                "server": server,
                "kind": kind,
                "style": style,
                "path": urlsplit(url).path or "/",
                "rate": statistics.median(result.rate for result in results),
                "p50_ms": 1000 * load.percentile(latencies, 50),
                "p99_ms": 1000 * load.percentile(latencies, 99),
                "client_cpu": statistics.mean(result.client_cpu for result in results),
                "slices": [round(result.rate) for result in results],
                "errors": sum(result.errors for result in results),
            }
        )
    return rows


def echo_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Echo throughput and latency: every style, project and bare, per server, with ceilings."""
    rows = []
    port = servers.free_port()
    ceiling = servers.start_command(
        "bench-wsecho", [sys.executable, "-m", "bench.wsecho", str(port)], port
    )
    load.pin(ceiling.process.pid, SERVER_CORE)
    with servers.running(ceiling):
        rows += echo_rows(
            args, "websockets", [("ceiling", "bare websockets", ceiling.ws_url, TEXT)]
        )
    for server in args.servers.split(","):
        process = start(args, server, bench_env())
        with servers.running(process):
            base = process.ws_url
            rows += echo_rows(args, server, [("ceiling", "bare ASGI", f"{base}/bench/asgi/", TEXT)])
            for style, project, bare, nodb, payload in STYLES:
                entries = [
                    ("bare Channels", style, base + bare, payload),
                    ("project", style, base + project, payload),
                ]
                if nodb:
                    entries.append(("bare + NoDatabaseMixin", style, base + nodb, payload))
                if style in QUEUED:
                    entries.append(("bare + QueuedSendMixin", style, base + QUEUED[style], payload))
                rows += echo_rows(args, server, entries)
    return rows


def sync_send_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    The project's sync endpoints with SYNC_SEND=stock and =queued, one server process each,
    interleaved in the same slices, beside the bare sync consumers with and without the mixin.
    """
    rows = []
    for server in args.servers.split(","):
        stock = start(args, server, bench_env(SYNC_SEND="stock"), name=f"bench-{server}-stock")
        with servers.running(stock):
            queued = start(args, server, bench_env(SYNC_SEND="queued"), name=f"bench-{server}-q")
            with servers.running(queued):
                for style, project, bare, _nodb, payload in STYLES:
                    if style not in QUEUED:
                        continue
                    entries = [
                        ("project, SYNC_SEND=stock", style, stock.ws_url + project, payload),
                        ("project, SYNC_SEND=queued", style, queued.ws_url + project, payload),
                        ("bare Channels", style, stock.ws_url + bare, payload),
                        ("bare + QueuedSendMixin", style, stock.ws_url + QUEUED[style], payload),
                    ]
                    rows += echo_rows(args, server, entries)
    return rows


# What `servers_section` compares on every server: the ceiling, one sync and two async rows.
SERVER_ROWS = [
    ("ceiling", "bare ASGI", "/bench/asgi/"),
    ("project", "raw sync", "/ws/sc/"),
    ("bare Channels", "raw async", "/bench/raw-async/"),
    ("project", "raw async", "/ws/ac/"),
]


def servers_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    The servers side by side, all running at once: every row's slices interleaved across the
    servers (daphne, uvicorn, hypercorn, granian, daphne, ...), so that a burst of load from
    elsewhere on the machine hits every server alike and the ratios between them hold.
    """
    names = args.servers.split(",")
    processes = [start(args, name, bench_env()) for name in names]
    try:
        entries = [
            (name, kind, style, process.ws_url + path)
            for kind, style, path in SERVER_ROWS
            for name, process in zip(names, processes, strict=True)
        ]
        slices: dict[int, list[load.EchoResult]] = {i: [] for i in range(len(entries))}
        for _ in range(args.repeats):
            for i, (name, kind, _style, url) in enumerate(entries):
                progress(f"servers {name:10} {kind:14} {url}")
                slices[i].append(
                    run(
                        load.echo_closed_loop(
                            url, TEXT, args.connections, args.warmup, args.seconds / args.repeats
                        )
                    )
                )
    finally:
        for process in processes:
            process.stop()
    rows = []
    for i, (name, kind, style, url) in enumerate(entries):
        latencies = [t for result in slices[i] for t in result.latencies]
        rows.append(
            {
                "server": name,
                "kind": kind,
                "style": style,
                "path": urlsplit(url).path,
                "rate": statistics.median(result.rate for result in slices[i]),
                "p50_ms": 1000 * load.percentile(latencies, 50),
                "p99_ms": 1000 * load.percentile(latencies, 99),
                "client_cpu": statistics.mean(result.client_cpu for result in slices[i]),
                "slices": [round(result.rate) for result in slices[i]],
            }
        )
    return rows


def connections_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Idle sockets per server process: handshakes per second and memory per socket."""
    rows = []
    for server in args.servers.split(","):
        for path in ("/ws/ac/generic/", "/ws/sc/generic/"):
            # A fresh process each time: memory freed by the last run would hide the growth.
            process = start(args, server, bench_env())
            with servers.running(process):
                progress(f"idle {server:8} {args.idle} sockets on {path}")
                result: load.ConnectResult = run(
                    load.hold_idle(process.ws_url + path, args.idle, load.serving_pid(process))
                )
                rows.append(
                    {
                        "server": server,
                        "path": path,
                        "sockets": result.sockets,
                        "failed": result.failed,
                        "per_second": result.per_second,
                        "kib_per_socket": result.bytes_per_socket / 1024,
                        "rss_before_mib": result.rss_before / 2**20,
                        "rss_after_mib": result.rss_after / 2**20,
                        "client_cpu": result.client_cpu,
                    }
                )
    return rows


def fanout_rows(
    args: argparse.Namespace,
    layer: str,
    processes: list[servers.ServerProcess],
    path: str = "/bench/fanout/",
) -> list[dict[str, Any]]:
    """Broadcasts from a socket on the first process to members spread over all of them."""
    rows = []
    for size in (int(n) for n in args.members.split(",")):
        progress(f"fanout {layer:28} {size} members")
        members = [f"{processes[i % len(processes)].ws_url}{path}?listen" for i in range(size)]
        result: load.FanoutResult = run(
            load.broadcast(processes[0].ws_url + path, members, args.rounds)
        )
        rows.append(
            {
                "layer": layer,
                "processes": len(processes),
                "members": size,
                "rounds": args.rounds,
                "p50_ms": 1000 * load.percentile(result.deliveries, 50),
                "p99_ms": 1000 * load.percentile(result.deliveries, 99),
                "last_p50_ms": 1000 * load.percentile(result.to_last, 50),
                "missing": result.missing,
                "client_cpu": result.client_cpu,
            }
        )
    return rows


def fanout_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One lobby-style broadcast to N sockets, per channel layer, on daphne."""
    rows = []
    process = start(args, "daphne", bench_env())
    with servers.running(process):
        rows += fanout_rows(args, "InMemoryChannelLayer", [process])
        rows += fanout_rows(
            args, "InMemoryChannelLayer + NoDatabaseMixin", [process], "/bench/fanout/nodb/"
        )
    redis = servers.start_redis()
    load.pin(redis.process.pid, SERVER_CORE)
    with servers.running(redis):
        url = f"redis://127.0.0.1:{redis.port}/0"
        for layer, choice in (("RedisChannelLayer", "core"), ("RedisPubSubChannelLayer", "pubsub")):
            env = bench_env(REDIS_URL=url, CHANNEL_LAYER=choice)
            # Each `with` item starts only once the one before it is entered, as if nested.
            with (
                servers.running(start(args, "daphne", env, name=f"bench-{choice}-a")) as a,
                servers.running(start(args, "daphne", env, name=f"bench-{choice}-b")) as b,
            ):
                rows += fanout_rows(args, layer, [a, b])
                members_left(redis.port, dbs=[0])
        rows += gc_fanout_rows(args, redis.port)
    return rows


def members_left(redis_port: int, dbs: list[int], deadline: float = 30.0) -> None:
    """
    Wait until every member has left its group (no group key, no Pub/Sub subscription left in
    Redis): a server stopped while its consumers still clean up would log their cancellation.
    """
    clients = [redis.Redis(port=redis_port, db=db) for db in dbs]
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        groups = any(next(c.scan_iter("asgi:group:*"), None) for c in clients)
        if not groups and not clients[0].pubsub_channels():
            break
        time.sleep(0.05)
    for client in clients:
        client.close()


GC_SETTINGS = [("Python's", ""), ("project's", "50000,10,10")]


def gc_fanout_rows(args: argparse.Namespace, redis_port: int) -> list[dict[str, Any]]:
    """
    The lobby's case (RedisChannelLayer, NoDatabaseMixin, two processes) with Python's garbage
    collector thresholds and with the project's GC_THRESHOLD, broadcasts taking turns.
    """
    rows = []
    size = max(int(n) for n in args.members.split(","))
    path = "/bench/fanout/nodb/"
    with contextlib.ExitStack() as stack:
        groups = []
        for db, (_, threshold) in enumerate(GC_SETTINGS):
            # A Redis database each, so the two groups do not share members.
            env = bench_env(REDIS_URL=f"redis://127.0.0.1:{redis_port}/{db}",
                            GC_THRESHOLD=threshold)  # fmt: skip
            pair = [
                stack.enter_context(
                    servers.running(start(args, "daphne", env, name=f"bench-gc{db}"))
                )
                for _ in range(2)
            ]
            members = [f"{pair[i % 2].ws_url}{path}?listen" for i in range(size)]
            groups.append((pair[0].ws_url + path, members))
        progress(f"fanout GC thresholds side by side, {size} members")
        results = run(load.broadcasts_side_by_side(groups, args.rounds))
        members_left(redis_port, dbs=list(range(len(GC_SETTINGS))))
    for (name, threshold), result in zip(GC_SETTINGS, results, strict=True):
        rows.append(
            {
                "layer": f'RedisChannelLayer + NoDatabaseMixin, {name} GC ("{threshold}")',
                "processes": 2,
                "members": size,
                "rounds": args.rounds,
                "p50_ms": 1000 * load.percentile(result.deliveries, 50),
                "p99_ms": 1000 * load.percentile(result.deliveries, 99),
                "last_p50_ms": 1000 * load.percentile(result.to_last, 50),
                "missing": result.missing,
                "client_cpu": result.client_cpu,
            }
        )
    return rows


PROFILED = [
    ("raw sync", "/bench/raw-sync/"),
    ("raw sync + QueuedSendMixin", "/bench/queued/raw-sync/"),
    ("raw async", "/bench/raw-async/"),
    ("raw async + NoDatabaseMixin", "/bench/nodb/raw-async/"),
]


def profile_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """py-spy samples of daphne under echo load: where each style spends the server's time."""
    rows = []
    for style, path in PROFILED:
        # A fresh process each time, so no thread is left over from the previous endpoint.
        process = start(args, "daphne", bench_env())
        with servers.running(process), ThreadPoolExecutor(1) as spare:
            progress(f"profile daphne {path}")
            sampling = spare.submit(profile.wait_then_record, process.process.pid, 1.0, 3.0)
            result: load.EchoResult = run(
                load.echo_closed_loop(process.ws_url + path, TEXT, args.connections, 0.5, 4.5)
            )
            samples = sampling.result()
            if isinstance(samples, str):
                progress(f"profile skipped: {samples}")
                return [{"style": style, "path": path, "skipped": samples}]
            rows.append({"style": style, "path": path, "rate": result.rate,
                         **profile.shares(samples)})  # fmt: skip
    return rows


# (style, JSON endpoint, [(what, payload)]): the plain echo, then a note saved and the latest
# notes read back, each way the style has. Same socket count and loop as the echo rows.
ORM_ROWS = [
    (
        "json sync",
        "/ws/sc/json/",
        [
            ("echo", JSON_TEXT),
            ("note · ORM", '{"type":"note","text":"a bench note"}'),
            ("notes · ORM", '{"type":"notes"}'),
        ],
    ),
    (
        "json async",
        "/ws/ac/json/",
        [
            ("echo", JSON_TEXT),
            ("note · async ORM", '{"type":"note","text":"a bench note","via":"async_orm"}'),
            (
                "note · database_sync_to_async",
                '{"type":"note","text":"a bench note","via":"database_sync_to_async"}',
            ),
            ("notes · async ORM", '{"type":"notes","via":"async_orm"}'),
            ("notes · database_sync_to_async", '{"type":"notes","via":"database_sync_to_async"}'),
        ],
    ),
]


def orm_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    A note saved (INSERT) and the ten latest read back (SELECT), per round trip, through each
    style's ways to the ORM, beside the plain JSON echo of the same endpoint, on daphne: with a
    fresh SQLite database of its own (in memory, /dev/shm, where there is one), then on a
    throwaway PostgreSQL (no fsync either) with each connection setting of ORM_DATABASES.
    """
    rows = []
    # In memory where the OS offers it: on disk, each commit's fsync (about 25 ms on the
    # machine docs/benchmarks.md names) would cap every style alike and hide what they cost.
    shm = "/dev/shm"  # noqa: S108 - TemporaryDirectory makes a private directory in it
    memory = shm if os.path.isdir(shm) else None
    wanted = args.orm_databases.split(",")
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-orm-", dir=memory))
        postgres = None
        if any(name != "sqlite" for name in wanted):
            postgres = servers.start_postgres(name="bench-postgres")
            stack.callback(postgres.stop)
            servers.create_database(postgres.url(), "bench")
        for name in wanted:
            if name == "sqlite":
                env = bench_env(DATABASE_PATH=os.path.join(scratch, "bench.sqlite3"))
            else:
                env = bench_env(DATABASE_URL=postgres.url("bench", **ORM_DATABASES[name]))
            rows += orm_rows(args, env, name)
    return rows


def orm_rows(args: argparse.Namespace, env: dict[str, str], database: str) -> list[dict[str, Any]]:
    """The ORM rows on one database (`env` names it), the database migrated first."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env=env, check=True
    )
    process = start(args, "daphne", env, name="bench-orm")
    # Fewer sockets than the echo rows: the queries run one at a time in one thread, so
    # more sockets only lengthen the queue each round trip waits in.
    orm_args = argparse.Namespace(**{**vars(args), "connections": args.orm_connections})
    rows = []
    with servers.running(process):
        for style, path, ways in ORM_ROWS:
            entries = [(what, style, process.ws_url + path, payload) for what, payload in ways]
            rows += [
                {**row, "database": database} for row in echo_rows(orm_args, "daphne", entries)
            ]
    return rows


def gc_fanout_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Only the GC comparison of the fan-out section, with a Redis of its own."""
    redis_server = servers.start_redis()
    load.pin(redis_server.process.pid, SERVER_CORE)
    with servers.running(redis_server):
        return gc_fanout_rows(args, redis_server.port)


def cluster_section(args: argparse.Namespace) -> dict[str, Any]:
    """`make cluster`'s shape (bench/cluster.py): nginx's cost, 1 vs 2 daphne, a broadcast."""
    from bench import cluster  # it imports this module's helpers

    return cluster.measure(
        argparse.Namespace(
            connections=args.connections,
            seconds=args.seconds,
            repeats=args.repeats,
            idle=args.idle,
            members=max(int(n) for n in args.members.split(",")),
            rounds=args.rounds,
            daphne_args=args.daphne_args,
        )
    )


SECTIONS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "echo": echo_section,
    "syncsend": sync_send_section,
    "servers": servers_section,
    "connections": connections_section,
    "gcfanout": gc_fanout_section,
    "fanout": fanout_section,
    "profile": profile_section,
    "tax": lambda args: tax.measure(),
    "orm": orm_section,
    "cluster": cluster_section,
}


def main() -> None:
    """Run the chosen sections, print the tables, write the docs."""
    args = arguments()
    os.chdir(servers.BASE_DIR)
    load.pin(os.getpid(), CLIENT_CORE)
    started_at = time.perf_counter()
    results: dict[str, Any] = {"machine": report.machine(), "pinned": CLIENT_CORE is not None}
    if args.update:
        previous = json.loads((servers.ARTIFACTS / "bench.json").read_text())
        results = {**previous, **results, "updated": args.sections}
    results["settings"] = {
        "connections": args.connections,
        "orm_connections": args.orm_connections,
        "orm_databases": args.orm_databases,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "payload_bytes": len(TEXT),
        "ws_limits": NO_RATE_LIMIT,
        "server_core": SERVER_CORE,
        "client_core": CLIENT_CORE,
    }
    with report.LoadWatch() as load_average:
        for name in args.sections.split(","):
            results[name] = SECTIONS[name](args)
    results["load"] = load_average.figures()
    results["wall_seconds"] = time.perf_counter() - started_at
    options = [a for a in sys.argv[1:] if not a.startswith("--daphne-args")]
    command = "make bench" + (f' BENCH_ARGS="{" ".join(options)}"' if options else "")
    if args.update:  # the sections of the run before, then these
        command = f"{results['command']}, then {command}"
    results["command"] = command
    results["daphne_args"] = args.daphne_args
    text = report.tables(results)
    print(text)
    servers.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (servers.ARTIFACTS / "bench.json").write_text(json.dumps(results, indent=1))
    if args.update:
        print("(--update: docs/benchmarks.md left alone; one whole run writes it)")
    elif not args.no_docs:
        report.write_docs(results, text)
        print("wrote docs/benchmarks.md and docs/benchmarks.png")
    if found := servers.tracebacks_logged():
        # Figures from a server that logged a traceback are not results.
        print(f"\nFAILED: servers logged {len(found)} traceback(s):", *found, sep="\n\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
