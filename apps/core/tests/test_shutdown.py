"""
Stopping is clean whatever is in flight: Ctrl-C (SIGINT to the process group, as a terminal
sends it) and SIGTERM to each of the four servers `make run SERVER=...` starts.

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
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from apps.core.tests.live import json_socket, open_event_stream, receive_until
from tools.servers import SERVERS, ServerProcess, flags_with_grace, server_env, start_server

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
