"""
Start the real servers that tests, benchmarks, the soak and the conformance run talk to.

Everything binds to 127.0.0.1 on a free port and is stopped by the caller (use the context
managers). Nothing here depends on a server that happens to be running already.
"""

import contextlib
import getpass
import ipaddress
import json
import os
import pwd
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", BASE_DIR / "artifacts"))

# Variables a server process must not inherit from a test process. DJANGO_ALLOW_ASYNC_UNSAFE
# is set by the browser tests for their own process only: in a server it would hide real
# sync-in-async bugs. DATABASE_URL names the run's own database, never its test database:
# servers get theirs explicitly (`database_env`).
SCRUBBED = (
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "REDIS_URL",
    "CHANNEL_LAYER",
    "PYTEST_CURRENT_TEST",
    "DATABASE_URL",
)


# Ports this process has handed out: two servers started side by side each ask for a port
# before either binds, and the kernel may offer the same free port twice.
_given_ports: set[int] = set()
_given_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, and not given out here before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with _given_lock:
            if port not in _given_ports:
                _given_ports.add(port)
                return port


def page_origin(url: str) -> str:
    """
    The Origin a page of this site sends with a handshake to `url` (ws://127.0.0.1:8000/ws/ ->
    http://127.0.0.1:8000): the socket origin check wants the scheme, host and port of the site.
    """
    scheme, rest = url.split("://", 1)
    return f"{ {'ws': 'http', 'wss': 'https'}.get(scheme, scheme) }://{rest.split('/', 1)[0]}"


# However busy the machine, a server that has not listened after this long never will.
STARTING_LIMIT = 120.0


def cpu_seconds(pid: int) -> float:
    """The CPU time a process and its children have used so far (0 once it is gone)."""
    try:
        process = psutil.Process(pid)
        used = [process.cpu_times(), *(c.cpu_times() for c in process.children(recursive=True))]
    except psutil.Error:
        return 0.0
    return sum(times.user + times.system for times in used)


def wait_while_working(
    process: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 15.0
) -> None:
    """
    Return once `ready()` is true. Fail if the process dies, or once it has gone `timeout`
    seconds without getting ready and without using any CPU: stuck, not slow. A fixed deadline
    would fail a start that is merely slow: on a shared 2-core machine under load a Python
    server's imports alone have taken more than 15 s.
    """
    started = progressed = looked = time.monotonic()
    used = cpu_seconds(process.pid)
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {what}")
        time.sleep(0.05)
        now = time.monotonic()
        # Once a second: reading every process's CPU time walks all of /proc (a few ms).
        if now - looked >= 1.0:
            looked = now
            if (now_used := cpu_seconds(process.pid)) > used:
                used, progressed = now_used, now
        if now - progressed > timeout:
            raise TimeoutError(f"not {what}; no progress for {timeout} s")
        if now - started > STARTING_LIMIT:
            raise TimeoutError(f"not {what} within {STARTING_LIMIT} s")


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Return once something accepts connections on the port (see wait_while_working)."""
    wait_while_working(process, lambda: accepts(port), f"listening on port {port}", timeout)


def find_binary(name: str, *fallbacks: str) -> str:
    """The path of a system binary, or a clear error saying how to install it."""
    for candidate in (shutil.which(name), *fallbacks):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError(
        f"{name} not found. On Debian: apt-get install -y {name} (make test does this as root)."
    )


@dataclass
class ServerProcess:
    """A running server: its URL, its process and where its output goes."""

    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        """The base URL for HTTP."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The base URL for WebSockets."""
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL if it lingers)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> float | None:
        """
        Send `sig` to the server's process group, as a terminal sends Ctrl-C to `make run`, and
        wait for the process to exit: the seconds it took, or None if it outlived `timeout`
        (then it is killed, its whole group with it). Needs a server started with
        `own_group=True`, so that the signal reaches nothing else.
        """
        if os.getpgid(self.process.pid) != self.process.pid:
            raise RuntimeError(f"{self.name} does not lead a process group of its own")
        sent = time.monotonic()
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None
        return time.monotonic() - sent

    def log(self) -> str:
        """What the server has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        """How many bytes of log there are so far: an offset for `tracebacks(since=...)`."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def tracebacks(self, since: int = 0) -> list[str]:
        """
        Every traceback in the log after byte offset `since`, each with the line logged just
        before it (what the server was reporting). A server log is part of a run's result:
        tests, the soak and the conformance run fail when this is not empty.
        """
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(since)
            return find_tracebacks(log.read().decode(errors="replace"))


# Every server this process started, for `tracebacks_logged()`.
STARTED: list[ServerProcess] = []


def tracebacks_logged() -> list[str]:
    """The tracebacks in the log of every server this process has started, each named."""
    return [f"{s.log_path.name}:\n{t}" for s in STARTED for t in s.tracebacks()]


def find_tracebacks(text: str) -> list[str]:
    """The Python tracebacks in a log, each from the line before it to its exception line."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != "Traceback (most recent call last):":
            continue
        end = i + 1
        # The frames are indented; the first line that is not ends the traceback.
        while end < len(lines) and (lines[end][:1].isspace() or not lines[end]):
            end += 1
        found.append("\n".join(lines[max(0, i - 1) : end + 1]))
    return found


def take_ctrl_c() -> None:
    """
    Let the servers this process starts take Ctrl-C as they do from a terminal. Call it from
    the main thread before starting any (the test suites' conftest.py does).

    A shell without job control (a CI runner, `make test &`, a script) starts its background
    commands with SIGINT ignored, and an ignored signal stays ignored across fork and exec,
    into every server started below it. Python then leaves SIGINT ignored, and daphne with it:
    Twisted installs its Ctrl-C handler only over Python's default one. Such a daphne outlives
    any number of Ctrl-Cs (uvicorn, hypercorn and granian install theirs regardless). A
    handler of our own, unlike SIG_IGN, is reset to the default in a child at exec.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _launch(
    name: str,
    command: list[str],
    port: int,
    env: Mapping[str, str] | None,
    own_session: bool = False,
    as_user: str | None = None,
    cwd: Path = BASE_DIR,
    log_path: Path | None = None,
) -> ServerProcess:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # A restart (log_path given) adds to the log it already has; a new server starts afresh.
    log = log_path.open("a") if log_path else (ARTIFACTS / f"{name}-{port}.log").open("w")
    log_path = Path(log.name)
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=dict(env or os.environ),
        start_new_session=own_session,
        **as_user_kwargs(as_user),
    )
    log.close()
    server = ServerProcess(name, port, process, log_path, command)
    STARTED.append(server)
    return server


def as_user_kwargs(user: str | None) -> dict[str, Any]:
    """Popen's arguments that run a child as `user` (root only), with that user's groups only."""
    if user is None or user == getpass.getuser():
        return {}
    record = pwd.getpwnam(user)
    return {"user": record.pw_uid, "group": record.pw_gid, "extra_groups": []}


def _spawn(
    name: str,
    command: list[str],
    port: int,
    env: Mapping[str, str] | None,
    own_session: bool = False,
) -> ServerProcess:
    server = _launch(name, command, port, env, own_session)
    process = server.process
    try:
        wait_for_port(port, process)
    except Exception:
        server.stop()
        raise RuntimeError(f"{name} failed to start; its log:\n{server.log()}") from None
    return server


def server_env(**overrides: str) -> dict[str, str]:
    """The environment for a server process: ours, minus test-only variables, plus overrides."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def database_env(database: Mapping[str, Any]) -> dict[str, str]:
    """
    What a server process needs to open the database that these Django settings describe
    (`settings.DATABASES[alias]`, e.g. the test database pytest-django has just made):
    DATABASE_PATH for a SQLite file, DATABASE_URL, connection options included, otherwise.
    """
    if database["ENGINE"].endswith("sqlite3"):
        return {"DATABASE_PATH": str(database["NAME"])}
    options = {}
    if database.get("CONN_MAX_AGE"):
        options["conn_max_age"] = str(database["CONN_MAX_AGE"])
    if database.get("CONN_MAX_AGE", 0) is None:
        options["conn_max_age"] = "none"
    if database.get("CONN_HEALTH_CHECKS"):
        options["conn_health_checks"] = "true"
    pool = database.get("OPTIONS", {}).get("pool")
    if pool:
        options["pool"] = "true"
        options.update({f"pool_{k}": str(v) for k, v in (pool if pool is not True else {}).items()})
    url = postgres_url(
        database["HOST"], int(database["PORT"]), database["PASSWORD"], database["NAME"],
        user=database["USER"],
    )  # fmt: skip
    return {"DATABASE_URL": with_options(url, options)}


def start_daphne(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    name: str = "daphne",
    app: str = "config.asgi:application",
    own_group: bool = False,
) -> ServerProcess:
    """
    Start daphne serving `app` on 127.0.0.1; its log is `<name>-<port>.log`. `own_group`: in a
    process group of its own, which `ServerProcess.interrupt` signals as a terminal would.
    """
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        *extra_args,
        app,
    ]
    return _spawn(name, command, port, env or server_env(), own_session=own_group)


def start_uvicorn(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    app: str = "config.asgi:application",
    extra_args: tuple[str, ...] = (),
) -> ServerProcess:
    """Start uvicorn on 127.0.0.1 with `extra_args` only (`start_server` adds make run's)."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        *extra_args,
        app,
    ]
    return _spawn("uvicorn", command, port, env or server_env())


