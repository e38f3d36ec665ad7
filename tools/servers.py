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
    STARTED.append(server)
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
    """Start uvicorn on 127.0.0.1 (benchmarks and `make run SERVER=uvicorn`)."""
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


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Stop the server when the block ends, however it ends."""
    try:
        yield server
    finally:
        server.stop()
