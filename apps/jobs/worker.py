"""
The worker inside the server process, for the in-memory channel layer (`make run`).

`InMemoryChannelLayer` keeps its queues in this process's memory: a `runworker` process would
have a layer of its own and never see a job. So, when `JOBS_IN_PROCESS` is on (the default
without `REDIS_URL`), the first jobs socket starts, on the server's event loop, exactly what
`runworker jobs` runs: read the channel "jobs" and hand each message to the application
(`ChannelNameRouter`, config/asgi.py), one consumer instance for the channel.

`ThreadSensitiveContext` gives the worker's sync handlers a thread of their own. Without it
they would run in asgiref's one shared sync thread, and a long job would stall every sync
consumer of the process. The work still shares the process's GIL with the server (sockets
answer, a little slower); a `runworker` process over Redis shares nothing.

Like `runworker`, it takes messages off the layer as they come, into the consumer's own queue,
but a bounded one (the layer's capacity for the channel): beyond that, jobs wait in the layer
and a full layer refuses more (`queue_full`). The queue's entries (queue.py) are what limits
unfinished jobs; this bound only keeps abandoned messages from piling up in memory.

When the server stops, whichever way its event loop ends (stopped under daphne, its tasks
cancelled under uvicorn and hypercorn), the job in hand is given up at once: the consumer
(PrimeCounter) watches for both.
"""

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from channels.layers import get_channel_layer
from channels.routing import get_default_application

from .queue import JOBS_CHANNEL

logger = logging.getLogger(__name__)

# One worker per event loop (the server has one; each async test has its own).
_running: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = (
    weakref.WeakKeyDictionary()
)


async def _no_reply(message: dict[str, Any]) -> None:
    # A channel has no client to answer: workers reply through the channel layer.
    raise RuntimeError(f"a channel consumer cannot send {message['type']!r} to a client")


async def serve(channel: str) -> None:
    """
    What `runworker <channel>` does, on this event loop: read the channel and feed each
    message to one application instance for it (scope `{"type": "channel", ...}`).
    """
    layer = get_channel_layer()
    application = get_default_application()
    scope = {"type": "channel", "channel": channel}
    capacity = layer.get_capacity(channel)
    async with ThreadSensitiveContext():
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(capacity)
        instance = asyncio.ensure_future(application(scope, queue.get, _no_reply))
        try:
            while True:
                message = await layer.receive(channel)
                if instance.done():
                    # A handler raised: runworker would log it and go on; so do we.
                    if not instance.cancelled() and instance.exception():
                        logger.error("worker for %r failed", channel, exc_info=instance.exception())
                    queue = asyncio.Queue(capacity)
                    instance = asyncio.ensure_future(application(scope, queue.get, _no_reply))
                await queue.put(message)
        finally:
            instance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await instance


def ensure_in_process_worker() -> None:
    """Start the in-process worker on this event loop, unless it is running already."""
    loop = asyncio.get_running_loop()
    task = _running.get(loop)
    if task is not None and not task.done():
        return
    _running[loop] = loop.create_task(serve(JOBS_CHANNEL), name="jobs in-process worker")
    logger.info("serving channel %r in this process (in-memory channel layer)", JOBS_CHANNEL)


async def stop_in_process_worker() -> None:
    """Stop this loop's in-process worker, if any (tests; a server just exits)."""
    task = _running.pop(asyncio.get_running_loop(), None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
