"""
How late the jobs socket answers while a job runs: echo round trips on `/ws/jobs/`, first with
the worker idle, then while it counts the biggest job.

    python -m tools.echo_during_job                # make run: the in-process worker (default)
    python -m tools.echo_during_job --runworker    # a separate runworker over Redis, as deployed

It starts daphne with `make run`'s flags (and, with --runworker, a redis-server and
`manage.py runworker jobs`), opens two sockets, and sends an echo every GAP_SECONDS on one of
them: ECHOES while nothing runs, then as many while the other socket's job of JOBS_MAX_N
counts. Only the echoes answered before that job's `done` count as "during". The in-process
worker is a thread of the server's own process: it shares the GIL with the event loop, which
gets its turn every few milliseconds (Python's switch interval is 5 ms), so answers come later
but keep coming. A runworker shares nothing with the server. docs/worker.md quotes the figures.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tools import servers

GAP_SECONDS = 0.02
ECHOES = 100
JOB = 2_000_000


async def echo_round_trips(
    socket: ClientConnection, count: int, job_done: asyncio.Event | None = None
) -> list[float]:
    """Milliseconds per echo round trip, for up to `count` echoes (stopping at `job_done`)."""
    trips = []
    for number in range(count):
        if job_done is not None and job_done.is_set():
            break
        sent = time.perf_counter()
        await socket.send(json.dumps({"type": "echo", "data": number}))
        while json.loads(await socket.recv())["type"] != "echo":
            pass
        if job_done is None or not job_done.is_set():
            trips.append((time.perf_counter() - sent) * 1000)
        await asyncio.sleep(GAP_SECONDS)
    return trips


def summary(name: str, trips: list[float]) -> str:
    """One line: how many, median, 90th and 99th percentile, worst."""
    if not trips:
        return f"{name}: no echo answered"
    ranked = sorted(trips)

    def at(share: float) -> float:
        return ranked[min(len(ranked) - 1, int(len(ranked) * share))]

    return (
        f"{name}: {len(ranked)} echoes, median {statistics.median(ranked):.1f} ms, "
        f"p90 {at(0.9):.1f} ms, p99 {at(0.99):.1f} ms, worst {ranked[-1]:.1f} ms"
    )


async def measure(server: servers.ServerProcess, echoes: int) -> list[str]:
    """Echo round trips idle, then during a job sent from another socket."""
    origin = server.http_url
    async with (
        connect(server.ws_url + "/ws/jobs/", origin=origin, max_queue=None) as echoing,
        connect(server.ws_url + "/ws/jobs/", origin=origin, max_queue=None) as working,
    ):
        hello = json.loads(await echoing.recv())
        await working.recv()
        idle = await echo_round_trips(echoing, echoes)
        job_begun, job_done = asyncio.Event(), asyncio.Event()

        async def run_job() -> dict[str, Any]:
            await working.send(json.dumps({"type": "job", "n": JOB}))
            while (reply := json.loads(await working.recv()))["type"] != "done":
                if reply["type"] == "error":
                    raise RuntimeError(f"the job was refused: {reply}")
                job_begun.set()  # its first progress: the worker is counting
            job_done.set()
            return reply

        job = asyncio.create_task(run_job())
        await job_begun.wait()
        during = await echo_round_trips(echoing, echoes, job_done)
        done = await job
    return [
        f"worker: {hello['worker']}; the job counted {JOB:,} numbers in {done['seconds']} s",
        summary("idle", idle),
        summary("during the job", during),
    ]


def main() -> None:
    """Start the servers, measure, print three lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runworker", action="store_true", help="a runworker over Redis")
    parser.add_argument("--echoes", type=int, default=ECHOES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = servers.server_env(
            DATABASE_PATH=str(Path(scratch) / "db.sqlite3"), JOBS_MAX_N=str(JOB)
        )
        started: list[servers.ServerProcess] = []
        try:
            if args.runworker:
                redis = servers.start_redis()
                started.append(redis)
                env["REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/0"
                started.append(servers.start_worker(env, name="echo-during-job-worker"))
            server = servers.start_server("daphne", env, name="echo-during-job")
            started.append(server)
            for line in asyncio.run(measure(server, args.echoes)):
                print(line)
        finally:
            for process in reversed(started):
                process.stop()


if __name__ == "__main__":
    main()
