"""
A background worker fed from a socket: blocking work leaves the socket's consumer free.

`JobsConsumer` (`/ws/jobs/`) never does the work. It sends each job to the channel named
"jobs" and answers `queued`; `PrimeCounter`, a `SyncConsumer` that `ChannelNameRouter` routes
that channel to (config/asgi.py), does the blocking work and sends `job.progress` and
`job.done` straight to the socket's own channel name, which the socket passes on to the browser.
Meanwhile the socket keeps answering: the work never runs on its event loop (docs/worker.md,
"Answering during a job", says how promptly). Each job also holds a place and a lease in the
job queue (queue.py), which bounds the unfinished jobs and cancels those nobody waits for.

Who reads "jobs": `python manage.py runworker jobs`, a process of its own, when the channel
layer is Redis (`make cluster`). The in-memory layer lives inside one process, where a
separate worker could never see the messages, so there the server runs the same worker
itself (worker.py): the same routing, the same consumer, in a thread of its own.
"""

import asyncio
import concurrent.futures
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from channels.consumer import SyncConsumer
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from apps.core import protocol, throttle
from apps.core.consumers import NoDatabaseMixin
from apps.core.limits import Limiter
from apps.core.outage import ChannelLayerOutageMixin, is_unreachable
from apps.core.sessions import SessionEndedMixin

from . import worker
from .queue import JOBS_CHANNEL, JobQueue, get_job_queue, job_key

logger = logging.getLogger(__name__)
T = TypeVar("T")

PROGRESS_STEPS = 20
# How many numbers the worker checks between two looks at whether it must stop (a few ms).
STOP_CHECK_EVERY = 4096
# How often the worker's thread, waiting for the event loop, checks that the loop still runs.
LOOP_CHECK_SECONDS = 0.1
# How long a socket that ends may spend removing its jobs from the queue.
FORGET_SECONDS = 2.0


class WorkerStopping(Exception):
    """The worker's event loop has stopped, or its consumer was cancelled: give the job up."""


def count_primes(
    n: int, steps: int = PROGRESS_STEPS, stopping: Callable[[], bool] = lambda: False
) -> Iterator[tuple[int, int]]:
    """
    Count the primes up to n by trial division: deliberately plain, CPU-bound Python.

    Yields `(numbers checked, primes found)` `steps` times, the last time `(n, pi(n))`.
    Asks `stopping()` every STOP_CHECK_EVERY numbers, far more often than it yields, and
    raises WorkerStopping when it says so: a step of the biggest job takes a second or more.
    """
    primes: list[int] = []
    checkpoints = sorted({math.ceil(n * step / steps) for step in range(1, steps + 1)})
    candidate = 2
    for checkpoint in checkpoints:
        while candidate <= checkpoint:
            if all(candidate % p for p in _divisors(primes, candidate)):
                primes.append(candidate)
            candidate += 1
            if candidate % STOP_CHECK_EVERY == 0 and stopping():
                raise WorkerStopping
        yield checkpoint, len(primes)


def _divisors(primes: list[int], candidate: int) -> Iterator[int]:
    for p in primes:
        if p * p > candidate:
            return
        yield p


def valid_n(value: Any, maximum: int) -> bool:
    """Whether `value` is a job size we accept: an integer from 2 to `maximum`."""
    return isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= maximum


