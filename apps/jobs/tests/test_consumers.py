"""
The worker consumer on its own (raw channel messages), and `/ws/jobs/` through the whole
stack with the in-process worker reading the channel "jobs".
"""

import os

import pytest
from channels.layers import channel_layers, get_channel_layer
from channels.testing import ApplicationCommunicator
from django.test import override_settings

from apps.core.tests.contract import communicator
from apps.jobs.consumers import PrimeCounter, count_primes
from apps.jobs.queue import get_job_queue, job_key
from config.asgi import application
from tools.servers import free_port

JOBS = "/ws/jobs/"


pytestmark = pytest.mark.usefixtures("clean_jobs")


def test_count_primes_reports_steps_up_to_pi_of_n() -> None:
    steps = list(count_primes(1000, steps=4))
    assert steps == [(250, 53), (500, 95), (750, 132), (1000, 168)]
    assert list(count_primes(2, steps=20)) == [(1, 0), (2, 1)]


# ------------------------------------------------------------------ the worker consumer


async def run_job(message: dict) -> list[dict]:
    """
    Feed one `job.run` to the worker consumer, as a socket would (its entry in the job queue
    first); collect what the worker sent to the reply channel.
    """
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    assert await get_job_queue().add(job_key(reply_to, message.get("job")))
    app = ApplicationCommunicator(PrimeCounter.as_asgi(), {"type": "channel", "channel": "jobs"})
    await app.send_input({"type": "job.run", "reply_to": reply_to, **message})
    replies = [await layer.receive(reply_to)]
    while replies[-1]["type"] == "job.progress":
        replies.append(await layer.receive(reply_to))
    app.stop()
    return replies


async def test_worker_reports_progress_in_order_then_done() -> None:
    replies = await run_job({"job": 7, "n": 10_000})
    progress, done = replies[:-1], replies[-1]
    assert len(progress) == 20
    assert [p["done"] for p in progress] == list(range(500, 10_001, 500))
    counts = [p["primes"] for p in progress]
    assert counts == sorted(counts)
    assert all(p["job"] == 7 and p["total"] == 10_000 for p in progress)
    assert done["type"] == "job.done"
    assert (done["job"], done["n"], done["primes"]) == (7, 10_000, 1229)
    assert done["process"] == os.getpid()


@pytest.mark.parametrize("n", [1, -5, "100", 2.5, True, None, 10**12])
async def test_worker_refuses_bad_job_input(n) -> None:
    replies = await run_job({"job": 1, "n": n})
    assert [r["type"] for r in replies] == ["job.failed"]
    assert "bad n" in replies[0]["reason"]


async def test_worker_drops_a_job_without_reply_channel(caplog) -> None:
    app = ApplicationCommunicator(PrimeCounter.as_asgi(), {"type": "channel", "channel": "jobs"})
    await app.send_input({"type": "job.run", "job": 1, "n": 10})
    assert await app.receive_nothing(0.1)
    assert "without a reply_to" in caplog.text
    app.stop()


async def test_channel_name_router_routes_jobs_to_the_worker() -> None:
    router = application.application_mapping["channel"]
    assert router.application_mapping["jobs"].consumer_class is PrimeCounter


# ------------------------------------------------------------------ the socket


async def open_jobs() -> object:
    comm = communicator(JOBS)
    assert (await comm.connect())[0]
    hello = await comm.receive_json_from()
    assert hello == {
        "type": "hello",
        "process": os.getpid(),
        "worker": "in-process",
        "max_n": 2_000_000,
        "per_socket": 2,
    }
    return comm


async def test_job_is_queued_then_progress_then_done_from_the_worker() -> None:
    comm = await open_jobs()
    await comm.send_json_to({"type": "job", "n": 20_000})
    assert await comm.receive_json_from() == {
        "type": "queued",
        "job": 1,
        "n": 20_000,
        "process": os.getpid(),
    }
    replies = [await comm.receive_json_from()]
    while replies[-1]["type"] == "progress":
        replies.append(await comm.receive_json_from())
    assert [r["type"] for r in replies] == ["progress"] * 20 + ["done"]
    assert replies[-1]["primes"] == 2262
    # In process: the worker ran in a thread of its own, not the shared sync thread.
    assert replies[-1]["thread"] != "MainThread"
    await comm.disconnect()


