"""
A background worker fed from a socket: blocking work leaves the socket's consumer free.

`JobsConsumer` (`/ws/jobs/`) never does the work. It sends each job to the channel named
"jobs" and answers `queued`; `PrimeCounter`, a `SyncConsumer` that `ChannelNameRouter` routes
that channel to (config/asgi.py), does the blocking work and sends `job.progress` and
`job.done` straight to the socket's own channel name, which the socket passes on to the browser.
Meanwhile the socket answers anything else at once: its event loop never blocks.

Who reads "jobs": `python manage.py runworker jobs`, a process of its own, when the channel
layer is Redis (`make cluster`). The in-memory layer lives inside one process, where a
separate worker could never see the messages, so there the server runs the same worker
itself (worker.py): the same routing, the same consumer, in a thread of its own.
"""

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from apps.core import protocol, throttle
from apps.core.consumers import NoDatabaseMixin
from apps.core.limits import Limiter
from apps.core.outage import ChannelLayerOutageMixin
from apps.core.sessions import SessionEndedMixin

from . import worker

logger = logging.getLogger(__name__)

JOBS_CHANNEL = "jobs"
PROGRESS_STEPS = 20


def count_primes(n: int, steps: int = PROGRESS_STEPS) -> Iterator[tuple[int, int]]:
    """
    Count the primes up to n by trial division: deliberately plain, CPU-bound Python.

    Yields `(numbers checked, primes found)` `steps` times, the last time `(n, pi(n))`.
    """
    primes: list[int] = []
    checkpoints = sorted({math.ceil(n * step / steps) for step in range(1, steps + 1)})
    candidate = 2
    for checkpoint in checkpoints:
        while candidate <= checkpoint:
            if all(candidate % p for p in _divisors(primes, candidate)):
                primes.append(candidate)
            candidate += 1
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
    """Serves the channel "jobs": counts primes up to n, blocking, and reports progress."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Remember the event loop the replies go through (handlers run in another thread)."""
        self.loop = asyncio.get_running_loop()
        await super().__call__(scope, receive, send)

    def job_run(self, message: dict[str, Any]) -> None:
        """Do one job; its progress and result go to the socket that asked (`reply_to`)."""
        reply_to, job, n = message.get("reply_to"), message.get("job"), message.get("n")
        if not isinstance(reply_to, str) or not reply_to:
            logger.warning("job without a reply_to channel dropped: %r", message)
            return
        # The socket checked already, but a channel takes messages from anyone: check again.
        if not valid_n(n, settings.JOBS_MAX_N):
            self.reply(reply_to, {"type": "job.failed", "job": job, "reason": f"bad n {n!r}"})
            return
        started = time.monotonic()
        primes = 0
        for checked, primes in count_primes(n):
            if not self.loop.is_running():
                # The server is exiting: a reply would wait forever for its stopped loop, and
                # this thread would hold the process open. Give the job up.
                logger.info("event loop stopped: job %s abandoned at %d of %d", job, checked, n)
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
            async_to_sync(self.channel_layer.send)(channel, message)
        except ChannelFull:
            logger.warning("channel %s is full; %s dropped", channel, message["type"])


class JobsConsumer(
    ChannelLayerOutageMixin, SessionEndedMixin, NoDatabaseMixin, AsyncJsonWebsocketConsumer
):
    """
    Sends jobs to the worker and relays its progress; answers other commands meanwhile.

    With Redis unreachable it closes 4503 (apps/core/outage.py), like the lobby; when its
    user logs out, 4401 (apps/core/sessions.py).
    """

    async def connect(self) -> None:
        """Accept, make sure someone serves "jobs", and say which process holds the socket."""
        self.limiter = Limiter("json")
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
        message = {"type": "job.run", "job": job, "n": n, "reply_to": self.channel_name}
        try:
            await self.channel_layer.send(JOBS_CHANNEL, message)
        except ChannelFull:
            await self.free_place(job)
            raise protocol.BadMessage("queue_full", "the job queue is full; try later") from None
        self.pending.add(job)
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

    async def disconnect(self, code: int) -> None:
        """The socket is gone: its unfinished jobs hold no place of the user's any more."""
        for job in getattr(self, "pending", ()):
            await self.free_place(job)

    # ---------------------------------------------------------- messages from the worker

    async def job_progress(self, event: dict[str, Any]) -> None:
        """The worker finished a step of one of our jobs."""
        await self.send_json({**event, "type": "progress"})

    async def job_done(self, event: dict[str, Any]) -> None:
        """The worker finished one of our jobs: `process` is the worker's pid."""
        self.pending.discard(event["job"])
        await self.free_place(event["job"])
        await self.send_json({**event, "type": "done"})

    async def job_failed(self, event: dict[str, Any]) -> None:
        """The worker refused one of our jobs."""
        self.pending.discard(event["job"])
        await self.free_place(event["job"])
        await self.send_json(
            {"type": "error", "code": "job_failed", "job": event["job"], "message": event["reason"]}
        )