class PrimeCounter(SyncConsumer):
    """
    Serves the channel "jobs": counts primes up to n, blocking, and reports progress.

    Its handler runs in a thread of its own (worker.py) or in runworker's sync thread, which
    nothing cancels. When the server or runworker stops, either its event loop stops (daphne)
    or this consumer is cancelled (uvicorn, hypercorn, runworker on Ctrl-C); the thread notices
    either within a few milliseconds of counting and gives the job up. Otherwise the
    interpreter, which waits for that thread at exit, would wait for the whole job, or forever
    for a reply through a loop that no longer runs.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Note the event loop the replies go through and the job queue; flag when cancelled."""
        self.loop = asyncio.get_running_loop()
        self.jobs: JobQueue = get_job_queue()
        self.stopped = threading.Event()
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stopped.set()

    def stopping(self) -> bool:
        """Whether this worker is stopping: cancelled, or its event loop no longer runs."""
        return self.stopped.is_set() or not self.loop.is_running()

    def job_run(self, message: dict[str, Any]) -> None:
        """Do one job; its progress and result go to the socket that asked (`reply_to`)."""
        reply_to, job, n = message.get("reply_to"), message.get("job"), message.get("n")
        if not isinstance(reply_to, str) or not reply_to:
            logger.warning("job without a reply_to channel dropped: %r", message)
            return
        try:
            # The socket checked already, but a channel takes messages from anyone: check again.
            if not valid_n(n, settings.JOBS_MAX_N):
                self.reply(reply_to, {"type": "job.failed", "job": job, "reason": f"bad n {n!r}"})
                return
            self.count(reply_to, job, n)
        except WorkerStopping:
            logger.info("worker stopping: job %s of %s abandoned", job, reply_to)
        except Exception as error:
            if not is_unreachable(error):
                raise
            logger.warning("job %s of %s abandoned: Redis unreachable (%r)", job, reply_to, error)

    def count(self, reply_to: str, job: Any, n: int) -> None:
        """Count the primes, reporting each step, while the job is wanted and the worker runs."""
        key = job_key(reply_to, job)
        if not self.on_loop(self.jobs.wanted(key)):
            logger.info("job %s of %s cancelled before it began: its socket left", job, reply_to)
            return
        started = time.monotonic()
        primes = 0
        for checked, primes in count_primes(n, stopping=self.stopping):
            if not self.on_loop(self.jobs.wanted(key)):
                logger.info(
                    "job %s of %s cancelled at %d of %d: its socket left", job, reply_to, checked, n
                )
                return
            self.reply(
                reply_to,
                {"type": "job.progress", "job": job, "done": checked, "total": n, "primes": primes},
            )
        self.reply(
            reply_to,
            {
                "type": "job.done",
                "job": job,
                "n": n,
                "primes": primes,
                "seconds": round(time.monotonic() - started, 3),
                "process": os.getpid(),
                "thread": threading.current_thread().name,
            },
        )

    def reply(self, channel: str, message: dict[str, Any]) -> None:
        """Send to one socket's channel; a socket too slow to read is skipped, not waited on."""
        try:
            self.on_loop(self.channel_layer.send(channel, message))
        except ChannelFull:
            logger.warning("channel %s is full; %s dropped", channel, message["type"])

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """
        Run a coroutine on the event loop from this thread and return its result (the channel
        layer's and Redis's connections belong to the loop).

        Never `async_to_sync`: it waits for its result forever, and a loop that stopped after
        the coroutine was handed to it (daphne exiting) never gives one, so this thread, and
        with it the process, would never end. Here the wait gives up as soon as the worker is
        stopping.
        """
        if self.stopping():
            coroutine.close()
            raise WorkerStopping
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # the loop is closed
            coroutine.close()
            raise WorkerStopping from None
        while not concurrent.futures.wait([future], LOOP_CHECK_SECONDS).done:
            if self.stopping():
                future.cancel()
                if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                    coroutine.close()  # never started: not "never awaited" at exit
                raise WorkerStopping
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise WorkerStopping from None


