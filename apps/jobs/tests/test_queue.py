"""
The job queue's entries (apps/jobs/queue.py), in memory and in a real redis-server: the limit,
the leases, and what the worker reads.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from apps.jobs.queue import JobQueue, MemoryQueue, RedisQueue


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest, settings) -> AsyncIterator[JobQueue]:
    """An empty queue of each kind, with a limit of 3 and a 0.5 s lease."""
    settings.JOBS_QUEUE_LIMIT = 3
    settings.JOBS_LEASE_SECONDS = 0.5
    if request.param == "memory":
        yield MemoryQueue()
        return
    url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/6"
    client = Redis.from_url(url, decode_responses=True)
    await client.flushdb()
    yield RedisQueue(client)
    await client.aclose()


async def test_the_limit_counts_unfinished_jobs_and_frees_their_places(queue, settings) -> None:
    assert [await queue.add(f"a|{job}") for job in (1, 2, 3)] == [True] * 3
    assert not await queue.add("b|1")  # queue_full
    assert not await queue.wanted("b|1")  # a refused job has no entry
    await queue.remove(["a|2"])  # done, or its socket left
    assert await queue.add("b|1")
    settings.JOBS_QUEUE_LIMIT = 0  # no limit
    assert all([await queue.add(f"c|{job}") for job in range(10)])


async def test_a_job_is_wanted_until_removed(queue) -> None:
    assert await queue.add("a|1")
    assert await queue.wanted("a|1")
    await queue.remove(["a|1"])
    assert not await queue.wanted("a|1")
    assert not await queue.wanted("never|1")


async def test_a_lease_not_renewed_ends_and_frees_its_place(queue) -> None:
    # A socket whose process died renews nothing: after a lease its jobs are not wanted, and
    # they no longer count against the limit.
    for job in (1, 2, 3):
        assert await queue.add(f"dead|{job}")
    assert await queue.add("live|1") is False
    give_up = time.monotonic() + 10
    while await queue.wanted("dead|1"):
        assert time.monotonic() < give_up, "the lease never ended"
        await asyncio.sleep(0.05)
    assert await queue.add("live|1")


async def test_renewing_keeps_a_job_wanted_and_never_revives_a_removed_one(queue, settings) -> None:
    settings.JOBS_LEASE_SECONDS = 2.0
    added = time.monotonic()
    for key in ("renewed|1", "left|1", "removed|1"):
        assert await queue.add(key)
    await queue.remove(["removed|1"])
    await asyncio.sleep(1.0)
    await queue.renew(["renewed|1", "removed|1"])
    # Past the lease they were added with (by a quarter of a lease; the renewed one's runs on
    # for three quarters more): only the renewed job is wanted.
    await asyncio.sleep(added + 2.5 - time.monotonic())
    assert not await queue.wanted("left|1")
    assert await queue.wanted("renewed|1")
    assert not await queue.wanted("removed|1")