# ---------------------------------------------------------------------------- the four servers
#
# `make run SERVER=...`, the browser suite's server matrix, `make bench` and
# `make conformance` all start a server through `server_command`, with these flags: the one
# place that knows them. docs/browser-and-servers.md ("Which ASGI server?") and docs/security.md
# ("Limits") say why each one is set.
# The shared aims, where a server lets us choose:
# - 512 KiB per message (and per frame): twice the largest WS_LIMITS message (echo, 256 KiB),
#   so the consumer's own limit is what a visitor meets, and no socket makes the server buffer
#   its default (1 MiB on daphne, 16 MiB on uvicorn and hypercorn).
# - a ping after 20 s of silence (under the 60 s idle cut of common proxies), its pong due
#   within 15 s: a dead peer is dropped, and leaves the lobby, within about 37 s.
# - 5 s for the handshake (slow-loris); 10 s for consumers to finish after their client left
#   or the server was told to stop.
# - one process: the in-memory channel layer of `make run` lives in one process.
# - no permessage-deflate, no trust in X-Forwarded-For (no proxy in front of `make run`).
MAX_MESSAGE = 512 * 1024
SERVER_FLAGS: dict[str, tuple[str, ...]] = {
    "daphne": (
        "--websocket-max-message-size", str(MAX_MESSAGE),
        "--websocket-max-frame-size", str(MAX_MESSAGE),
        "--ping-interval", "20",
        "--ping-timeout", "15",
        "--websocket_connect_timeout", "5",
        "--application-close-timeout", "10",
        # A socket's longest life: channels-redis's group_expiry, so none outlives its groups.
        "--websocket_timeout", "86400",
    ),
    "uvicorn": (
        "--ws", "websockets-sansio",
        "--ws-max-size", str(MAX_MESSAGE),
        "--ws-ping-interval", "20",
        "--ws-ping-timeout", "15",
        # On by default: zlib state per socket and CPU per message, for small messages.
        "--ws-per-message-deflate", "false",
        # On by default for 127.0.0.1: any local process could then claim any client address.
        "--no-proxy-headers",
        "--timeout-graceful-shutdown", "10",
        # Django's ASGI application has no lifespan protocol.
        "--lifespan", "off",
        "--no-access-log",
    ),
    "hypercorn": (
        # Message cap, ping interval and graceful timeout are not command-line flags: they come
        # from HypercornConfig below. Workers 0: serve in this process (no supervisor).
        "--config", "python:tools.servers.HypercornConfig",
        "--workers", "0",
        "--worker-class", "uvloop",
    ),
    "granian": (
        # ASGI without lifespan; one worker process with one runtime thread.
        "--interface", "asginl",
        "--workers", "1",
        "--runtime-threads", "1",
        "--loop", "uvloop",
        "--http", "1",
        "--http1-header-read-timeout", "5000",
        "--workers-kill-timeout", "10",
        "--no-access-log",
    ),
}  # fmt: skip


class HypercornConfig:
    """Hypercorn's settings that have no command-line flag (see SERVER_FLAGS)."""

    websocket_max_message_size = MAX_MESSAGE
    # Hypercorn sends pings but has no pong timeout: a dead peer is found by TCP alone.
    websocket_ping_interval = 20.0
    # Seconds consumers get after SIGTERM before their tasks are cancelled.
    graceful_timeout = 10.0
    keep_alive_timeout = 5.0


SERVERS = tuple(SERVER_FLAGS)

# Each server's grace for applications when it is told to stop (SIGTERM, Ctrl-C), the
# "10 s for consumers" above: the flag that sets it, and its value in SERVER_FLAGS. daphne
# cancels every application at once and waits for them, at most its application close timeout
# (apps/core/daphne_shutdown.py); the others give them the grace first.
GRACE_FLAGS = {
    "daphne": "--application-close-timeout",
    "uvicorn": "--timeout-graceful-shutdown",
    "hypercorn": "--graceful-timeout",  # on the command line, it overrides HypercornConfig's
    "granian": "--workers-kill-timeout",
}
GRACE_SECONDS = 10


def flags_with_grace(server: str, seconds: int) -> tuple[str, ...]:
    """`make run`'s flags for `server`, with its stop grace set to `seconds` (tests use less)."""
    flags = list(SERVER_FLAGS[server])
    flag = GRACE_FLAGS[server]
    if flag in flags:
        flags[flags.index(flag) + 1] = str(seconds)
    else:
        flags += [flag, str(seconds)]
    return tuple(flags)


def server_command(
    server: str,
    port: int,
    host: str = "127.0.0.1",
    app: str = "config.asgi:application",
    flags: tuple[str, ...] | None = None,
) -> list[str]:
    """The command line that starts `server` on host:port, with `make run`'s flags by default."""
    flags = SERVER_FLAGS[server] if flags is None else flags
    bind = {
        "daphne": ["-b", host, "-p", str(port)],
        "uvicorn": ["--host", host, "--port", str(port)],
        "hypercorn": ["--bind", f"{host}:{port}"],
        "granian": ["--host", host, "--port", str(port)],
    }[server]
    return [sys.executable, "-m", server, *bind, *flags, app]


def start_server(
    server: str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    app: str = "config.asgi:application",
    flags: tuple[str, ...] | None = None,
    name: str | None = None,
    own_group: bool = False,
) -> ServerProcess:
    """
    Start one of SERVERS on 127.0.0.1, with `make run`'s flags unless `flags` is given;
    `own_group` as for `start_daphne`.
    """
    port = port or free_port()
    command = server_command(server, port, app=app, flags=flags)
    return _spawn(name or server, command, port, env or server_env(), own_session=own_group)


