"""
The job queue: the channel jobs travel on, how many may be unfinished, and which are wanted.

The socket (`JobsConsumer`) and the worker (`PrimeCounter`) both use this module and nothing of
each other.

A job is a message on the channel "jobs", taken by whichever worker is free. The channel layer
cannot say how many jobs wait, nor whether the socket that sent one is still there: Channels'
`runworker` (and our in-process worker) take every message off the layer as soon as it arrives,
so even channels-redis's per-channel capacity never fills. So every unfinished job also has an
entry here, named after its socket's channel and its number, holding a deadline (its lease):

- the socket adds the entry before it sends the job, and is refused (`queue_full`) when
  `JOBS_QUEUE_LIMIT` live entries are there already; it renews the leases of its unfinished jobs
  every third of `JOBS_LEASE_SECONDS`, and removes an entry when its job is done or failed, and
  all of them when the socket ends, however it ends;
- the worker skips a job that has no live entry, and gives up a running one at its next step
  once the entry is gone.

So a job whose socket closed is cancelled at once; one whose socket died without a word (its
server process was killed) when its lease runs out; and abandoned jobs never count against the
limit. With Redis configured (`REDIS_URL`, or `REDIS_SENTINELS` in `make cluster`; apps/core/
redis_clients.py) the entries live in one Redis sorted set (member "channel|job", score the
deadline) that every server process and every worker shares; without it, in this process's
memory, which the in-process worker (worker.py) shares with the sockets. Either way every call
runs on the event loop: the worker's thread hands its questions to the loop, as it does its
replies. Deadlines come from each host's clock: hosts must agree to well under the lease.
"""

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from django.conf import settings
from redis.asyncio import Redis

from apps.core import redis_clients

JOBS_CHANNEL = "jobs"
REDIS_KEY = "jobs:queue"

# Drop the expired entries, then add one unless the live ones reach the limit: one script, so
# two sockets of two processes cannot both take the last place.
ADD_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def job_key(reply_to: str, job: Any) -> str:
    """The entry of job number `job` of the socket whose channel is `reply_to`."""
    return f"{reply_to}|{job}"


def _limit() -> int:
    return settings.JOBS_QUEUE_LIMIT


def _lease() -> float:
    return settings.JOBS_LEASE_SECONDS


class JobQueue(Protocol):
    """What the socket and the worker need, on the event loop."""

    async def add(self, key: str) -> bool:
        """Add a job's entry; False, and nothing added, when the queue is full."""

    async def renew(self, keys: Iterable[str]) -> None:
        """Push the deadlines of these entries a lease ahead (entries already gone stay gone)."""

    async def remove(self, keys: Iterable[str]) -> None:
        """Remove these entries: their jobs are done, or nobody waits for them any more."""

    async def wanted(self, key: str) -> bool:
        """Whether this job still has a live entry (the worker asks before each step)."""


class MemoryQueue:
    """Entries in this process's memory: the in-memory channel layer's one process."""

    def __init__(self) -> None:
        self.deadlines: dict[str, float] = {}

    async def add(self, key: str) -> bool:
        """Add a job's entry; False, and nothing added, when the queue is full."""
        now = time.time()
        for stale in [k for k, deadline in self.deadlines.items() if deadline <= now]:
            del self.deadlines[stale]
        if 0 < _limit() <= len(self.deadlines):
            return False
        self.deadlines[key] = now + _lease()
        return True

    async def renew(self, keys: Iterable[str]) -> None:
        """Push the deadlines of these entries a lease ahead (entries already gone stay gone)."""
        deadline = time.time() + _lease()
        for key in keys:
            if key in self.deadlines:
                self.deadlines[key] = deadline

    async def remove(self, keys: Iterable[str]) -> None:
        """Remove these entries: their jobs are done, or nobody waits for them any more."""
        for key in keys:
            self.deadlines.pop(key, None)

    async def wanted(self, key: str) -> bool:
        """Whether this job still has a live entry (the worker asks before each step)."""
        return self.deadlines.get(key, 0) > time.time()


class RedisQueue:
    """Entries in a Redis sorted set that every server and worker process shares."""

    def __init__(self, client: Redis, key: str = REDIS_KEY) -> None:
        self.client = client
        self.key = key
        self.add_script = client.register_script(ADD_SCRIPT)

    def _expiry(self) -> int:
        # Should every process stop, the key goes too.
        return max(1, round(_lease() * 2))

    async def add(self, key: str) -> bool:
        """Add a job's entry; False, and nothing added, when the queue is full."""
        now = time.time()
        args = [now, _limit(), now + _lease(), key, self._expiry()]
        return bool(await self.add_script(keys=[self.key], args=args))

    async def renew(self, keys: Iterable[str]) -> None:
        """Push the deadlines of these entries a lease ahead (entries already gone stay gone)."""
        deadline = time.time() + _lease()
        members = dict.fromkeys(keys, deadline)
        if not members:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key, members, xx=True)
            pipe.expire(self.key, self._expiry())
            await pipe.execute()

    async def remove(self, keys: Iterable[str]) -> None:
        """Remove these entries: their jobs are done, or nobody waits for them any more."""
        members = list(keys)
        if members:
            await self.client.zrem(self.key, *members)

    async def wanted(self, key: str) -> bool:
        """Whether this job still has a live entry (the worker asks before each step)."""
        deadline = await self.client.zscore(self.key, key)
        return deadline is not None and deadline > time.time()


# One queue per event loop: a Redis client's connections belong to the loop that opened them.
# A server process has one loop, shared by its sockets and its in-process worker; a test suite
# has one per test, so every test starts with an empty memory queue.
_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, JobQueue] = (
    weakref.WeakKeyDictionary()
)


def get_job_queue() -> JobQueue:
    """The queue for the running event loop: Redis if it is configured, else memory."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        if redis_clients.configured():
            queue = RedisQueue(redis_clients.connect(decode_responses=True))
        else:
            queue = MemoryQueue()
        _queues[loop] = queue
    return queue


async def close_job_queue() -> None:
    """Forget the running loop's queue, closing its Redis connections (tests call this)."""
    queue = _queues.pop(asyncio.get_running_loop(), None)
    if isinstance(queue, RedisQueue):
        await redis_clients.disconnect(queue.client)
