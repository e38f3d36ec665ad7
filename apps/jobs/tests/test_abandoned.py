"""
Abandoned jobs cannot starve the worker: issue 21's probe, scaled down but the same shape, on a
real daphne with the in-process worker (`make run`) and on a daphne with a separate `runworker`
over Redis (`make cluster`).

The probe: 60 sockets each queued 2 of the biggest jobs and closed. None was refused, every job
ran to its end for nobody, and a new small job waited 111.6 s. Here 8 sockets do the same
against a queue of 10: 6 jobs are refused (`queue_full`), the 10 queued are cancelled (the
running one at its next step, the others before they begin, or at their first step), and a
new small job is answered in less time than one abandoned job takes (measured in the same
run), where before it waited for all ten.
"""

import asyncio
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from apps.core.tests.live import json_socket, receive_until, run_job, wait_for_sockets
from tools.servers import ServerProcess, server_env, start_daphne, start_worker

SOCKETS = 8
QUEUE_LIMIT = 10
BIG = 300_000  # about 0.7 s of counting on a quiet core, in 20 steps
CANCELLED = re.compile(r"job (\d+) of (\S+) cancelled (at (\d+) of (\d+)|before it began)")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """
    A server's environment: its own database file (nothing here uses it), a queue of 10, and
    no limit of jobs per address (every socket here comes from 127.0.0.1): the queue's limit
    is the one under test.
    """
    return server_env(
        DATABASE_PATH=str(tmp_path / "db.sqlite3"),
        JOBS_MAX_N=str(BIG),
        JOBS_QUEUE_LIMIT=str(QUEUE_LIMIT),
        WS_LIMITS=json.dumps({"jobs_per_user": {"limit": 0}}),
        SHOWCASE_STATS="1",
    )


def redis_db(redis_url: str, number: int) -> str:
    """Database `number` of the session's redis-server, emptied."""
    url = redis_url.rsplit("/", 1)[0] + f"/{number}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture(params=["in-process", "runworker"])
def jobs(
    request: pytest.FixtureRequest, env: dict[str, str]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """(the daphne the sockets talk to, the process whose log the worker writes to)."""
    if request.param == "in-process":
        server = start_daphne(env, name="daphne-abandoned")
        worker = server
    else:
        env = {**env, "REDIS_URL": redis_db(request.getfixturevalue("redis_url"), 8)}
        server = start_daphne(env, name="daphne-abandoned-redis")
        try:
            worker = start_worker(env, name="runworker-abandoned")
        except BaseException:
            server.stop()
            raise
    yield server, worker
    for process in {server.name: server, worker.name: worker}.values():
        process.stop()
        assert not process.tracebacks(), process.log()


async def test_abandoned_jobs_are_refused_past_the_limit_then_cancelled_so_a_new_job_is_prompt(
    jobs: tuple[ServerProcess, ServerProcess],
) -> None:
    server, worker = jobs
    # The baseline, from this run: how long one abandoned job would keep the worker busy.
    probe, _ = await json_socket(server, "/ws/jobs/")
    whole_job, replies = await run_job(probe, BIG)
    assert replies[-1]["type"] == "done"

    sockets = [(await json_socket(server, "/ws/jobs/"))[0] for _ in range(SOCKETS)]
    for socket in sockets:
        for _ in range(2):
            await socket.send(json.dumps({"type": "job", "n": BIG}))
    seen = [await receive_until(socket, "queued", "error") for socket in sockets for _ in (1, 2)]
    answers = Counter(m.get("code", m["type"]) for replies in seen for m in replies[-1:])
    assert answers == {"queued": QUEUE_LIMIT, "queue_full": 2 * SOCKETS - QUEUE_LIMIT}
    # Leave as soon as one job has begun (which socket's comes first is the server's choice).
    if not any(m["type"] == "progress" for replies in seen for m in replies):
        waits = [asyncio.create_task(receive_until(socket, "progress")) for socket in sockets]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
    await asyncio.gather(*(socket.close() for socket in sockets))
    await wait_for_sockets(server, 1)  # the probe's: the others have finished leaving

    took, replies = await run_job(probe, 2)
    assert replies[-1]["type"] == "done"
    # Before: it waited for every abandoned job, ten times as long as one.
    assert took < whole_job, f"a new job took {took:.2f} s; one whole job {whole_job:.2f} s"
    # The worker takes jobs in order: by now it has seen every abandoned one, and given each up.
    cancelled = CANCELLED.findall(worker.log())
    assert len(cancelled) == QUEUE_LIMIT, worker.log()
    # The one running when its socket left was given up at its next step, before its end;
    # so was any the worker took up while its socket was still on its way out.
    running = [int(c[3]) for c in cancelled if c[2].startswith("at ")]
    assert running, cancelled
    assert all(checked < BIG for checked in running), cancelled
    await probe.close()


async def test_a_job_whose_server_was_killed_is_cancelled_when_its_lease_ends(
    env: dict[str, str], redis_url: str
) -> None:
    # A socket that dies without its disconnect (its process SIGKILLed) cannot say goodbye:
    # its job stops being renewed and the worker gives it up once the lease has run out.
    env = {
        **env,
        "REDIS_URL": redis_db(redis_url, 9),
        "JOBS_MAX_N": "2000000",  # seconds of work: far longer than the lease
        "JOBS_LEASE_SECONDS": "1",
    }
    started: list[ServerProcess] = []
    try:
        killed = start_daphne(env, name="daphne-killed")
        started.append(killed)
        staying = start_daphne(env, name="daphne-staying")
        started.append(staying)
        worker = start_worker(env, name="runworker-lease")
        started.append(worker)
        socket, _ = await json_socket(killed, "/ws/jobs/")
        await socket.send(json.dumps({"type": "job", "n": 2_000_000}))
        await receive_until(socket, "progress")
        killed.process.kill()
        other, _ = await json_socket(staying, "/ws/jobs/")
        # The small job waits behind the orphan until the worker gives it up.
        _, replies = await run_job(other, 2)
        assert replies[-1]["type"] == "done"
        cancelled = CANCELLED.findall(worker.log())
        assert len(cancelled) == 1, worker.log()
        assert int(cancelled[0][3]) < 2_000_000
        await other.close()
    finally:
        for process in reversed(started):
            process.stop()
    assert not worker.tracebacks() and not staying.tracebacks(), worker.log() + staying.log()
