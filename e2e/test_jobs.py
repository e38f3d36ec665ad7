"""
The /worker/ page in Chromium: jobs sent from a socket, progress pushed back to it by the
worker consumer, on the session daphne (in-memory layer: the worker runs inside daphne) and
on a daphne whose worker is a separate `manage.py runworker jobs` process over Redis.
"""

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from e2e.console import Console
from tools.servers import ServerProcess

IS_HELLO = "r.dataType === 'string' && JSON.parse(r.text).type === 'hello'"
IS_PROGRESS = "JSON.parse(r.text).type === 'progress'"
IS_ECHO = "JSON.parse(r.text).type === 'echo'"


@pytest.fixture(autouse=True)
def no_traceback(daphne_server: ServerProcess) -> Iterator[None]:
    """Jobs, bad jobs and closed sockets leave no traceback in the server's log."""
    start = len(daphne_server.log())
    yield
    assert "Traceback" not in daphne_server.log()[start:]


def envelopes(console: Console, since: int = 0) -> list[dict]:
    """Every JSON envelope the page's socket received."""
    return [json.loads(r["text"]) for r in console.records("message", since)]


def open_jobs(page: Page, base: str = "") -> tuple[Console, dict]:
    """The /worker/ page once its socket said hello (jobs.js connects by itself)."""
    console = Console.open(page, f"{base}/worker/")
    console.wait_for("message", where=IS_HELLO)
    return console, envelopes(console)[0]


def run_job(page: Page, console: Console, n: int) -> list[dict]:
    """Start a job from the form and return the envelopes up to its `done`."""
    since = console.mark()
    page.get_by_label("count the primes up to").fill(str(n))
    page.get_by_role("button", name="Start job").click()
    console.wait_for("message", since, where="JSON.parse(r.text).type === 'done'", timeout=15_000)
    return envelopes(console, since)


def test_the_socket_answers_an_echo_while_a_job_runs(page: Page) -> None:
    # On the embedded default the worker is a thread of daphne's own process, sharing its GIL:
    # the echo is answered between two steps of the biggest job, a few milliseconds late
    # (`python -m tools.echo_during_job`), while the job goes on for seconds. No race: the job
    # has 19 steps left when the echo is sent, each longer than an echo takes.
    console, hello = open_jobs(page)
    assert hello["worker"] == "in-process"
    since = console.mark()
    page.get_by_label("count the primes up to").fill(str(hello["max_n"]))
    page.get_by_role("button", name="Start job").click()
    console.wait_for("message", since, where=IS_PROGRESS)
    page.get_by_role("button", name="echo now").click()
    console.wait_for("message", since, where=IS_ECHO)
    # The socket's messages arrive in the order it sent them: a step after the echo, and not
    # the last, means the socket answered while the job was still counting.
    console.wait_for("message", since, where=IS_ECHO + " || " + IS_PROGRESS, count=3)
    seen = envelopes(console, since)
    types = [e["type"] for e in seen]
    assert types[0] == "queued" and "done" not in types
    later = [e for e in seen[types.index("echo") :] if e["type"] == "progress"]
    assert later and later[0]["done"] < later[0]["total"], seen
    expect(page.locator("[data-job-list]")).to_contain_text("echo answered while jobs run")
    # Leaving the page closes the socket: the job is cancelled at its next step.


def test_a_job_reports_its_steps_and_its_result_on_the_page(page: Page) -> None:
    console, hello = open_jobs(page)
    replies = run_job(page, console, 200_000)
    types = [e["type"] for e in replies]
    assert types == ["queued"] + ["progress"] * 20 + ["done"]
    done = replies[-1]
    assert done["primes"] == 17984
    # The in-memory layer: the server process did the work, in a thread of its own.
    assert done["process"] == hello["process"]
    item = page.locator("[data-job-list] li[data-done]")
    expect(item).to_contain_text("17984 primes up to 200000")
    expect(item.locator("progress")).to_have_js_property("value", 1)


def test_bad_job_gets_an_error_and_the_page_says_so(page: Page) -> None:
    console, _ = open_jobs(page)
    since = console.mark()
    console.send_json({"type": "job", "n": 10**12})
    reply = json.loads(console.wait_for("message", since)[0]["text"])
    assert (reply["type"], reply["code"]) == ("error", "invalid_job")
    expect(page.locator("[data-job-list]")).to_contain_text("refused: invalid_job")


def test_a_separate_runworker_process_does_the_work_over_redis(
    page: Page, worker_cluster: tuple[ServerProcess, ServerProcess]
) -> None:
    server, worker = worker_cluster
    console, hello = open_jobs(page, server.http_url)
    assert (hello["process"], hello["worker"]) == (server.process.pid, "runworker")
    replies = run_job(page, console, 50_000)
    queued, done = replies[0], replies[-1]
    assert queued["process"] == server.process.pid
    assert done["process"] == worker.process.pid  # another process did the work
    assert done["primes"] == 5133
    assert [r["type"] for r in replies[1:-1]] == ["progress"] * 20
    assert "Traceback" not in worker.log() + server.log()
