"""
The worker's thread notices that its server is stopping, both ways a server stops, and never
waits for a reply through an event loop that no longer runs.

The servers themselves, stopped by the real signals with a job in flight, are in
apps/core/tests/test_shutdown.py; these pin the two causes down deterministically.
"""

import asyncio
import threading
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from apps.jobs import worker
from apps.jobs.consumers import PrimeCounter, WorkerStopping
from apps.jobs.queue import JOBS_CHANNEL, get_job_queue, job_key

# Seconds the worker may take to notice; the jobs here would take half a minute or more.
NOTICE_SECONDS = 10.0


pytestmark = pytest.mark.usefixtures("clean_jobs")


def test_a_reply_through_an_event_loop_that_stopped_gives_up_instead_of_waiting() -> None:
    # daphne's way: its reactor stops the loop (without closing it or cancelling anything)
    # while the worker's thread is about to reply. The thread is one that asgiref's
    # sync_to_async started for the loop, as the worker's handler is.
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever)
    running.start()
    counter = PrimeCounter()
    counter.loop, counter.stopped = loop, threading.Event()
    counter.channel_layer = InMemoryChannelLayer()
    about_to_reply, loop_stopped, replied = threading.Event(), threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def handler() -> None:
        about_to_reply.set()
        loop_stopped.wait()
        try:
            counter.reply("somebody", {"type": "job.progress"})
            outcome["returned"] = True
        except WorkerStopping:
            outcome["stopping"] = True
        replied.set()

    handling = asyncio.run_coroutine_threadsafe(
        sync_to_async(handler, thread_sensitive=False)(), loop
    )
    assert about_to_reply.wait(NOTICE_SECONDS)
    loop.call_soon_threadsafe(loop.stop)
    running.join()
    loop_stopped.set()
    try:
        assert replied.wait(NOTICE_SECONDS), "the reply waited for a loop that had stopped"
        assert outcome == {"stopping": True}
    finally:
        # Let the loop finish what waits for it (had the reply hung, that frees its thread).
        loop.run_until_complete(asyncio.wrap_future(handling, loop=loop))
        loop.close()


async def test_a_cancelled_worker_stops_its_job_at_once(settings) -> None:
    # uvicorn's and hypercorn's way: on the way out, asyncio.run cancels every task, the
    # in-process worker's among them, while the loop still runs to let them finish.
    settings.JOBS_MAX_N = 10_000_000
    worker.ensure_in_process_worker()
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    assert await get_job_queue().add(job_key(reply_to, 1))
    job = {"type": "job.run", "job": 1, "n": 10_000_000, "reply_to": reply_to}
    await layer.send(JOBS_CHANNEL, job)
    assert (await layer.receive(reply_to))["type"] == "job.progress"  # it is counting
    # Stopping waits for the worker's thread (asgiref joins it): before, for the whole job.
    started = time.monotonic()
    await worker.stop_in_process_worker()
    assert time.monotonic() - started < NOTICE_SECONDS
