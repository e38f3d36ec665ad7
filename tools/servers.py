"""
Start the real servers that tests, benchmarks, the soak and the conformance run talk to.

Everything binds to 127.0.0.1 on a free port and is stopped by the caller (use the context
managers). Nothing here depends on a server that happens to be running already.
"""

import contextlib
import getpass
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
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Return once something accepts connections on the port; fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


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
) -> ServerProcess:
    """Start daphne serving `app` on 127.0.0.1; its log is `<name>-<port>.log`."""
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
    return _spawn(name, command, port, env or server_env())


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
) -> ServerProcess:
    """Start one of SERVERS on 127.0.0.1, with `make run`'s flags unless `flags` is given."""
    port = port or free_port()
    command = server_command(server, port, app=app, flags=flags)
    return _spawn(name or server, command, port, env or server_env())


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
    deadline = time.monotonic() + timeout
    while "Running worker for channels" not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"{name} failed to start; its log:\n{worker.log()}")
        time.sleep(0.02)
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
    return _spawn(name, command, port, None, own_session=True)


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


def restart_one_at_a_time(run_dir: Path, names: list[str]) -> None:
    """
    Restart these daphne programs in turn, each accepting on its socket again before the next
    stops, so nginx always has a process to send a reconnecting browser to.
    """
    rpc = supervisor_rpc(run_dir)
    for name in names:
        rpc.stopProcess(name)  # returns once it has stopped, as `supervisorctl restart` does
        rpc.startProcess(name)  # ... and once it has run for startsecs
        wait_for_unix_socket(run_dir / f"{name.split(':')[-1]}.sock")