def start_command(
    name: str, command: list[str], port: int, env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Start any other server that will listen on `port` (e.g. a benchmark's bare ceiling)."""
    return _spawn(name, command, port, env or server_env())


def start_redis(port: int | None = None) -> ServerProcess:
    """A throwaway redis-server: no persistence, loopback only."""
    port = port or free_port()
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    return _spawn("redis", command, port, None)


# ---------------------------------------------------------------------------- Redis with Sentinel
# A primary, one replica and three Sentinels (deploy/redis.conf, deploy/sentinel.conf): what
# `make cluster` runs under supervisord, and what `start_redis_group` runs for tests. Clients
# find the primary through the Sentinels (apps/core/redis_clients.py).
MASTER_NAME = "showcase"
# How long a primary may not answer before a Sentinel thinks it down (deploy/sentinel.conf).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
# How long a restarted Redis server waits for the Sentinels to promote another before it gives
# up and starts as an empty primary (only when no other server of the group is left).
REJOIN_LIMIT_SECONDS = 60.0


@dataclass
class RedisGroup:
    """Where a Redis group lives: its servers (the first starts as primary) and Sentinels."""

    host: str
    nodes: list[int]
    sentinels: list[int]
    password: str
    master_name: str = MASTER_NAME

    def sentinel_list(self) -> str:
        """The Sentinels' addresses as REDIS_SENTINELS spells them: "host:port,host:port"."""
        return ",".join(f"{self.host}:{port}" for port in self.sentinels)

    def env(self) -> dict[str, str]:
        """The settings that point a process at this group (REDIS_SENTINELS and the rest)."""
        return {
            "REDIS_SENTINELS": self.sentinel_list(),
            "REDIS_MASTER_NAME": self.master_name,
            "REDIS_PASSWORD": self.password,
        }

    def client(self, port: int, **options: Any) -> Any:
        """A (synchronous) redis-py client of one server or Sentinel of the group."""
        import redis

        options.setdefault("decode_responses", True)
        return redis.Redis(
            host=self.host, port=port, password=self.password, socket_timeout=2, **options
        )

    def primary(self) -> tuple[str, int] | None:
        """The primary's address as a majority of the Sentinels that answer name it, or None."""
        votes: dict[tuple[str, int], int] = {}
        for port in self.sentinels:
            with contextlib.suppress(Exception), self.client(port) as sentinel:
                found = sentinel.sentinel_get_master_addr_by_name(self.master_name)
                if found:
                    address = (found[0], int(found[1]))
                    votes[address] = votes.get(address, 0) + 1
        if not votes:
            return None
        best = max(votes, key=votes.__getitem__)
        return best if votes[best] * 2 > len(self.sentinels) else None

    def wait_for_primary(self, other_than: int | None = None, timeout: float = 30.0) -> int:
        """
        Wait until a majority of Sentinels name a primary (other than port `other_than`) that
        answers as one; return its port.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.primary()
            if found and found[1] != other_than and self.role(found[1]) == "master":
                return found[1]
            time.sleep(0.05)
        raise TimeoutError(f"the Sentinels named no new primary within {timeout} s")

    def role(self, port: int) -> str | None:
        """What a server says it is ("master" or "slave"), or None if it does not answer."""
        try:
            with self.client(port) as server:
                return server.execute_command("ROLE")[0]
        except Exception:
            return None

    def wait_for_replica(self, port: int, timeout: float = 30.0) -> None:
        """Wait until server `port` is a replica whose link to the primary is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), self.client(port) as server:
                role = server.execute_command("ROLE")
                if role[0] == "slave" and role[3] == "connected":
                    return
            time.sleep(0.05)
        raise TimeoutError(f"Redis on port {port} was no connected replica within {timeout} s")


def redis_values(
    group: RedisGroup,
    node: int | None = None,
    sentinel: int | None = None,
    directory: Path = BASE_DIR,
) -> dict[str, str]:
    """The placeholders of deploy/redis.conf (node n) or deploy/sentinel.conf (sentinel n)."""
    values = {
        "HOST": group.host,
        "DIR": str(directory),
        "PASSWORD": group.password,
        "MASTER_NAME": group.master_name,
        "PRIMARY_HOST": group.host,
        "PRIMARY_PORT": str(group.nodes[0]),
        "REPLICA_HOST": group.host,
        "REPLICA_PORT": str(group.nodes[1]),
        "DOWN_AFTER_MS": str(DOWN_AFTER_MS),
        "FAILOVER_TIMEOUT_MS": str(FAILOVER_TIMEOUT_MS),
    }
    values["PORT"] = str(group.nodes[node] if node is not None else group.sentinels[sentinel or 0])
    return values


def write_redis_group(group: RedisGroup, directory: Path) -> tuple[list[Path], list[Path]]:
    """
    Each server's and each Sentinel's filled-in configuration and working directory under
    `directory` (redis0/, redis1/, sentinel0/, ...; readable by the owner only: it holds the
    password). Returns the server configurations and the Sentinel configurations.
    """
    nodes, sentinels = [], []
    for kind, count, template, out in (
        ("redis", len(group.nodes), "redis.conf", nodes),
        ("sentinel", len(group.sentinels), "sentinel.conf", sentinels),
    ):
        for n in range(count):
            folder = directory / f"{kind}{n}"
            shutil.rmtree(folder, ignore_errors=True)  # a restart's marker must not survive
            folder.mkdir(parents=True, mode=0o700)
            values = redis_values(
                group, node=n if kind == "redis" else None, sentinel=n, directory=folder
            )
            config = folder / template
            config.touch(mode=0o600)
            config.write_text(render(DEPLOY_DIR / template, values))
            out.append(config)
    return nodes, sentinels


def redis_node_command(
    group: RedisGroup, node: int, config: Path, python: str = sys.executable
) -> list[str]:
    """How a server of the group starts: through `redis-node`, which asks the Sentinels first."""
    return [
        python, "-m", "tools.servers", "redis-node", str(config),
        "--sentinels", group.sentinel_list(), "--master-name", group.master_name,
        "--first-primary", f"{group.host}:{group.nodes[0]}",
    ]  # fmt: skip


def sentinel_command(config: Path) -> list[str]:
    """How a Sentinel starts: Redis's own, from the installed redis-server."""
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
    return [binary, str(config), "--sentinel"]


def run_sentinel_node(argv: list[str]) -> None:
    """
    `python -m tools.servers sentinel-node CONFIG --first-primary HOST:PORT`: become a Sentinel
    of a group. On its first start it waits (up to REJOIN_LIMIT_SECONDS) for the first primary
    to listen. The primary starts through `redis-node`, a Python process, which on a busy
    machine took 4 s to reach redis-server; a Sentinel started at once judged it down after
    DOWN_AFTER_MS and failed over to the replica before anything had run. Later starts (a
    crashed Sentinel, restarted by supervisord) go straight on: the group is running by then.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.servers sentinel-node")
    parser.add_argument("config", type=Path)
    parser.add_argument("--first-primary", required=True, help="host:port")
    args = parser.parse_args(argv)
    marker = args.config.parent / "started-once"
    if not marker.exists():
        marker.touch()
        host, _, port = args.first_primary.rpartition(":")
        deadline = time.monotonic() + REJOIN_LIMIT_SECONDS
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    command = sentinel_command(args.config)
    os.execv(command[0], command)  # noqa: S606 (supervisord runs this Sentinel by its pid)


def run_redis_node(argv: list[str]) -> None:
    """
    `python -m tools.servers redis-node CONFIG ...`: become one Redis server of a group, in the
    role the Sentinels say. On its first start (no marker in its directory) a server takes the
    role it was configured with. A later start is a restart after a crash, with no data (no
    persistence): while the Sentinels still name this server the primary, it waits for them to
    promote the replica (its replica would otherwise copy an empty primary and lose
    everything), then starts as a replica of the new primary.
    """
    import argparse
    import shlex

    import redis

    parser = argparse.ArgumentParser(prog="python -m tools.servers redis-node")
    parser.add_argument("config", type=Path)
    parser.add_argument("--sentinels", required=True)
    parser.add_argument("--master-name", default=MASTER_NAME)
    parser.add_argument("--first-primary", required=True, help="host:port")
    args = parser.parse_args(argv)
    # Redis rewrites this file itself (Sentinel asks it to, after a failover), quoting values.
    lines = [line for line in args.config.read_text().splitlines() if line.strip()[:1] != "#"]
    settings = {words[0]: words[1:] for words in map(shlex.split, lines) if words}
    me = (settings["bind"][0], int(settings["port"][0]))
    password = settings.get("requirepass", [None])[0]
    marker = args.config.parent / "started-once"
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
    command = [binary, str(args.config)]

    def say(text: str) -> None:
        print(f"redis-node {me[0]}:{me[1]}: {text}", flush=True)

    if not marker.exists():
        marker.touch()
        host, _, port = args.first_primary.rpartition(":")
        if (host, int(port)) != me:
            command += ["--replicaof", host, port]
        say("first start, as " + ("primary" if (host, int(port)) == me else "a replica"))
        os.execv(binary, command)  # noqa: S606 (supervisord runs this server by its pid)
    sentinels = [
        (host, int(port))
        for host, _, port in (item.rpartition(":") for item in args.sentinels.split(","))
    ]
    deadline = time.monotonic() + REJOIN_LIMIT_SECONDS
    said = None
    while True:
        named = None
        for host, port in sentinels:
            with (
                contextlib.suppress(redis.RedisError, OSError),
                redis.Redis(
                    host, port, password=password, socket_timeout=1, decode_responses=True
                ) as sentinel,
            ):
                found = sentinel.sentinel_get_master_addr_by_name(args.master_name)
                if found:
                    named = (found[0], int(found[1]))
                    break
        if named != said:
            said = named
            say(f"restarted with no data; the Sentinels name {named} the primary")
        if named and named != me:
            say(f"restarted: the Sentinels name {named[0]}:{named[1]}; joining it as a replica")
            command += ["--replicaof", named[0], str(named[1])]
            break
        if time.monotonic() > deadline:
            say(f"no other primary after {REJOIN_LIMIT_SECONDS:.0f} s: starting as primary")
            command += ["--replicaof", "no", "one"]
            break
        time.sleep(0.1)
    os.execv(binary, command)  # noqa: S606


def start_redis_group(host: str = "127.0.0.1", directory: Path | None = None) -> "RunningGroup":
    """
    A Redis primary, one replica and three Sentinels on `host`, as plain processes (tests):
    everything `make cluster` runs under supervisord, without supervisord's restarts (a test
    restarts a killed server itself: RunningGroup.restart).
    """
    ports = [free_port() for _ in range(5)]
    group = RedisGroup(host, ports[:2], ports[2:], secrets.token_urlsafe(24))
    directory = directory or ARTIFACTS / f"redis-group-{ports[0]}"
    nodes, sentinels = write_redis_group(group, directory)
    running = RunningGroup(group, [], {})
    try:
        for n, config in enumerate(nodes):
            running.commands[group.nodes[n]] = redis_node_command(group, n, config)
            running.restart(group.nodes[n])
        group.wait_for_replica(group.nodes[1])
        for n, config in enumerate(sentinels):
            command = sentinel_command(config)
            running.processes.append(_spawn(f"sentinel{n}", command, group.sentinels[n], None))
        wait_for_sentinels(group)
    except BaseException:
        running.stop()
        raise
    return running


def wait_for_sentinels(group: RedisGroup, timeout: float = 30.0) -> None:
    """Wait until every Sentinel knows the replica and the other Sentinels (ready to fail over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = 0
        for port in group.sentinels:
            with contextlib.suppress(Exception), group.client(port) as sentinel:
                state = sentinel.sentinel_master(group.master_name)
                others = len(group.sentinels) - 1
                if state["num-slaves"] >= 1 and state["num-other-sentinels"] >= others:
                    ready += 1
        if ready == len(group.sentinels):
            return
        time.sleep(0.05)
    raise TimeoutError(f"the Sentinels did not all see the group within {timeout} s")


@dataclass
class RunningGroup:
    """A Redis group started by `start_redis_group`: its layout and its processes."""

    group: RedisGroup
    processes: list[ServerProcess]
    commands: dict[int, list[str]]  # how each server starts, by port

    def node(self, port: int) -> ServerProcess:
        """The (latest) process of the server on `port`."""
        return next(p for p in reversed(self.processes) if p.port == port)

    def restart(self, port: int) -> ServerProcess:
        """Start the server on `port` (again): after a crash, it rejoins as a replica."""
        index = self.group.nodes.index(port)
        server = _spawn(f"redis{index}", self.commands[port], port, None)
        self.processes.append(server)
        return server

    def stop(self) -> None:
        """Stop every server and Sentinel."""
        for process in self.processes:
            process.stop()


def start_worker(
    env: Mapping[str, str] | None = None,
    channels: tuple[str, ...] = ("jobs",),
    name: str = "runworker",
    timeout: float = 15.0,
) -> ServerProcess:
    """
    Start `manage.py runworker <channels>` (it needs a shared channel layer: REDIS_URL in
    `env`). A worker listens on no port: it is ready once it logs that it runs.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "manage.py", "runworker", *channels]
    log_path = ARTIFACTS / f"{name}-{'-'.join(channels)}-{os.getpid()}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=BASE_DIR,
            env=dict(env or server_env()),
        )
    worker = ServerProcess(name, 0, process, log_path, command)
    STARTED.append(worker)
    try:
        wait_while_working(
            process, lambda: "Running worker for channels" in worker.log(), "running", timeout
        )
    except (RuntimeError, TimeoutError) as failed:
        worker.stop()
        raise RuntimeError(f"{name} failed to start ({failed}); its log:\n{worker.log()}") from None
    return worker


def start_xvfb(timeout: float = 15.0) -> tuple[ServerProcess, str]:
    """
    A virtual X display of our own for browsers that cannot run headless (WebKitGTK's
    MiniBrowser): Xvfb picks a free display number and writes it to a pipe (`-displayfd`), so
    two runs never share one. Returns the process and its DISPLAY (e.g. ":3"); never depends on
    a DISPLAY that happens to exist. Listens on no TCP port.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    binary = find_binary("Xvfb", "/usr/bin/Xvfb")
    read_end, write_end = os.pipe()
    command = [binary, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24"]
    command += ["-nolisten", "tcp"]
    log_path = ARTIFACTS / f"xvfb-{os.getpid()}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, pass_fds=[write_end], cwd=BASE_DIR
        )
    os.close(write_end)
    server = ServerProcess("xvfb", 0, process, log_path, command)
    try:
        number = _read_line(read_end, timeout)
    finally:
        os.close(read_end)
    if not number.isdigit():
        server.stop()
        raise RuntimeError(f"Xvfb gave no display number; its log:\n{server.log()}")
    return server, f":{number}"


def _read_line(fd: int, timeout: float) -> str:
    """One line from a pipe, or "" if none comes within `timeout` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


@contextlib.contextmanager
def static_site(directory: Path, port: int | None = None) -> Iterator[str]:
    """
    A plain static file server for `directory` on 127.0.0.1 (in a thread of this process), for
    pages of *another origin* than the showcase: the browser tests' foreign page. Yields its
    base URL.
    """
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="static site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Stop the server when the block ends, however it ends."""
    try:
        yield server
    finally:
        server.stop()


def start_nginx(config: Path, port: int, prefix: Path, name: str = "nginx") -> ServerProcess:
    """
    nginx in the foreground (the config says `daemon off;`) as the current user, listening on
    `port`; relative paths in the config resolve under `prefix`. Errors go to its log.
    """
    binary = find_binary("nginx", "/usr/sbin/nginx")
    command = [binary, "-p", f"{prefix}/", "-e", "stderr", "-c", str(config)]
    # Its own session: a Ctrl-C meant for the caller must not stop it behind the caller's back.
    server = _spawn(name, command, port, None, own_session=True)
    # nginx listens before it writes its pid file (deploy/nginx.conf: under `prefix`), which the
    # cluster's tools and tests read: its start is over once the file names this process.
    pid_file = prefix / "nginx.pid"

    def written() -> bool:
        return pid_file.exists() and pid_file.read_text().strip() == str(server.process.pid)

    try:
        wait_while_working(server.process, written, "writing its pid file")
    except (RuntimeError, TimeoutError):
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------- PostgreSQL
#
# PostgreSQL for the tests (a throwaway server: `start_postgres()`, `python -m tools.servers
# with-postgres -- COMMAND`), the bench and `make cluster` (supervisord's program `postgres`,
# from `PostgresProgram`): the same `postgres` command line, on a listen address and port,
# over a data directory that `init_postgres` creates once, run by an unprivileged user.
# `initdb` and `postgres` refuse to run as root: as root (sessions, CI) they run as the system
# user `postgres`, who owns the data directory; as anyone else, as that user.
POSTGRES_ROLE = "showcase"  # the role initdb creates (a superuser), with a generated password
POSTGRES_DATABASE = "showcase"
POSTGRES_READY = "database system is ready to accept connections"


def postgres_binary(name: str) -> str:
    """A PostgreSQL program: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    found = (str(debian[-1]) if debian else None) or shutil.which(name)
    if not found:
        raise FileNotFoundError(
            f"PostgreSQL's {name} not found. On Debian: apt-get install -y postgresql "
            "(make system-deps does this as root; the system service is never used)."
        )
    return found


def postgres_os_user() -> str:
    """Who runs PostgreSQL: `postgres` when we are root (it refuses root), else ourselves."""
    return "postgres" if os.geteuid() == 0 else getpass.getuser()


def _give(path: Path, user: str) -> None:
    # The data directory must belong to the user who runs the server.
    if user != getpass.getuser():
        record = pwd.getpwnam(user)
        os.chown(path, record.pw_uid, record.pw_gid)


def init_postgres(data_dir: Path, password: str, os_user: str, durable: bool = True) -> bool:
    """
    `initdb` into `data_dir` unless it holds a cluster already (then False): the role
    POSTGRES_ROLE with `password`, which every TCP client must give (scram-sha-256, from any
    address: the server listens only where it is told to). `durable=False` skips the fsyncs
    (throwaway servers).
    """
    if (data_dir / "PG_VERSION").exists():
        return False
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _give(data_dir, os_user)
    command = [
        postgres_binary("initdb"),
        "--pgdata", str(data_dir),
        "--username", POSTGRES_ROLE,
        "--auth-host", "scram-sha-256",
        "--auth-local", "peer",
        "--encoding", "UTF8",
        "--locale", "C.UTF-8",
        *(() if durable else ("--no-sync",)),
    ]  # fmt: skip
    # The password in a file only that user can read, for as long as initdb runs (not on a
    # command line, and initdb cannot reopen a pipe that root made).
    with tempfile.NamedTemporaryFile("w", prefix="showcase-pw-") as pwfile:
        pwfile.write(password)
        pwfile.flush()
        _give(Path(pwfile.name), os_user)
        done = subprocess.run(
            [*command, "--pwfile", pwfile.name],
            capture_output=True,
            text=True,
            cwd=data_dir,
            **as_user_kwargs(os_user),
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"initdb into {data_dir} as {os_user} failed (that user must be able to reach the "
            f"directory):\n{done.stdout}{done.stderr}"
        )
    # Any address may try: the listen address decides who can reach the server at all, and
    # make cluster HOSTS=3 connects from other network namespaces.
    (data_dir / "pg_hba.conf").write_text(
        "# TYPE  DATABASE  USER  ADDRESS  METHOD  (written by tools/servers.py)\n"
        "local   all       all            peer\n"
        "host    all       all   all      scram-sha-256\n"
    )
    return True


def postgres_command(
    data_dir: Path, host: str, port: int, durable: bool = True, settings: tuple[str, ...] = ()
) -> list[str]:
    """
    The `postgres` command line: TCP on host:port only (no unix socket, so no socket file is
    left behind and no path is too long), logging to its stdout; `durable=False` trades crash
    safety for speed (throwaway servers: no fsync); `settings` adds `name=value` settings.
    """
    command = [
        postgres_binary("postgres"),
        "-D", str(data_dir),
        "-h", host,
        "-p", str(port),
        "-c", "unix_socket_directories=",
        "-c", "logging_collector=off",
    ]  # fmt: skip
    if not durable:
        settings = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", *settings)
    for setting in settings:
        command += ["-c", setting]
    return command


def postgres_url(
    host: str,
    port: int,
    password: str,
    database: str = POSTGRES_DATABASE,
    user: str = POSTGRES_ROLE,
) -> str:
    """The DATABASE_URL of a database on such a server."""
    address = f"[{host}]" if ":" in host else host
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgres://{credentials}@{address}:{port}/{quote(database, safe='')}"


def with_options(url: str, options: Mapping[str, str]) -> str:
    """A DATABASE_URL with query options (config/database.py says which there are)."""
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{url}?{query}" if query else url


def wait_for_postgres(
    log_path: Path, process: subprocess.Popen | None, since: int = 0, timeout: float = 60.0
) -> None:
    """Return once the server's log (after byte `since`) says it accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}")
        if log_path.exists():
            with log_path.open("rb") as log:
                log.seek(since)
                if POSTGRES_READY.encode() in log.read():
                    return
        time.sleep(0.02)
    raise TimeoutError(f"PostgreSQL was not ready within {timeout} s; see {log_path}")


def create_database(url: str, name: str = POSTGRES_DATABASE) -> bool:
    """Create database `name` on the server of `url` (any database of it) unless it exists."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, dbname="postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


@dataclass
class Postgres:
    """
    A PostgreSQL server that this process started: `url()` names a database on it, `restart()`
    stops it fast (clients are cut off) and starts it again on the same port, `stop()` ends
    it and, for a throwaway server, removes its data.
    """

    server: ServerProcess
    data_dir: Path
    host: str
    password: str
    os_user: str
    durable: bool
    throwaway: Path | None = None

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self.server.port

    def url(self, database: str = POSTGRES_DATABASE, **options: str) -> str:
        """The DATABASE_URL of `database`, with query `options` (e.g. conn_max_age="60")."""
        return with_options(postgres_url(self.host, self.port, self.password, database), options)

    def restart(self) -> None:
        """A fast shutdown (SIGINT: every client connection is cut), then the same server again."""
        self.server.stop(signal.SIGINT, timeout=30)
        since = self.server.log_size()
        self.server = _launch(
            self.server.name,
            self.server.command,
            self.port,
            None,
            as_user=self.os_user,
            cwd=self.data_dir,
            log_path=self.server.log_path,
        )
        wait_for_postgres(self.server.log_path, self.server.process, since)

    def stop(self) -> None:
        """A fast shutdown; a throwaway server's data goes with it."""
        self.server.stop(signal.SIGINT, timeout=30)
        if self.throwaway is not None:
            shutil.rmtree(self.throwaway, ignore_errors=True)


def start_postgres(
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    password: str | None = None,
    os_user: str | None = None,
    name: str = "postgres",
    settings: tuple[str, ...] = (),
) -> Postgres:
    """
    A PostgreSQL server on host:port with the database POSTGRES_DATABASE. Without `data_dir`,
    a throwaway one: a fresh data directory (no fsync), removed by `stop()`. With one, its
    cluster is created there once (`password` must then be the same each time). `settings`:
    more `name=value` server settings (e.g. `log_connections=on`).
    """
    os_user = os_user or postgres_os_user()
    port = port or free_port()
    throwaway = None
    if data_dir is None:
        # Not under pytest's tmp_path: its folders are private to the current user.
        throwaway = Path(tempfile.mkdtemp(prefix="showcase-postgres-"))
        _give(throwaway, os_user)
        data_dir = throwaway / "data"
    password = password or secrets.token_urlsafe(24)
    durable = throwaway is None
    init_postgres(data_dir, password, os_user, durable)
    command = postgres_command(data_dir, host, port, durable, settings)
    server = _launch(name, command, port, None, as_user=os_user, cwd=data_dir)
    postgres = Postgres(server, data_dir, host, password, os_user, durable, throwaway)
    try:
        wait_for_postgres(server.log_path, server.process)
        create_database(postgres.url())
    except BaseException:
        postgres.stop()
        raise
    return postgres


@dataclass
class PostgresProgram:
    """
    PostgreSQL as a supervisord program (deploy/postgres.conf, `make cluster`): its data
    directory (created once by `init()`), the address and port it listens on, its password,
    and the unprivileged user who owns the directory and runs the server.
    """

    data_dir: Path
    password: str
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    os_user: str = field(default_factory=postgres_os_user)

    def init(self) -> bool:
        """`initdb` the data directory unless it holds a cluster already (then False)."""
        return init_postgres(self.data_dir, self.password, self.os_user)

    def url(self, database: str = POSTGRES_DATABASE, **options: str) -> str:
        """The DATABASE_URL of `database` on it, with query `options` (config/database.py)."""
        return with_options(postgres_url(self.host, self.port, self.password, database), options)

    def values(self, run_dir: Path) -> dict[str, str]:
        """deploy/postgres.conf's placeholders."""
        return {
            "RUN": str(run_dir),
            "POSTGRES_COMMAND": shlex.join(postgres_command(self.data_dir, self.host, self.port)),
            "POSTGRES_USER": self.os_user,
            "POSTGRES_DATA": str(self.data_dir),
        }


# ---------------------------------------------------------------------------- the cluster
# `make cluster` (tools/cluster.py) and the browser tests through nginx: the files in deploy/,
# filled in, with nginx in front of supervisord's daphne processes, worker and redis-server.
DEPLOY_DIR = BASE_DIR / "deploy"
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
APPLICATION = "config.asgi:application"


def render(template: Path, values: Mapping[str, str]) -> str:
    """A deploy/ template with its @NAME@ placeholders filled in; every one must have a value."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{template.name}: no value for @{match.group(1)}@")
        return values[match.group(1)]

    return PLACEHOLDER.sub(fill, template.read_text())


def wait_for_unix_socket(
    path: Path, process: subprocess.Popen | None = None, timeout: float = 30.0
) -> None:
    """Return once something accepts connections on the unix socket; fail if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}; {path} never listened")
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        ):
            sock.settimeout(0.2)
            sock.connect(str(path))
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listened on {path} within {timeout} s")


