"""
Stopping is clean whatever is in flight: Ctrl-C (SIGINT to the process group, as a terminal
sends it) and SIGTERM to each of the four servers `make run SERVER=...` starts, and Ctrl-C to
`make cluster` with a job on its runworker.

In flight at the signal: a job running in the in-process worker with its socket open, a job
queued by a socket that has already left, a `block` under way in the sync thread
(`/ws/sc/json/`) and another blocking the event loop itself (`/ws/ac/json/`, `on_loop`), and an
open event stream. Each server gets its grace for applications (tools/servers.py GRACE_FLAGS:
what `make run` sets to 10 s, here 3 s to keep the suite quick) and then the process group must
be gone, within EXIT_ALLOWANCE more, with no traceback in its log.

The job is far bigger than that (half a minute of counting): before the worker watched for the stop,
uvicorn on Ctrl-C and hypercorn waited for the job to end, and daphne could wait forever for a
reply through its stopped loop (that race, deterministically: apps/jobs/tests/test_worker_stop.py).
uvicorn keeps an event stream open through its grace and then cancels it; so does hypercorn
with every connection; daphne closes everything at once.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from apps.core.tests.live import json_socket, open_event_stream, receive_until
from tools.servers import (
    BASE_DIR,
    GRACE_SECONDS,
    SERVERS,
    ServerProcess,
    find_tracebacks,
    flags_with_grace,
    run_cluster_command,
    server_env,
    start_server,
    supervisor_rpc,
)

GRACE = 3
# What a process takes to exit once its grace is over (interpreter shutdown), with a margin
# for the load of a shared 2-core machine running four of them at once.
EXIT_ALLOWANCE = 7.0
# Half a minute of counting on a quiet core, in steps of a second or two: the job has begun
# (its first progress) well before it could end by itself within the bound.
BIG_JOB = 10_000_000


async def put_everything_in_flight(
    server: ServerProcess,
) -> tuple[list[ClientConnection], asyncio.StreamWriter]:
    """Start all of it on the server; return the clients, which must stay open."""
    running, _ = await json_socket(server, "/ws/jobs/")
    await running.send(json.dumps({"type": "job", "n": BIG_JOB}))
    await receive_until(running, "progress")  # the worker is counting
    left, _ = await json_socket(server, "/ws/jobs/")
    await left.send(json.dumps({"type": "job", "n": BIG_JOB}))
    await receive_until(left, "queued")
    await left.close()
    _, stream = await open_event_stream(server)
    blocking: list[ClientConnection] = []
    for path, how in (("/ws/sc/json/", {}), ("/ws/ac/json/", {"on_loop": True})):
        socket, _ = await json_socket(server, path)
        # The echo's answer means the consumer has taken the block, sent right behind it, next.
        await socket.send(json.dumps({"type": "echo", "data": "first"}))
        await socket.send(json.dumps({"type": "block", "seconds": 2, **how}))
        await receive_until(socket, "echo")
        blocking.append(socket)
    return [running, *blocking], stream


async def stop_with_everything_in_flight(
    kind: str, sig: signal.Signals, database: Path, starting: asyncio.Semaphore
) -> str | None:
    """Start a server, put everything in flight, signal its group: what went wrong, if anything."""
    env = server_env(DATABASE_PATH=str(database), JOBS_MAX_N=str(BIG_JOB), SSE_TICK_SECONDS="0.1")
    flags = flags_with_grace(kind, GRACE)
    async with starting:
        server = await asyncio.to_thread(
            start_server, kind, env, flags=flags, name=f"stop-{kind}-{sig.name}", own_group=True
        )
    try:
        sockets, stream = await put_everything_in_flight(server)
        took = await asyncio.to_thread(server.interrupt, sig, GRACE + EXIT_ALLOWANCE)
        stream.close()
        for socket in sockets:
            await socket.close()
    finally:
        server.stop()
    if took is None:
        return f"{kind} still ran {GRACE + EXIT_ALLOWANCE} s after {sig.name}:\n{server.log()}"
    if tracebacks := server.tracebacks():
        return f"{kind} logged a traceback on {sig.name}:\n" + "\n".join(tracebacks)
    print(f"\n{kind} {sig.name}: exited {took:.2f} s after the signal (grace {GRACE} s)")
    return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_each_server_stops_within_its_grace_whatever_is_in_flight(
    sig: signal.Signals, tmp_path: Path
) -> None:
    # The four servers side by side: most of each run is waiting for its grace to end. Two
    # start at a time: four Python processes starting at once crowd two cores.
    starting = asyncio.Semaphore(2)
    database = tmp_path / "db.sqlite3"
    failures = await asyncio.gather(
        *(stop_with_everything_in_flight(kind, sig, database, starting) for kind in SERVERS)
    )
    assert not any(failures), "\n\n".join(f for f in failures if f)


def test_daphne_takes_ctrl_c_even_when_the_suite_was_started_ignoring_it(tmp_path: Path) -> None:
    # How a CI runner or `make test &` starts the suite: SIGINT ignored (here sh's `trap`), which
    # every process below inherits. The suite's conftest.py calls take_ctrl_c(); without it,
    # the daphne it starts ignores Ctrl-C and the Ctrl-C tests above fail.
    script = f"""
