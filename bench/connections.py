"""
`python -m bench.connections`: how many PostgreSQL connections each server process holds, and
opens, for each way a consumer reaches the ORM, under each connection setting; and what stays
open once the sockets go quiet. docs/styles.md ("Database connections") is written from it.

For each connection setting and each way, `--processes` daphne processes serve the bench app
(the project plus two bench-only mistakes, bench/asgi.py) on a throwaway PostgreSQL with
`log_connections` on. `--sockets` sockets per process read the notes back to back for
`--seconds`. Meanwhile this process samples `pg_stat_activity` every 50 ms, grouped by
`application_name` (config/database.py names each process `showcase:<pid>`); afterwards it
counts the "connection authorized" lines per process in the server's log, waits `--idle`
seconds with the sockets closed and counts again. Counts of connections, unlike timings, do
not move with the machine's load.

    python -m bench.connections                       # the figures for the docs (about 3 min)
    python -m bench.connections --seconds 1 --idle 1 --sockets 4   # a quick look
"""

import argparse
import asyncio
import json
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import psycopg
import uvloop
from websockets.asyncio.client import ClientConnection

from bench import load
from tools import servers

APP = "bench.asgi:application"
NO_RATE_LIMIT = {"json": {"messages_per_second": 0}}
# Connection settings, as DATABASE_URL options (config/database.py); no commas in the names
# (--settings takes a comma-separated list). The pool's timeout is short so that a pool run dry
# shows as errors within the run, not after 30 s.
SETTINGS = {
    "CONN_MAX_AGE 0": {},
    "CONN_MAX_AGE 60 + health checks": {"conn_max_age": "60", "conn_health_checks": "true"},
    "pool + health checks": {"pool": "true", "conn_health_checks": "true", "pool_timeout": "2"},
}
# The ways to the ORM: (endpoint, message). The last two are mistakes (bench/asgi.py).
WAYS = {
    "sync ORM": ("/ws/sc/json/", '{"type":"notes"}'),
    "async ORM": ("/ws/ac/json/", '{"type":"notes","via":"async_orm"}'),
    "database_sync_to_async": ("/ws/ac/json/", '{"type":"notes","via":"database_sync_to_async"}'),
    "sync_to_async(thread_sensitive=False)": ("/bench/db/thread-pool/", '{"type":"notes"}'),
    "a new thread per message": ("/bench/db/new-thread/", '{"type":"notes"}'),
}
AUTHORIZED = re.compile(r"connection authorized: .*application_name=(showcase:\d+)")


@dataclass
class Row:
    """What one setting and one way did, per server process (the busiest one)."""

    setting: str
    way: str
    processes: int
    replies: int = 0
    errors: int = 0
    peak: int = 0  # connections open at once, during the load
    opened: int = 0  # connections opened during the run
    held: int = 0  # still open `idle` seconds after the last socket closed
    error_text: str = ""
    opened_by_process: list[int] = field(default_factory=list)