def supervisor_rpc(run_dir: Path) -> Any:
    """The XML-RPC interface of the supervisord whose unix socket is in `run_dir`."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(serverurl=f"unix://{run_dir / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://supervisord", transport=transport).supervisor


def wait_accepting(
    endpoint: str, process: subprocess.Popen | None = None, timeout: float = 30.0
) -> None:
    """Wait for a daphne endpoint ("unix:PATH" or "tcp:HOST:PORT") to accept connections."""
    kind, _, where = endpoint.partition(":")
    if kind == "unix":
        wait_for_unix_socket(Path(where), process, timeout)
        return
    host, _, port = where.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}; {where} never listened")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listened on {where} within {timeout} s")


# Which supervisor programs (deploy/supervisord.conf's [program:...] sections) each host of
# `make cluster HOSTS=3` runs. With one host, it runs them all.
HOST_PROGRAMS: dict[str, tuple[str, ...]] = {
    "a": ("daphne", "worker"),
    "b": ("daphne",),
    "c": ("redis", "sentinel"),
}
APP_HOSTS = ("a", "b")  # the hosts that run daphne, sharing the daphne processes out
POSTGRES_PORT = 5432  # with HOSTS=3, on host c
DATA_HOST = "c"  # the host of Redis and its Sentinels (and the database)
DAPHNE_PORT = 8000  # with HOSTS=3, daphne n listens on port 8000 + n of its host's address
REDIS_PORTS = (6379, 6380)  # with HOSTS=3, on host c; with one host, free ports
SENTINEL_PORTS = (26379, 26380, 26381)


def data_host_dir(run_dir: Path) -> Path:
    """With HOSTS=3, the directory of the host that keeps the data (Redis, PostgreSQL)."""
    return run_dir / "hosts" / DATA_HOST


def host_sections(text: str, programs: tuple[str, ...] | None) -> str:
    """
    A filled-in supervisord.conf with only the [program:x] sections for x in `programs` (all
    of them if None), the comments above each section going with it.
    """
    chunks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            # The comment block right above a header belongs to that section.
            comments: list[str] = []
            while chunks[-1] and chunks[-1][-1].startswith(";"):
                comments.insert(0, chunks[-1].pop())
            chunks.append(comments)
        chunks[-1].append(line)
    kept = []
    for chunk in chunks:
        header = next((line for line in chunk if line.startswith("[")), "")
        found = re.match(r"\[program:([\w-]+)\]", header)
        if programs is None or not found or found.group(1) in programs:
            kept.append("".join(chunk))
    return "".join(kept)


@dataclass
class Host:
    """
    One machine of the cluster: its name, its own directory (configuration, secrets, static
    files, logs), the address the other hosts reach it at, and its supervisord. With HOSTS=3
    a host is a network namespace (`netns`); with one host, this machine itself.
    """

    name: str
    run_dir: Path
    address: str = "127.0.0.1"
    netns: str | None = None
    supervisor: ServerProcess | None = None

    def prefix(self) -> list[str]:
        """What runs a command on this host: `ip netns exec NAME`, or nothing."""
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def rpc(self) -> Any:
        """This host's supervisord's XML-RPC interface (what supervisorctl talks to)."""
        return supervisor_rpc(self.run_dir)

    def programs(self) -> list[dict[str, Any]]:
        """What this host's supervisord says of each of its programs."""
        return self.rpc().getAllProcessInfo()