class JobsConsumer(
    ChannelLayerOutageMixin, SessionEndedMixin, NoDatabaseMixin, AsyncJsonWebsocketConsumer
):
    """
    Sends jobs to the worker and relays its progress; answers other commands meanwhile.

    With Redis unreachable it closes 4503 (apps/core/outage.py), like the lobby; when its
    user logs out, 4401 (apps/core/sessions.py). Each job it sends holds one of its user's
    places (apps/core/throttle.py) and a place and a lease in the job queue (queue.py) while
    the socket lives; when the socket ends, however it ends, its jobs give both back and are
    cancelled.
    """

    leases: asyncio.Task | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the consumer; whether it ends by a disconnect or is cancelled, drop its jobs."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.forget_jobs()

    async def connect(self) -> None:
        """Accept, make sure someone serves "jobs", and say which process holds the socket."""
        self.limiter = Limiter("json")
        self.jobs: JobQueue = get_job_queue()
        self.pending: set[int] = set()
        self.last_job = 0
        await self.accept(protocol.select_subprotocol(self.scope))
        if settings.JOBS_IN_PROCESS:
            worker.ensure_in_process_worker()
        await self.send_json(
            {
                "type": "hello",
                "process": os.getpid(),
                "worker": "in-process" if settings.JOBS_IN_PROCESS else "runworker",
                "max_n": settings.JOBS_MAX_N,
                "per_socket": settings.JOBS_PER_SOCKET,
            }
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Check limits and decode; bad input gets an error envelope, never a traceback."""
        if refusal := self.limiter.check(text_data, bytes_data):
            await self.close(refusal.code, refusal.reason)
            return
        try:
            await self.receive_json(protocol.decode(text_data))
        except protocol.BadMessage as bad:
            await self.send_json(bad.envelope)

    async def receive_json(self, content: dict[str, Any]) -> None:
        """Act on one command: `job`, `echo`, `info` or `close`."""
        match content["type"]:
            case "job":
                await self.start_job(content.get("n"))
            case "echo":
                await self.send_json({"type": "echo", "data": content.get("data")})
            case "info":
                await self.send_json(protocol.info(self))
            case "close":
                await self.close(*protocol.close_args(content))
            case _:
                raise protocol.BadMessage(
                    "unknown_type", f"unknown type {content['type']!r}; try job, echo or info"
                )

    async def start_job(self, n: Any) -> None:
        """Check the job, hand it to the "jobs" channel, and answer `queued`."""
        if not valid_n(n, settings.JOBS_MAX_N):
            raise protocol.BadMessage(
                "invalid_job", f'"n" must be an integer from 2 to {settings.JOBS_MAX_N}'
            )
        if len(self.pending) >= settings.JOBS_PER_SOCKET:
            raise protocol.BadMessage(
                "too_many_jobs",
                f"at most {settings.JOBS_PER_SOCKET} unfinished jobs per socket; wait for one",
            )
        self.last_job += 1
        job = self.last_job
        if not await self.hold_place(job):
            limit = int(throttle.setting("jobs_per_user", "limit"))
            raise protocol.BadMessage(
                "too_many_jobs",
                f"at most {limit} unfinished jobs per user (or address), over all sockets",
            )
        # The queue's entry before the message: a worker skips a job that has none.
        key = job_key(self.channel_name, job)
        if not await self.jobs.add(key):
            await self.free_place(job)
            raise protocol.BadMessage("queue_full", "the job queue is full; try later")
        message = {"type": "job.run", "job": job, "n": n, "reply_to": self.channel_name}
        try:
            await self.channel_layer.send(JOBS_CHANNEL, message)
        except ChannelFull:
            await self.jobs.remove([key])
            await self.free_place(job)
            raise protocol.BadMessage("queue_full", "the job queue is full; try later") from None
        self.pending.add(job)
        if self.leases is None or self.leases.done():
            self.leases = asyncio.create_task(self.renew_leases())
        await self.send_json({"type": "queued", "job": job, "n": n, "process": os.getpid()})

    # ---------------------------------------------------------- jobs per user (throttle.py)

    async def hold_place(self, job: int) -> bool:
        """Take one of the user's (or address's) places for unfinished jobs, on any process."""
        return await throttle.acquire(
            "jobs_per_user", throttle.who(self.scope), f"{self.channel_name}:{job}"
        )

    async def free_place(self, job: int) -> None:
        """Give the job's place back: it finished, failed, or its socket left."""
        await throttle.release(
            "jobs_per_user", throttle.who(self.scope), f"{self.channel_name}:{job}"
        )

    # ---------------------------------------------------------- the job queue (queue.py)

    async def renew_leases(self) -> None:
        """While this socket has unfinished jobs, renew their leases every third of a lease."""
        while self.pending:
            await asyncio.sleep(settings.JOBS_LEASE_SECONDS / 3)
            try:
                await self.jobs.renew(job_key(self.channel_name, job) for job in self.pending)
            except Exception as error:
                # Redis unreachable: the socket closes 4503 (outage.py); until then, try again.
                logger.info("leases of %s not renewed: %r", self.channel_name, error)

    async def finished(self, job: Any) -> None:
        """One of our jobs is done or failed: it leaves the queue and frees its place."""
        if job in self.pending:
            self.pending.discard(job)
            await self.jobs.remove([job_key(self.channel_name, job)])
            await self.free_place(job)

    async def forget_jobs(self) -> None:
        """
        The socket ends: its unfinished jobs leave the queue (so the worker cancels them) and
        hold no place of the user's any more. If Redis fails here, the leases run out instead.
        """
        if self.leases is not None:
            self.leases.cancel()
        # None before connect() (a pub/sub layer can fail first).
        jobs = list(getattr(self, "pending", ()))
        self.pending = set()
        if not jobs:
            return

        async def give_back() -> None:
            await self.jobs.remove(job_key(self.channel_name, job) for job in jobs)
            for job in jobs:
                await self.free_place(job)

        try:
            await asyncio.wait_for(give_back(), FORGET_SECONDS)
        except Exception as error:
            logger.info("jobs of %s left to their leases: %r", self.channel_name, error)

    # ---------------------------------------------------------- messages from the worker

    async def job_progress(self, event: dict[str, Any]) -> None:
        """The worker finished a step of one of our jobs."""
        await self.send_json({**event, "type": "progress"})

    async def job_done(self, event: dict[str, Any]) -> None:
        """The worker finished one of our jobs: `process` is the worker's pid."""
        await self.finished(event["job"])
        await self.send_json({**event, "type": "done"})

    async def job_failed(self, event: dict[str, Any]) -> None:
        """The worker refused one of our jobs."""
        await self.finished(event["job"])
        await self.send_json(
            {"type": "error", "code": "job_failed", "job": event["job"], "message": event["reason"]}
        )