@dataclass
class Cluster:
    """
    A running cluster: nginx on `port` in front of supervisord, which runs `workers` daphne
    processes (supervisor names `daphne:daphne0`, ...), the Channels worker, a redis-server and,
    when `postgres` is set, PostgreSQL, all with their sockets, logs and filled-in configuration
    under `run_dir`.
    """

    run_dir: Path
    workers: int
    supervisor: ServerProcess
    nginx: ServerProcess
    postgres: PostgresProgram | None = None

    @property
    def port(self) -> int:
        """nginx's port: the cluster's only TCP port."""
        return self.nginx.port

    @property
    def http_url(self) -> str:
        """The base URL for HTTP, through nginx."""
        return self.nginx.http_url

    @property
    def ws_url(self) -> str:
        """The base URL for WebSockets, through nginx."""
        return self.nginx.ws_url

    @property
    def redis_url(self) -> str:
        """The cluster's Redis, as its processes' REDIS_URL names it."""
        return f"unix://{self.run_dir / 'redis.sock'}"

    @property
    def daphnes(self) -> list[str]:
        """Supervisor's names of the daphne processes."""
        return [f"daphne:daphne{n}" for n in range(self.workers)]

    def socket_path(self, name: str) -> Path:
        """The unix socket a daphne process listens on."""
        return self.run_dir / f"{name.split(':')[-1]}.sock"

    def ctl(self, *args: str) -> str:
        """Run a supervisorctl command against this cluster; return what it printed."""
        command = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.config)]
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=60, cwd=BASE_DIR
        )
        return done.stdout + done.stderr

    @property
    def config(self) -> Path:
        """The filled-in supervisord configuration."""
        return self.run_dir / "supervisord.conf"

    def rpc(self) -> Any:
        """supervisord's XML-RPC interface (what supervisorctl talks to)."""
        return supervisor_rpc(self.run_dir)

    def status(self) -> dict[str, tuple[str, int | None]]:
        """Each program's state and pid (None unless it runs), by supervisor name."""
        return {
            f"{info['group']}:{info['name']}" if info["group"] != info["name"] else info["name"]: (
                info["statename"],
                info["pid"] or None,
            )
            for info in self.rpc().getAllProcessInfo()
        }

    def pid(self, name: str) -> int:
        """The pid of a running program (e.g. `daphne:daphne0`)."""
        state, pid = self.status().get(name, ("MISSING", None))
        if state != "RUNNING" or pid is None:
            raise RuntimeError(f"{name} is {state}")
        return pid

    def wait_serving(self, name: str, other_than: int | None = None, timeout: float = 30) -> int:
        """Wait until daphne `name` runs (as a process other than `other_than`) and accepts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, pid = self.status().get(name, ("MISSING", None))
            if state == "RUNNING" and pid is not None and pid != other_than:
                remaining = deadline - time.monotonic()
                wait_for_unix_socket(self.socket_path(name), self.supervisor.process, remaining)
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

    def logs(self) -> dict[str, str]:
        """Every log of the cluster (supervisord's, nginx's, each program's), by file name."""
        paths = [self.supervisor.log_path, self.nginx.log_path, self.run_dir / "nginx-access.log"]
        paths += sorted((self.run_dir / "logs").glob("*.log"))
        return {p.name: p.read_text(errors="replace") for p in paths if p.exists()}

    def stop(self) -> None:
        """Stop nginx, then supervisord, which stops its programs (and waits for them)."""
        self.nginx.stop()
        # Daphne and the worker get 15 s each, then PostgreSQL its fast shutdown.
        self.supervisor.stop(timeout=60)


def write_cluster_config(
    run_dir: Path,
    workers: int,
    port: int,
    daphne_args: tuple[str, ...] = (),
    static_root: Path | None = None,
    app: str = APPLICATION,
    postgres: PostgresProgram | None = None,
) -> list[Path]:
    """
    Fill in deploy/'s templates into `run_dir` (with PostgreSQL's program when `postgres` is
    given); return the daphne processes' sockets.
    """
    for folder in (run_dir / "logs", run_dir / "nginx-temp", run_dir / "programs"):
        folder.mkdir(parents=True, exist_ok=True)
    sockets = [run_dir / f"daphne{n}.sock" for n in range(workers)]
    values = {
        "ROOT": str(BASE_DIR),
        "RUN": str(run_dir),
        "WORKERS": str(workers),
        "PYTHON": sys.executable,
        "REDIS_SERVER": find_binary("redis-server", "/usr/bin/redis-server"),
        "DAPHNE_FLAGS": " ".join(daphne_args),
        "APP": app,
        "USER": getpass.getuser(),
        "LISTEN": f"127.0.0.1:{port}",
        "ACCESS_LOG": str(run_dir / "nginx-access.log"),
        "STATIC_ROOT": str((static_root or BASE_DIR / "staticfiles").resolve()),
        "UPSTREAM_SERVERS": "\n".join(f"    server unix:{s} max_fails=0;" for s in sockets),
    }
    for template in ("supervisord.conf", "nginx.conf", "nginx-site.conf"):
        (run_dir / template).write_text(render(DEPLOY_DIR / template, values))
    # An earlier run's optional programs must not come back with this one.
    for stale in (run_dir / "programs").glob("*.conf"):
        stale.unlink()
    if postgres is not None:
        program = render(DEPLOY_DIR / "postgres.conf", postgres.values(run_dir))
        (run_dir / "programs" / "postgres.conf").write_text(program)
    return sockets


def start_cluster(
    workers: int = 2,
    port: int | None = None,
    run_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    daphne_args: tuple[str, ...] = (),
    static_root: Path | None = None,
    app: str = APPLICATION,
    postgres: PostgresProgram | None = None,
    prepare: Callable[[], None] | None = None,
) -> Cluster:
    """
    Fill in deploy/'s templates under `run_dir`, start supervisord (daphne x `workers`, the
    worker, redis-server and, with `postgres`, PostgreSQL, whose data directory `init()` has
    made) and, once every daphne accepts, nginx on `port`. `prepare()` runs once Redis and
    PostgreSQL accept, before nginx lets anyone in (`make cluster` migrates there). The caller
    has run `collectstatic` into `static_root`; `env` is the processes' environment
    (SECRET_KEY, DATABASE_URL or DATABASE_PATH, ...).
    """
    port = port or free_port()
    run_dir = (run_dir or ARTIFACTS / f"cluster-{port}").resolve()
    sockets = write_cluster_config(
        run_dir, workers, port, daphne_args, static_root, app, postgres=postgres
    )
    postgres_log = run_dir / "logs" / "postgres.log"
    postgres_log_start = postgres_log.stat().st_size if postgres_log.exists() else 0

    command = [
        sys.executable,
        "-m",
        "supervisor.supervisord",
        "-c",
        str(run_dir / "supervisord.conf"),
    ]
    # Its own session, like nginx: the caller stops both, in order, on its Ctrl-C.
    supervisor = _launch("supervisord", command, port, dict(env or server_env()), own_session=True)
    nginx = None
    try:
        wait_for_unix_socket(run_dir / "redis.sock", supervisor.process)
        if postgres is not None:
            wait_for_postgres(postgres_log, supervisor.process, since=postgres_log_start)
        if prepare is not None:
            prepare()
        for path in sockets:
            wait_for_unix_socket(path, supervisor.process)
        nginx = start_nginx(run_dir / "nginx.conf", port, run_dir, name="nginx")
        cluster = Cluster(run_dir, workers, supervisor, nginx, postgres)
        # A daphne accepts before supervisord counts it RUNNING (startsecs): wait for both, so
        # whoever uses the cluster next finds every program settled.
        for name in cluster.daphnes:
            cluster.wait_serving(name)
    except BaseException as error:
        # Ctrl-C while starting, too: nothing may be left running.
        if nginx is not None:
            nginx.stop()
        supervisor.stop(timeout=60)
        if not isinstance(error, Exception):
            raise
        raise RuntimeError(f"the cluster failed to start ({error}); see {run_dir}") from None
    return cluster


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


def main(argv: list[str] | None = None) -> None:
    """
    `python -m tools.servers run SERVER [--host H] [--port P]`: replace this process with the
    server, as `make run` does; `python -m tools.servers flags SERVER` prints its flags;
    `python -m tools.servers with-postgres -- COMMAND...` runs a command on a throwaway
    PostgreSQL (DATABASE_URL).
    """
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["with-postgres"]:
        command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        sys.exit(with_postgres(command))
    parser = argparse.ArgumentParser(prog="python -m tools.servers")
    parser.add_argument("action", choices=("run", "flags"))
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.action == "flags":
        print(shlex.join(SERVER_FLAGS[args.server]))
        return
    command = server_command(args.server, args.port, args.host)
    print(shlex.join(command[1:]), flush=True)
    os.execv(command[0], command)  # noqa: S606 (make run: the server becomes this process)


if __name__ == "__main__":
    main()
