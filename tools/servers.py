"""
Start the real servers that tests, benchmarks, the soak and the conformance run talk to.

Everything binds to 127.0.0.1 on a free port and is stopped by the caller (use the context
managers). Nothing here depends on a server that happens to be running already.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", BASE_DIR / "artifacts"))

# Variables a server process must not inherit from a test process. DJANGO_ALLOW_ASYNC_UNSAFE
# is set by the browser tests for their own process only: in a server it would hide real
# sync-in-async bugs.
SCRUBBED = ("DJANGO_ALLOW_ASYNC_UNSAFE", "REDIS_URL", "CHANNEL_LAYER", "PYTEST_CURRENT_TEST")


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


def _spawn(
    name: str, command: list[str], port: int, env: Mapping[str, str] | None
) -> ServerProcess:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"{name}-{port}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=BASE_DIR, env=dict(env or os.environ)
    )
    log.close()
    server = ServerProcess(name, port, process, log_path, command)
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
# place that knows them. README's "Which ASGI server?" and "Limits" say why each one is set.
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


def start_hypercorn(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    app: str = "config.asgi:application",
    name: str = "hypercorn",
) -> ServerProcess:
    """Start hypercorn on 127.0.0.1 with `make run SERVER=hypercorn`'s settings."""
    return start_server("hypercorn", env, port, app, name=name)


def start_granian(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    app: str = "config.asgi:application",
    name: str = "granian",
) -> ServerProcess:
    """Start granian on 127.0.0.1 with `make run SERVER=granian`'s settings."""
    return start_server("granian", env, port, app, name=name)


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


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Stop the server when the block ends, however it ends."""
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """
    `python -m tools.servers run SERVER [--host H] [--port P]`: replace this process with the
    server, as `make run` does; `python -m tools.servers flags SERVER` prints its flags.
    """
    import argparse
    import shlex

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