class Sampler(threading.Thread):
    """Counts each process's connections in pg_stat_activity until stopped; keeps the peak."""

    def __init__(self, url: str, names: set[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.names = url, names
        self.peak: Counter[str] = Counter()
        self.stopped = threading.Event()

    def count(self, connection: psycopg.Connection) -> Counter[str]:
        """Connections per process, now."""
        rows = connection.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name = ANY(%s) GROUP BY 1",
            (list(self.names),),
        ).fetchall()
        return Counter(dict(rows))

    def run(self) -> None:
        """Sample every 50 ms."""
        with psycopg.connect(self.url, autocommit=True, application_name="bench") as connection:
            while not self.stopped.wait(0.05):
                now = self.count(connection)
                for name in self.names:
                    self.peak[name] = max(self.peak[name], now[name])

    def now(self) -> Counter[str]:
        """One count, from a connection of its own."""
        with psycopg.connect(self.url, autocommit=True, application_name="bench") as connection:
            return self.count(connection)


async def read_notes(urls: list[str], message: str, seconds: float) -> tuple[int, int, str]:
    """Every socket reads the notes back to back for `seconds`: (replies, errors, an error)."""
    sockets = await load.open_sockets(urls)
    replies = errors = 0
    example = ""
    deadline = time.perf_counter() + seconds

    async def loop(ws: ClientConnection) -> None:
        nonlocal replies, errors, example
        while time.perf_counter() < deadline:
            await ws.send(message)
            reply = json.loads(await ws.recv())
            replies += 1
            if reply["type"] == "error":
                errors += 1
                example = example or reply["message"]

    try:
        await asyncio.gather(*(loop(ws) for ws in sockets))
    finally:
        await load.close_sockets(sockets)
    return replies, errors, example


def measure(args: argparse.Namespace, postgres: servers.Postgres, setting: str, way: str) -> Row:
    """One setting, one way, on fresh server processes."""
    options = SETTINGS[setting]
    env = servers.server_env(
        DATABASE_URL=postgres.url("bench", **options), WS_LIMITS=json.dumps(NO_RATE_LIMIT)
    )
    row = Row(setting, way, args.processes)
    since = postgres.server.log_size()
    started: list[servers.ServerProcess] = []
    try:
        for _ in range(args.processes):
            started.append(servers.start_server("daphne", env, app=APP))
        names = {f"showcase:{server.process.pid}" for server in started}
        sampler = Sampler(postgres.url("bench"), names)
        sampler.start()
        path, message = WAYS[way]
        urls = [server.ws_url + path for server in started for _ in range(args.sockets)]
        row.replies, row.errors, row.error_text = uvloop.run(
            read_notes(urls, message, args.seconds)
        )
        sampler.stopped.set()
        sampler.join()
        row.peak = max(sampler.peak.values(), default=0)
        time.sleep(args.idle)
        row.held = max(sampler.now().values(), default=0)
        log = postgres.server.log_path.read_bytes()[since:].decode(errors="replace")
        opened = Counter(m for m in AUTHORIZED.findall(log) if m in names)
        row.opened = sum(opened.values())
        row.opened_by_process = [opened[name] for name in sorted(names)]
    finally:
        for server in started:
            server.stop()
    return row


def table(rows: list[Row], args: argparse.Namespace) -> str:
    """The rows as a Markdown table, with what was run."""
    header = (
        "| setting | way to the ORM | open at once, per process (at most) | opened during the "
        f"run, per process | replies | still open after {args.idle:g} s idle, per process | "
        "errors |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = []
    for r in rows:
        error = re.search(r"\((\w+)\)", r.error_text)
        errors = f"{r.errors:,}" + (f" ({error.group(1)})" if error and r.errors else "")
        opened = ", ".join(str(n) for n in r.opened_by_process)
        lines.append(
            f"| {r.setting} | {r.way} | {r.peak} | {opened} | {r.replies:,} | {r.held} | {errors} |"
        )
    command = "python -m bench.connections " + shlex.join(sys.argv[1:])
    return "\n".join(
        [
            f"{args.processes} daphne processes, {args.sockets} sockets each reading the notes "
            f"back to back for {args.seconds:g} s, PostgreSQL {postgres_version()}: "
            f"`{command.strip()}`",
            "",
            header,
            *lines,
        ]
    )


def postgres_version() -> str:
    """The PostgreSQL the bench ran on, e.g. 15.18."""
    done = subprocess.run(
        [servers.postgres_binary("postgres"), "--version"], capture_output=True, text=True
    )
    found = re.search(r"\d+(\.\d+)+", done.stdout)
    return found.group(0) if found else "?"


def arguments() -> argparse.Namespace:
    """Command-line options; the defaults are the docs' figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.connections", description=__doc__)
    parser.add_argument("--processes", type=int, default=2, help="daphne processes")
    parser.add_argument("--sockets", type=int, default=20, help="sockets per process")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per setting and way")
    parser.add_argument("--idle", type=float, default=3.0, help="quiet seconds before recount")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated")
    return parser.parse_args()


def main() -> None:
    """Run every setting with every way; print the table; fail on a server's traceback."""
    args = arguments()
    rows = []
    postgres = servers.start_postgres(name="bench-postgres", settings=("log_connections=on",))
    try:
        servers.create_database(postgres.url(), "bench")
        migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"]
        env = servers.server_env(DATABASE_URL=postgres.url("bench"))
        subprocess.run(migrate, env=env, cwd=servers.BASE_DIR, check=True)
        for setting in args.settings.split(","):
            for way in args.ways.split(","):
                print(f"  {time.strftime('%H:%M:%S')} {setting} · {way}", file=sys.stderr)
                rows.append(row := measure(args, postgres, setting, way))
                print(f"    peak {row.peak}, opened {row.opened_by_process}, held {row.held}, "
                      f"errors {row.errors} of {row.replies}", file=sys.stderr)  # fmt: skip
    finally:
        postgres.stop()
    text = table(rows, args)
    print(text)
    servers.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result = {"settings": vars(args), "rows": [asdict(r) for r in rows], "table": text}
    (servers.ARTIFACTS / "connections.json").write_text(json.dumps(result, indent=1))
    if found := servers.tracebacks_logged():
        print(f"\nFAILED: servers logged {len(found)} traceback(s):", *found, sep="\n\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