import signal, sys
from tools.servers import server_env, start_server, take_ctrl_c
assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN, "the shell did not ignore SIGINT"
take_ctrl_c()
env = server_env(DATABASE_PATH={str(tmp_path / "db.sqlite3")!r})
server = start_server("daphne", env, name="daphne-ctrl-c-ignored", own_group=True)
sys.exit(0 if server.interrupt(signal.SIGINT, {GRACE + EXIT_ALLOWANCE}) is not None else 1)
"""
    command = ["sh", "-c", 'trap "" INT; exec "$0" -c "$1"', sys.executable, script]
    done = subprocess.run(  # noqa: S603 - our own interpreter on a fixed script
        command, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"daphne outlived Ctrl-C:\n{done.stdout}{done.stderr}"


def alive(pid: int) -> bool:
    """Whether a process with this pid still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_ctrl_c_stops_make_cluster_with_a_job_on_the_runworker(tmp_path: Path) -> None:
    # `make cluster` in the foreground: nginx, daphne, the runworker and Redis under
    # supervisord. The job runs on the runworker; Ctrl-C to the terminal's process group.
    # A database of its own: SQLite, rather than the PostgreSQL `make cluster` starts when it
    # is given none (whose server runs as another user, which cannot reach a test's tmp_path).
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    run_dir = tmp_path / "cluster"
    cluster, _ = await asyncio.to_thread(run_cluster_command, run_dir, workers=1, env=env)
    try:
        processes = supervisor_rpc(run_dir).getAllProcessInfo()
        pids = {p["name"]: p["pid"] for p in processes}
        pids["supervisord"] = int((run_dir / "supervisord.pid").read_text())
        pids["nginx"] = int((run_dir / "nginx.pid").read_text())
        socket, hello = await json_socket(cluster, "/ws/jobs/")
        assert hello["worker"] == "runworker"
        await socket.send(json.dumps({"type": "job", "n": hello["max_n"]}))
        progress = (await receive_until(socket, "progress"))[-1]
        assert progress["done"] < progress["total"]  # the runworker is counting
        took = await asyncio.to_thread(
            cluster.interrupt, signal.SIGINT, GRACE_SECONDS + EXIT_ALLOWANCE
        )
        await socket.close()
    finally:
        cluster.stop()
    print(f"\nmake cluster Ctrl-C: every process gone {took or 0:.2f} s after the signal")
    assert took is not None, (
        f"make cluster still ran {GRACE_SECONDS + EXIT_ALLOWANCE} s after Ctrl-C"
    )
    assert not [name for name, pid in pids.items() if alive(pid)], pids
    logs = [cluster.log_path, *run_dir.glob("*.log"), *(run_dir / "logs").glob("*.log")]
    assert not [path.name for path in logs if find_tracebacks(path.read_text())]