async def test_echo_during_a_job_comes_back_before_done() -> None:
    comm = await open_jobs()
    await comm.send_json_to({"type": "job", "n": 300_000})
    assert (await comm.receive_json_from())["type"] == "queued"
    assert (await comm.receive_json_from(5))["type"] == "progress"  # the work has begun
    await comm.send_json_to({"type": "echo", "data": "still here?"})
    seen = []
    while not seen or seen[-1]["type"] != "done":
        seen.append(await comm.receive_json_from(10))
    types = [m["type"] for m in seen]
    assert "echo" in types
    assert types.index("echo") < types.index("done")
    assert seen[types.index("echo")]["data"] == "still here?"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ({"type": "job"}, "invalid_job"),
        ({"type": "job", "n": 1}, "invalid_job"),
        ({"type": "job", "n": "10"}, "invalid_job"),
        ({"type": "job", "n": 2_000_001}, "invalid_job"),
        ({"type": "job", "n": True}, "invalid_job"),
        ({"type": "dance"}, "unknown_type"),
    ],
)
async def test_bad_commands_get_error_envelopes_and_the_socket_stays(command, code) -> None:
    comm = await open_jobs()
    await comm.send_json_to(command)
    reply = await comm.receive_json_from()
    assert (reply["type"], reply["code"]) == ("error", code)
    await comm.send_to(text_data="{not json")
    assert (await comm.receive_json_from())["code"] == "invalid_json"
    await comm.send_json_to({"type": "echo", "data": 1})
    assert await comm.receive_json_from() == {"type": "echo", "data": 1}
    await comm.disconnect()


async def test_jobs_per_socket_are_limited(settings) -> None:
    settings.JOBS_PER_SOCKET = 1
    comm = communicator(JOBS)
    await comm.connect()
    await comm.receive_json_from()
    await comm.send_json_to({"type": "job", "n": 50_000})
    await comm.send_json_to({"type": "job", "n": 10})
    replies = [await comm.receive_json_from(), await comm.receive_json_from()]
    assert replies[0]["type"] == "queued"
    refused = next(r for r in replies if r["type"] == "error")
    assert refused["code"] == "too_many_jobs"
    while (await comm.receive_json_from(5))["type"] != "done":
        pass
    # Once the first is done, a new job is accepted again.
    await comm.send_json_to({"type": "job", "n": 10})
    assert (await comm.receive_json_from())["type"] == "queued"
    await comm.disconnect()


# ------------------------------------------------------------------ Redis unreachable


async def test_an_unreachable_redis_closes_the_jobs_socket_4503() -> None:
    # A port nothing listens on: RedisChannelLayer's receive loop fails once its retries are
    # spent, and ChannelLayerOutageMixin turns that into 4503 instead of 1011 and a traceback.
    unreachable = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    with override_settings(CHANNEL_LAYERS=unreachable, JOBS_IN_PROCESS=False):
        channel_layers.backends.clear()
        try:
            comm = communicator(JOBS)
            assert (await comm.connect())[0]
            assert (await comm.receive_json_from())["type"] == "hello"
            event = await comm.receive_output(timeout=10)
            assert event == {"type": "websocket.close", "code": 4503}
            await comm.wait()
        finally:
            channel_layers.backends.clear()


# ------------------------------------------------------------------ the queue's bound and leases


async def test_the_queue_is_bounded_over_every_socket_and_a_leaving_socket_frees_it(
    settings,
) -> None:
    settings.JOBS_QUEUE_LIMIT = 3
    first, second = await open_jobs(), await open_jobs()
    for comm in (first, second):
        for _ in range(2):
            await comm.send_json_to({"type": "job", "n": 2_000_000})
    answers = []
    for comm in (first, second):
        for _ in range(2):
            answer = await comm.receive_json_from()
            while answer["type"] == "progress":
                answer = await comm.receive_json_from()
            answers.append(answer.get("code", answer["type"]))
    # The two consumers take their messages in turn, in an order of their own.
    assert sorted(answers) == ["queue_full", "queued", "queued", "queued"]
    await first.disconnect()  # its jobs leave the queue at once
    third = await open_jobs()
    await third.send_json_to({"type": "job", "n": 10})
    assert (await third.receive_json_from())["type"] == "queued"
    await second.disconnect()
    await third.disconnect()


async def test_a_job_whose_socket_left_is_cancelled_at_its_next_step(caplog) -> None:
    leaving = await open_jobs()
    await leaving.send_json_to({"type": "job", "n": 2_000_000})
    assert (await leaving.receive_json_from())["type"] == "queued"
    assert (await leaving.receive_json_from(10))["type"] == "progress"
    await leaving.disconnect()
    staying = await open_jobs()
    await staying.send_json_to({"type": "job", "n": 10})
    replies = [await staying.receive_json_from(10)]
    while replies[-1]["type"] != "done":
        replies.append(await staying.receive_json_from(30))
    # The worker took the new job only after giving the old one up, long before its end.
    cancelled = [r.getMessage() for r in caplog.records if "cancelled at" in r.getMessage()]
    assert len(cancelled) == 1, caplog.text
    assert int(cancelled[0].split(" at ")[1].split(" of ")[0]) < 2_000_000
    await staying.disconnect()
