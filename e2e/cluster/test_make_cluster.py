"""
`make cluster` itself (`python -m tools.cluster`), from an empty run directory: it initialises
PostgreSQL's data directory once and runs PostgreSQL under supervisord as an unprivileged user;
every process talks to it; Ctrl-C stops everything, leaving no process and nothing that breaks
the next start, which finds the data of the first.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from websockets.sync.client import connect

from tools.servers import BASE_DIR, free_port, postgres_os_user, server_env

STARTED = "Rolling restart of the daphne processes"  # the last line tools.cluster prints


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """An empty run directory that the unprivileged PostgreSQL user can reach, as .cluster/ is."""
    folder = Path(tempfile.mkdtemp(prefix="showcase-cluster-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def start(run_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    """
    `make cluster` with one daphne, in a process group of its own (as a terminal runs it),
    once it serves; returns the process and what it printed while starting.
    """
    env = server_env(STATIC_ROOT=str(run_dir / "static"))  # no DATABASE_URL: its own PostgreSQL
    command = [sys.executable, "-m", "tools.cluster", "--workers", "1", "--port", str(port)]
    path = run_dir / "output.txt"
    since = path.stat().st_size if path.exists() else 0
    with path.open("a") as output:
        process = subprocess.Popen(
            [*command, "--run-dir", str(run_dir)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=BASE_DIR,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while STARTED not in (printed := path.read_bytes()[since:].decode()):
        if process.poll() is not None or time.monotonic() > deadline:
            ctrl_c(process)  # whatever had started stops too (tools/cluster.py)
            pytest.fail(f"make cluster did not start:\n{printed}")
        time.sleep(0.1)
    return process, printed


def everything_it_runs(run_dir: Path) -> list[psutil.Process]:
    """supervisord, nginx and every process under them (PostgreSQL's own included)."""
    pids = [int((run_dir / name).read_text()) for name in ("supervisord.pid", "nginx.pid")]
    found = [psutil.Process(pid) for pid in pids]
    return found + [child for parent in found for child in parent.children(recursive=True)]


def ctrl_c(process: subprocess.Popen) -> None:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=120) in (0, 130)


def left_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still alive."""
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def command(port: int, path: str, content: dict) -> dict:
    """One command on a JSON endpoint, through nginx."""
    with connect(f"ws://127.0.0.1:{port}{path}", origin=f"http://127.0.0.1:{port}") as ws:
        ws.send(json.dumps(content))
        return json.loads(ws.recv(timeout=30))


def test_make_cluster_runs_its_own_postgres_and_ctrl_c_leaves_nothing(run_dir: Path) -> None:
    port = free_port()
    first, printed = start(run_dir, port)
    try:
        assert "PostgreSQL: a new data directory" in printed
        processes = everything_it_runs(run_dir)
        postgres = [p for p in processes if p.name() == "postgres"]
        # The postmaster and its background workers, as the unprivileged user, on its data.
        assert postgres and {p.username() for p in postgres} == {postgres_os_user()}
        assert (run_dir / "postgres_password").stat().st_mode & 0o777 == 0o600
        assert command(port, "/ws/sc/json/", {"type": "info"})["database"] == "postgresql"
        saved = command(port, "/ws/ac/json/", {"type": "note", "text": "kept across restarts"})
        assert saved["type"] == "note"
    finally:
        ctrl_c(first)
    assert left_running(processes) == []
    assert not (run_dir / "postgres" / "postmaster.pid").exists()

    # The same data directory and password; nothing stale in the way.
    second, printed = start(run_dir, port)
    try:
        assert "a new data directory" not in printed
        notes = command(port, "/ws/sc/json/", {"type": "notes"})["notes"]
        assert [n["text"] for n in notes] == ["kept across restarts"]
        processes = everything_it_runs(run_dir)
    finally:
        ctrl_c(second)
    assert left_running(processes) == []