def program_name(info: dict[str, Any]) -> str:
    """supervisorctl's name for a program: `group:name`, or `name` when they are the same."""
    return f"{info['group']}:{info['name']}" if info["group"] != info["name"] else info["name"]


def restart_one_at_a_time(run_dir: Path, names: list[str]) -> None:
    """
    Restart these daphne programs in turn, each accepting again before the next stops, so
    nginx always has a process to send a reconnecting browser to.
    """
    cluster = Cluster.load(run_dir)
    for name in names:
        rpc = cluster.host_of(name).rpc()
        rpc.stopProcess(name)  # returns once it has stopped, as `supervisorctl restart` does
        rpc.startProcess(name)  # ... and once it has run for startsecs
        wait_accepting(cluster.daphne_endpoint(name))


@dataclass
class Cluster:
    """
    A running cluster: nginx on `port` in front of `workers` daphne processes (supervisor names
    `daphne:daphne0`, ...), the Channels worker, and a Redis group (two servers, three
    Sentinels), run by the supervisord of each host in `hosts`, each with its configuration,
    logs and sockets in its own directory. One host (`make cluster`) or three (HOSTS=3: a and b
    run daphne, c runs Redis; `network` joins them).
    """

    run_dir: Path
    workers: int
    hosts: list[Host]
    nginx: ServerProcess | None
    redis: RedisGroup
    network: "Network | None" = None  # HOSTS=3
    postgres: PostgresProgram | None = None

    # ------------------------------------------------------------ where things are
    @property
    def supervisor(self) -> ServerProcess:
        """The first host's supervisord (the only one, without HOSTS=3)."""
        assert self.hosts[0].supervisor is not None
        return self.hosts[0].supervisor

    @property
    def supervisors(self) -> list[ServerProcess]:
        """Every host's supervisord."""
        return [host.supervisor for host in self.hosts if host.supervisor is not None]

    @property
    def port(self) -> int:
        """nginx's port: the cluster's only port on 127.0.0.1."""
        assert self.nginx is not None
        return self.nginx.port

    @property
    def http_url(self) -> str:
        """The base URL for HTTP, through nginx."""
        assert self.nginx is not None
        return self.nginx.http_url

    @property
    def ws_url(self) -> str:
        """The base URL for WebSockets, through nginx."""
        assert self.nginx is not None
        return self.nginx.ws_url

    def redis_env(self) -> dict[str, str]:
        """The settings that point another process at the cluster's Redis (via Sentinel)."""
        return self.redis.env()

    @property
    def daphnes(self) -> list[str]:
        """Supervisor's names of the daphne processes."""
        return [f"daphne:daphne{n}" for n in range(self.workers)]

    def daphnes_on(self, host: str) -> list[str]:
        """The daphne processes that host `host` runs."""
        return [name for name in self.daphnes if self.host_of(name).name == host]

    def host_of(self, name: str) -> Host:
        """The host whose supervisord runs program `name` (e.g. `daphne:daphne1`)."""
        if len(self.hosts) == 1:
            return self.hosts[0]
        group, _, process = name.partition(":")
        if group == "daphne":
            number = int(process.removeprefix("daphne"))
            share = -(-self.workers // len(APP_HOSTS))  # hosts a and b share them, a first
            return self.host(APP_HOSTS[number // share])
        return next(self.host(h) for h, programs in HOST_PROGRAMS.items() if group in programs)

    def host(self, name: str) -> Host:
        """The host called `name`."""
        return next(host for host in self.hosts if host.name == name)

    def daphne_endpoint(self, name: str) -> str:
        """Where daphne `name` listens: "unix:PATH" or "tcp:ADDRESS:PORT"."""
        number = int(name.rpartition("daphne")[2])
        host = self.host_of(name)
        if host.netns is None:
            return f"unix:{host.run_dir / f'daphne{number}.sock'}"
        return f"tcp:{host.address}:{DAPHNE_PORT + number}"

    def socket_path(self, name: str) -> Path:
        """The unix socket a daphne process listens on (one host only)."""
        return Path(self.daphne_endpoint(name).removeprefix("unix:"))

    def ctl(self, *args: str, host: str | None = None) -> str:
        """Run a supervisorctl command against a host's supervisord; return what it printed."""
        run_dir = self.host(host).run_dir if host else self.hosts[0].run_dir
        command = [sys.executable, "-m", "supervisor.supervisorctl", "-c"]
        done = subprocess.run(
            [*command, str(run_dir / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=BASE_DIR,
        )
        return done.stdout + done.stderr

    @property
    def config(self) -> Path:
        """The first host's filled-in supervisord configuration."""
        return self.hosts[0].run_dir / "supervisord.conf"

    def rpc(self) -> Any:
        """The first host's supervisord's XML-RPC interface."""
        return self.hosts[0].rpc()

    # ------------------------------------------------------------ processes
    def status(self) -> dict[str, tuple[str, int | None]]:
        """Each program's state and pid (None unless it runs), by supervisor name."""
        return {
            program_name(info): (info["statename"], info["pid"] or None)
            for host in self.hosts
            for info in host.programs()
        }

    def pid(self, name: str) -> int:
        """The pid of a running program (e.g. `daphne:daphne0`)."""
        found = {program_name(i): i for i in self.host_of(name).programs()}.get(name)
        if found is None or found["statename"] != "RUNNING" or not found["pid"]:
            raise RuntimeError(f"{name} is {found['statename'] if found else 'MISSING'}")
        return found["pid"]

    def wait_serving(self, name: str, other_than: int | None = None, timeout: float = 30) -> int:
        """Wait until daphne `name` runs (as a process other than `other_than`) and accepts."""
        host = self.host_of(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {program_name(i): i for i in host.programs()}.get(name, {})
            pid = found.get("pid") or None
            if found.get("statename") == "RUNNING" and pid is not None and pid != other_than:
                remaining = deadline - time.monotonic()
                supervisor = host.supervisor.process if host.supervisor else None
                wait_accepting(self.daphne_endpoint(name), supervisor, remaining)
                return pid
            time.sleep(0.05)
        raise TimeoutError(f"{name} was not serving again within {timeout} s")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send `sig` (kill -9 by default) to a program's process; return the pid it had."""
        pid = self.pid(name)
        os.kill(pid, sig)
        return pid

    def rolling_restart(self) -> dict[str, int]:
        """
        Restart every daphne, one at a time, each serving again before the next stops, so
        nginx always has a process to send a reconnecting browser to. Returns the new pids.
        """
        old = {name: self.pid(name) for name in self.daphnes}
        restart_one_at_a_time(self.run_dir, self.daphnes)
        return {name: self.wait_serving(name, other_than=old[name]) for name in self.daphnes}

    def restart_proxy(self) -> None:
        """
        Stop nginx the fast way (SIGTERM: every connection is cut at once, as when the proxy
        crashes or its host restarts it) and start it again on the same port and files. Not a
        reload, which lets the old workers keep their sockets until each closes by itself.
        """
        assert self.nginx is not None
        port = self.nginx.port
        self.nginx.stop()
        self.nginx = start_nginx(self.run_dir / "nginx.conf", port, self.run_dir)

    # ------------------------------------------------------------ Redis
    def redis_program(self, port: int) -> str:
        """Supervisor's name of the Redis server on `port`."""
        return f"redis:redis{self.redis.nodes.index(port)}"

    def fail_over(self, report: Any = None) -> dict[str, Any]:
        """
        `make cluster-failover`: SIGKILL the Redis primary, wait until the Sentinels have
        promoted the replica, then until supervisord's restart of the killed server has
        rejoined as a replica. Returns what happened, with times in seconds; `report(text)`
        hears each step as it happens.
        """
        say = report or (lambda text: None)
        old_port = self.redis.wait_for_primary()
        old = self.redis_program(old_port)
        pid = self.kill(old)
        killed = time.monotonic()
        say(f"killed the primary: {old} at {self.redis.host}:{old_port} (pid {pid}, SIGKILL)")
        new_port = self.redis.wait_for_primary(other_than=old_port)
        promoted = time.monotonic() - killed
        new = self.redis_program(new_port)
        say(f"new primary: {new} at {self.redis.host}:{new_port}, {promoted:.2f} s after")
        self.redis.wait_for_replica(old_port, timeout=90)
        rejoined = time.monotonic() - killed
        say(
            f"{old} was restarted by supervisord (pid {self.pid(old)}) and is a replica of "
            f"{new} again, {rejoined:.2f} s after the kill"
        )
        return {
            "old": old,
            "new": new,
            "killed_at": killed,  # time.monotonic()
            "promoted": promoted,
            "rejoined": rejoined,
        }

    # ------------------------------------------------------------ logs, stopping
    def logs(self) -> dict[str, str]:
        """Every log of the cluster (each supervisord's, nginx's, each program's), by name."""
        paths = [self.run_dir / "nginx-access.log"]
        if self.nginx is not None:
            paths.append(self.nginx.log_path)
        for host in self.hosts:
            paths += [host.run_dir / "supervisord.log", *sorted(host.run_dir.glob("logs/*.log"))]
        return {
            self.log_name(path): path.read_text(errors="replace") for path in paths if path.exists()
        }

    def log_name(self, path: Path) -> str:
        """A log's name: its file name, after its host's name with HOSTS=3 (`a/daphne0.log`)."""
        for host in self.hosts:
            if host.netns is not None and path.is_relative_to(host.run_dir):
                return f"{host.name}/{path.name}"
        return path.name

    def stop(self) -> None:
        """Stop nginx, then each host's supervisord (which stops its programs), then the hosts."""
        try:
            if self.nginx is not None:
                self.nginx.stop()
            for host in reversed(self.hosts):  # c last: the others leave Redis cleanly
                if host.supervisor is not None:
                    # Daphne and the worker get 15 s each, then PostgreSQL its fast shutdown.
                    host.supervisor.stop(timeout=60)
        finally:
            if self.network is not None:
                self.network.remove()

    # ------------------------------------------------------------ for the command line
    def describe(self) -> dict[str, Any]:
        """What `make cluster-restart` and `make cluster-failover` need to find this cluster."""
        return {
            "workers": self.workers,
            "hosts": [
                {"name": h.name, "run_dir": str(h.run_dir), "address": h.address, "netns": h.netns}
                for h in self.hosts
            ],
            "redis": {
                "host": self.redis.host,
                "nodes": self.redis.nodes,
                "sentinels": self.redis.sentinels,
                "master_name": self.redis.master_name,
            },
        }

    @classmethod
    def load(cls, run_dir: Path) -> "Cluster":
        """The cluster running from `run_dir`, as its `cluster.json` describes it."""
        described = json.loads((run_dir / "cluster.json").read_text())
        hosts = [
            Host(h["name"], Path(h["run_dir"]), h["address"], h["netns"])
            for h in described["hosts"]
        ]
        redis = described["redis"]
        password = (run_dir / "redis_password").read_text().strip()
        group = RedisGroup(
            redis["host"], redis["nodes"], redis["sentinels"], password, redis["master_name"]
        )
        return cls(run_dir, described["workers"], hosts, None, group)


def redis_group(address: str | None = None) -> RedisGroup:
    """
    Where the Redis group lives, with a new password: on host c's `address` at the well-known
    ports (HOSTS=3), or on free ports of 127.0.0.1.
    """
    password = secrets.token_urlsafe(24)
    if address is not None:
        return RedisGroup(address, list(REDIS_PORTS), list(SENTINEL_PORTS), password)
    ports = [free_port() for _ in range(5)]
    return RedisGroup("127.0.0.1", ports[:2], ports[2:], password)


# The listen queue nginx and each daphne ask for (deploy/): a thousand browsers reconnecting at
# once must wait in it, not be refused. The kernel caps every listen queue at
# net.core.somaxconn; `listen_queue_cap()` reads it, and `make cluster` says so when it is lower.
LISTEN_BACKLOG = 4096


def listen_queue_cap() -> int | None:
    """The kernel's cap on listen queues (net.core.somaxconn), or None where it cannot be read."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return None


def write_cluster_config(
    run_dir: Path,
    workers: int,
    port: int,
    daphne_args: tuple[str, ...] = (),
    static_root: Path | None = None,
    app: str = APPLICATION,
    hosts: list[Host] | None = None,
    redis: RedisGroup | None = None,
    postgres: PostgresProgram | None = None,
) -> list[str]:
    """
    Fill in deploy/'s templates: nginx's into `run_dir`, and each host's supervisord (with its
    Redis servers' and Sentinels' files, and PostgreSQL's program when `postgres` is given)
    into the host's own directory. Returns where the daphne processes will listen
    ("unix:PATH" or "tcp:ADDRESS:PORT"), in order.
    """
    hosts = hosts or [Host("local", run_dir)]
    if redis is None:
        redis = redis_group()
    layout = Cluster(run_dir, workers, hosts, None, redis)
    for folder in (run_dir / "logs", run_dir / "nginx-temp"):
        folder.mkdir(parents=True, exist_ok=True)
    endpoints = [layout.daphne_endpoint(name) for name in layout.daphnes]
    upstreams = [e.removeprefix("tcp:") if e.startswith("tcp:") else e for e in endpoints]
    values = {
        "ROOT": str(BASE_DIR),
        "RUN": str(run_dir),
        "PYTHON": sys.executable,
        "DAPHNE_FLAGS": " ".join(daphne_args),
        "APP": app,
        "USER": getpass.getuser(),
        "LISTEN": f"127.0.0.1:{port}",
        "ACCESS_LOG": str(run_dir / "nginx-access.log"),
        "STATIC_ROOT": str((static_root or BASE_DIR / "staticfiles").resolve()),
        "UPSTREAM_SERVERS": "\n".join(f"    server {u} max_fails=0;" for u in upstreams),
        "SENTINELS": redis.sentinel_list(),
        "MASTER_NAME": redis.master_name,
        "FIRST_PRIMARY": f"{redis.host}:{redis.nodes[0]}",
        "BACKLOG": str(LISTEN_BACKLOG),
    }
    for template in ("nginx.conf", "nginx-site.conf"):
        (run_dir / template).write_text(render(DEPLOY_DIR / template, values))
    for host in hosts:
        for folder in (host.run_dir / "logs", host.run_dir / "programs"):
            folder.mkdir(parents=True, exist_ok=True)
        # An earlier run's optional programs must not come back with this one.
        for stale in (host.run_dir / "programs").glob("*.conf"):
            stale.unlink()
        mine = layout.daphnes_on(host.name)
        first = int(mine[0].rpartition("daphne")[2]) if mine else 0
        environment = {
            "DEBUG": "0",
            "STATIC_MANIFEST": "1",
            "REDIS_SENTINELS": redis.sentinel_list(),
            "REDIS_MASTER_NAME": redis.master_name,
        }
        if host.netns is not None:
            environment["SHOWCASE_HOST"] = host.name
        host_values = {
            **values,
            "RUN": str(host.run_dir),
            "DAPHNES": str(len(mine)),
            "FIRST_DAPHNE": str(first),
            "DAPHNE_ENDPOINT": (
                f"unix:{host.run_dir}/daphne%(process_num)d.sock:lockfile=1"
                if host.netns is None
                else f"tcp:port={DAPHNE_PORT // 100}%(process_num)02d:interface={host.address}"
            )
            + f":backlog={LISTEN_BACKLOG}",
            "ENVIRONMENT": ",".join(f'{k}="{v}"' for k, v in environment.items()),
        }
        text = render(DEPLOY_DIR / "supervisord.conf", host_values)
        programs = None if host.netns is None else HOST_PROGRAMS[host.name]
        (host.run_dir / "supervisord.conf").write_text(host_sections(text, programs))
        if programs is None or "redis" in programs:
            write_redis_group(redis, host.run_dir)
            if postgres is not None:  # the database lives with Redis, on the data host
                program = render(DEPLOY_DIR / "postgres.conf", postgres.values(host.run_dir))
                (host.run_dir / "programs" / "postgres.conf").write_text(program)
    secret = run_dir / "redis_password"
    secret.touch(mode=0o600)
    secret.write_text(redis.password)
    (run_dir / "cluster.json").write_text(json.dumps({**layout.describe(), "port": port}, indent=2))
    return endpoints


def start_cluster(
    workers: int = 2,
    port: int | None = None,
    run_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    daphne_args: tuple[str, ...] = (),
    static_root: Path | None = None,
    app: str = APPLICATION,
    hosts: int = 1,
    delay_ms: float = 0.0,
    postgres: PostgresProgram | None = None,
    prepare: Callable[[dict[str, str]], None] | None = None,
) -> Cluster:
    """
    Fill in deploy/'s templates under `run_dir`, start each host's supervisord (Redis and its
    Sentinels, daphne x `workers`, the worker) and, once Redis has a primary and a replica and
    every daphne accepts, nginx on `port`. The caller has run `collectstatic` into
    `static_root` and migrated the database that `env` names; `env` is the processes'
    environment (SECRET_KEY, DATABASE_URL or DATABASE_PATH, ...). With `postgres` (whose data
    directory `init()` has made) the cluster runs PostgreSQL too, on the data host.
    `prepare(env)` runs once Redis and PostgreSQL accept, before nginx lets anyone in
    (`make cluster` migrates there), with the processes' environment.

    `hosts=3`: hosts a, b and c are network namespaces made for this cluster (Network), joined
    by veth links, with `delay_ms` of latency between them; each gets its own directory under
    `run_dir/hosts/`, with its configuration, secrets and static files copied in, as a
    deployment delivers them. Everything is removed again if the start fails.
    """
    port = port or free_port()
    run_dir = (run_dir or ARTIFACTS / f"cluster-{port}").resolve()
    env = dict(env or server_env())
    network = None
    started: list[ServerProcess] = []
    nginx = None
    try:
        if hosts == 1:
            layout = [Host("local", run_dir)]
            redis = None
        else:
            network = create_network(delay_ms=delay_ms)
            layout = [
                Host(
                    name,
                    data_host_dir(run_dir).parent / name,
                    network.address(name),
                    network.netns(name),
                )
                for name in HOST_PROGRAMS
            ]
            redis = redis_group(network.address(DATA_HOST))
            for host in layout:
                # What the deploy step delivers is delivered anew (the database's data stays).
                shutil.rmtree(host.run_dir / "static", ignore_errors=True)
                host.run_dir.mkdir(parents=True, exist_ok=True)
            if postgres is not None:
                # On host c's address, at PostgreSQL's own port there; the processes' URL (with
                # whatever connection options it has) follows it.
                old = f"@{postgres.host}:{postgres.port}/"
                postgres.host, postgres.port = network.address(DATA_HOST), POSTGRES_PORT
                url = env.get("DATABASE_URL", "")
                if old in url:
                    env["DATABASE_URL"] = url.replace(old, f"@{postgres.host}:{postgres.port}/")
        endpoints = write_cluster_config(
            run_dir, workers, port, daphne_args, static_root, app, layout, redis, postgres
        )
        cluster = Cluster.load(run_dir)
        cluster.network = network
        cluster.postgres = postgres
        env["REDIS_PASSWORD"] = cluster.redis.password
        postgres_log = cluster.host(cluster.hosts[-1].name).run_dir / "logs" / "postgres.log"
        postgres_log_start = postgres_log.stat().st_size if postgres_log.exists() else 0
        for host in cluster.hosts:
            host.supervisor = start_supervisor(host, env, port, static_root)
            started.append(host.supervisor)
        cluster.redis.wait_for_replica(cluster.redis.nodes[1])
        wait_for_sentinels(cluster.redis)
        if postgres is not None:
            data_host = cluster.hosts[-1].supervisor
            assert data_host is not None
            wait_for_postgres(postgres_log, data_host.process, since=postgres_log_start)
        if prepare is not None:
            prepare(env)
        for endpoint, name in zip(endpoints, cluster.daphnes, strict=True):
            supervisor = cluster.host_of(name).supervisor
            wait_accepting(endpoint, supervisor.process if supervisor else None)
        nginx = start_nginx(run_dir / "nginx.conf", port, run_dir, name="nginx")
        cluster.nginx = nginx
        # A daphne accepts before supervisord counts it RUNNING (startsecs): wait for both, so
        # whoever uses the cluster next finds every program settled.
        for name in cluster.daphnes:
            cluster.wait_serving(name)
    except BaseException as error:
        # Ctrl-C while starting, too: nothing may be left running.
        if nginx is not None:
            nginx.stop()
        for supervisor in reversed(started):
            supervisor.stop(timeout=30)
        if network is not None:
            network.remove()
        if not isinstance(error, Exception):
            raise
        raise RuntimeError(f"the cluster failed to start ({error}); see {run_dir}") from None
    return cluster


def start_supervisor(
    host: Host, env: Mapping[str, str], port: int, static_root: Path | None
) -> ServerProcess:
    """
    Start a host's supervisord. One host: with `env` as its environment. A host of HOSTS=3:
    the deploy step first copies what the host's processes need into its own directory (the
    settings and secrets as an environment file, readable by the owner only, and the static
    files' manifest), and the host's supervisord reads its environment from that file alone,
    as a service manager's EnvironmentFile= does on a real machine.
    """
    command = [sys.executable, "-m", "supervisor.supervisord", "-c"]
    command.append(str(host.run_dir / "supervisord.conf"))
    name = "supervisord" if host.netns is None else f"supervisord-{host.name}"
    if host.netns is None:
        # Its own session, like nginx: the caller stops both, in order, on its Ctrl-C.
        return _launch(name, command, port, dict(env), own_session=True)
    settings = {k: v for k, v in env.items() if os.environ.get(k) != v}
    if static_root is not None and host.name in APP_HOSTS:
        shutil.copytree(static_root, host.run_dir / "static")
        settings["STATIC_ROOT"] = str(host.run_dir / "static")
    env_file = host.run_dir / "env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in sorted(settings.items())))
    host_env = {**server_env(), **read_env_file(env_file)}
    return _launch(name, [*host.prefix(), *command], port, host_env, own_session=True)


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY="value" lines of a host's environment file."""
    found = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            found[key] = json.loads(value)
    return found


# ---------------------------------------------------------------------------- hosts
# `make cluster HOSTS=3`: hosts a, b and c are Linux network namespaces, each joined by a veth
# link to a switch (a bridge in a namespace of its own), as are the machine's own processes
# (nginx, the tests) by one more veth: one private /24 that exists only on those links. No
# route leads off it, nothing is forwarded or translated, and deleting the namespaces deletes
# every link. Names carry the pid of the process that made them (`shw<pid>-a`, ...), so runs
# do not collide and a run killed outright is swept by the next one. Needs root.
NETNS_PREFIX = "shw"
SUBNET_BASE = "10.213"  # 10.213.N.0/24, the first N no address or route of this machine uses
SWITCH = "net"  # the switch's namespace: `shw<pid>-net`
_networks_made = 0


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS` (iproute2); return its output."""
    binary = find_binary("ip", "/usr/sbin/ip", "/sbin/ip")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Network:
    """The namespaces of one HOSTS=3 cluster and the private subnet that joins them."""

    run_id: str
    subnet: ipaddress.IPv4Network
    hosts: tuple[str, ...] = tuple(HOST_PROGRAMS)
    delay_ms: float = 0.0
    wire: ServerProcess | None = None

    def netns(self, host: str) -> str:
        """The namespace of host `host` (or of the switch, SWITCH)."""
        return f"{NETNS_PREFIX}{self.run_id}-{host}"

    def address(self, host: str) -> str:
        """Host `host`'s address (.1, .2, ...); the machine's own end is .254."""
        number = 254 if host == "front" else self.hosts.index(host) + 1
        return str(self.subnet.network_address + number)

    @property
    def front(self) -> str:
        """The machine's own veth: its name in the root namespace."""
        return f"{NETNS_PREFIX}{self.run_id}"

    def namespaces(self) -> list[str]:
        """Every namespace of this network."""
        return [self.netns(host) for host in (*self.hosts, SWITCH)]

    def remove(self, timeout: float = 30.0) -> None:
        """
        Stop whatever still runs in the namespaces, then delete them (and so every link); wait
        until the kernel, which tears a namespace down in the background, has removed the
        machine's own end of its link too.
        """
        if self.wire is not None:
            self.wire.stop()
        for name in self.namespaces():
            remove_namespace(name)
        deadline = time.monotonic() + timeout
        while ip("link", "show", "dev", self.front, check=False) and time.monotonic() < deadline:
            time.sleep(0.05)


def remove_namespace(name: str) -> None:
    """Kill what still runs inside namespace `name` (our own processes), then delete it."""
    for pid in ip("netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", name, check=False)


def sweep_stale_networks() -> list[str]:
    """Delete our namespaces whose maker is no longer alive (a run killed with -9)."""
    swept = []
    for line in ip("netns", "list").splitlines():
        found = re.match(rf"({NETNS_PREFIX}(\d+)[a-z]?-\w+)", line)
        if not found:
            continue
        try:
            os.kill(int(found.group(2)), 0)
        except ProcessLookupError:
            remove_namespace(found.group(1))
            swept.append(found.group(1))
        except PermissionError:
            pass  # alive, someone else's
    return swept


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.213.N.0/24 that no address or route of this machine overlaps."""
    used = []
    for line in ip("-4", "-o", "addr").splitlines() + ip("-4", "route").splitlines():
        for word in line.split():
            with contextlib.suppress(ValueError):
                if word[:1].isdigit() and ("/" in word or word.count(".") == 3):
                    used.append(ipaddress.ip_network(word, strict=False))
    for n in range(1, 255):
        candidate = ipaddress.ip_network(f"{SUBNET_BASE}.{n}.0/24")
        if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
            return candidate
    raise RuntimeError(f"no free {SUBNET_BASE}.N.0/24 subnet on this machine")


def create_network(hosts: tuple[str, ...] = tuple(HOST_PROGRAMS), delay_ms: float = 0.0) -> Network:
    """
    Make the namespaces, the switch and the links of a HOSTS=3 cluster; sweep stale ones of
    ours first. `delay_ms` > 0 puts that much latency on every link, one way (the switch is
    then tools/wire.py rather than a bridge). Removed again if anything fails.
    """
    import fcntl

    global _networks_made
    if os.geteuid() != 0:
        raise RuntimeError("HOSTS=3 makes network namespaces: run it as root")
    suffix = "" if _networks_made == 0 else "abcdefghijklmnopqrstuvwxyz"[_networks_made % 26]
    _networks_made += 1
    # Root's own lock directory: only root makes namespaces.
    with Path("/run/lock/showcase-hosts.lock").open("w") as lock:
        # Two runs starting at once must not pick the same subnet.
        fcntl.flock(lock, fcntl.LOCK_EX)
        sweep_stale_networks()
        network = Network(f"{os.getpid()}{suffix}", free_subnet(), hosts, delay_ms)
        try:
            build_network(network)
        except BaseException:
            network.remove()
            raise
    return network


def build_network(network: Network) -> None:
    """The links of `network`: each host's eth0 and the machine's own veth, to the switch."""
    switch = network.netns(SWITCH)
    prefix = network.subnet.prefixlen
    for name in network.namespaces():
        ip("netns", "add", name)
    if not network.delay_ms:
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "dev", "br0", "up")
    ports = []
    for host in network.hosts:
        ns, port = network.netns(host), f"port-{host}"
        ip(
            "link",
            "add",
            "name",
            "eth0",
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            switch,
        )
        ip("-n", ns, "addr", "add", f"{network.address(host)}/{prefix}", "dev", "eth0")
        ip("-n", ns, "link", "set", "dev", "eth0", "up")
        ip("-n", ns, "link", "set", "dev", "lo", "up")
        ports.append(port)
    ip(
        "link",
        "add",
        "name",
        network.front,
        "type",
        "veth",
        "peer",
        "name",
        "port-front",
        "netns",
        switch,
    )
    ip("addr", "add", f"{network.address('front')}/{prefix}", "dev", network.front)
    ip("link", "set", "dev", network.front, "up")
    ports.append("port-front")
    for port in ports:
        if network.delay_ms:
            ip("-n", switch, "link", "set", "dev", port, "up", "promisc", "on")
        else:
            ip("-n", switch, "link", "set", "dev", port, "master", "br0", "up")
    if network.delay_ms:
        command = ["ip", "netns", "exec", switch, sys.executable, "-m", "tools.wire"]
        command += ["--delay-ms", str(network.delay_ms), *ports]
        network.wire = start_wire(command, f"wire-{network.run_id}")


def start_wire(command: list[str], name: str, timeout: float = 15.0) -> ServerProcess:
    """Start the switch that delays frames (tools/wire.py); ready once it says so."""
    wire = _launch(name, command, 0, server_env(), own_session=True)
    deadline = time.monotonic() + timeout
    while "forwarding" not in wire.log():
        if wire.process.poll() is not None or time.monotonic() > deadline:
            wire.stop()
            raise RuntimeError(f"the wire failed to start; its log:\n{wire.log()}")
        time.sleep(0.02)
    return wire


def run_cluster_command(
    run_dir: Path,
    port: int | None = None,
    hosts: int = 1,
    workers: int = 2,
    delay: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 240.0,
) -> tuple[ServerProcess, Cluster]:
    """
    `make cluster` itself (`python -m tools.cluster`), in the background until its caller sends
    it SIGINT (Ctrl-C): returns its process, once it says the showcase is up, and the cluster
    it runs (which answers status, kill, fail_over and the rest; its stop() is the Ctrl-C's).
    """
    port = port or free_port()
    command = [
        sys.executable, "-u", "-m", "tools.cluster", "--hosts", str(hosts),
        "--workers", str(workers), "--port", str(port), "--run-dir", str(run_dir),
        "--delay", delay,
    ]  # fmt: skip
    # Its own session: the SIGINT meant for it alone, as a terminal's Ctrl-C is.
    runner = _launch("make-cluster", command, port, env or server_env(), own_session=True)
    deadline = time.monotonic() + timeout
    while "The showcase:" not in runner.log():
        if runner.process.poll() is not None or time.monotonic() > deadline:
            runner.stop(signal.SIGINT, timeout=120)
            raise RuntimeError(f"make cluster did not start; its output:\n{runner.log()}")
        time.sleep(0.1)
    cluster = Cluster.load(run_dir)
    # For its URLs only: stopping is the runner's business (SIGINT), not this object's.
    cluster.nginx = ServerProcess("nginx", port, runner.process, runner.log_path)
    return runner, cluster


def leftovers(run_id: int, run_dir: Path) -> list[str]:
    """What a stopped cluster left: namespaces made by process `run_id`, processes in `run_dir`."""
    ours = re.compile(rf"{NETNS_PREFIX}{run_id}[a-z]?-")
    found = [line.split()[0] for line in ip("netns", "list").splitlines() if ours.match(line)]
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(run_dir) in " ".join(process.info["cmdline"] or ()):
                found.append(f"pid {process.info['pid']}: {' '.join(process.info['cmdline'])}")
    return found


def with_postgres(command: list[str]) -> int:
    """
    Run `command` with DATABASE_URL naming a throwaway PostgreSQL (`make compat`'s unit tests);
    stop the server and remove its data when the command ends, however it ends.
    """
    postgres = start_postgres()
    try:
        print(f"with-postgres: {postgres.url().split('@')[-1]}", flush=True)
        env = {**os.environ, "DATABASE_URL": postgres.url()}
        child = subprocess.Popen(command, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            # The terminal's Ctrl-C reached the command too: let it finish stopping.
            return child.wait()
    finally:
        postgres.stop()


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def debug_refusal(host: str, env: Mapping[str, str]) -> str | None:
    """
    Why `make run` must not start on `host` with this environment, or None. DEBUG on a host
    others can reach shows them Django's debug pages (a 404 lists every URL pattern, an error
    the settings and the source) and the demo accounts' passwords on the login page; only an
    explicit ALLOW_DEBUG_ON_PUBLIC_HOST=1 says that is meant.
    """
    debug = env.get("DEBUG", "").lower() in {"1", "true", "yes", "on"}
    allowed = env.get("ALLOW_DEBUG_ON_PUBLIC_HOST", "").lower() in {"1", "true", "yes", "on"}
    if not debug or allowed or is_loopback(host):
        return None
    return (
        f"refusing to serve DEBUG on {host}, which other machines can reach: Django's debug "
        "pages list every URL pattern (any 404) and settings and source (any error), and the "
        "login page shows the demo accounts' passwords. Serve it with DEBUG=0 "
        f"(make run HOST={host} DEBUG=0), or say ALLOW_DEBUG_ON_PUBLIC_HOST=1 if you mean it."
    )


def main(argv: list[str] | None = None) -> None:
    """
    `python -m tools.servers run SERVER [--host H] [--port P]`: replace this process with the
    server, as `make run` does; `python -m tools.servers flags SERVER` prints its flags;
    `python -m tools.servers with-postgres -- COMMAND...` runs a command on a throwaway
    PostgreSQL (DATABASE_URL); `python -m tools.servers redis-node CONFIG ...` starts one Redis
    server of a Sentinel group (run_redis_node), as supervisord does in `make cluster`.
    `python -m tools.servers check SERVER --host H` exits 1 if DEBUG must not be served there.
    """
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["with-postgres"]:
        command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        sys.exit(with_postgres(command))
    if argv[:1] == ["redis-node"]:
        run_redis_node(argv[1:])
        return
    if argv[:1] == ["sentinel-node"]:
        run_sentinel_node(argv[1:])
        return

    parser = argparse.ArgumentParser(prog="python -m tools.servers")
    parser.add_argument("action", choices=("run", "flags", "check"))
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.action == "flags":
        print(shlex.join(SERVER_FLAGS[args.server]))
        return
    if refusal := debug_refusal(args.host, os.environ):
        sys.exit(refusal)
    if args.action == "check":
        return
    command = server_command(args.server, args.port, args.host)
    print(shlex.join(command[1:]), flush=True)
    os.execv(command[0], command)  # noqa: S606 (make run: the server becomes this process)


if __name__ == "__main__":
    main()
