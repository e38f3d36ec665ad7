"""
The console reconnects by itself when its server goes away: a daphne of the test's own is
stopped under an open page and a new one started on the same port (the session's server is
left alone).
"""

from collections.abc import Callable

from playwright.sync_api import Page, expect

from bench.storm import console_backoff
from e2e.console import Console
from tools.servers import ServerProcess, free_port

ECHO = "/ws/sc/generic/"


def test_console_reconnects_with_capped_jittered_backoff_after_a_restart(
    page: Page, start_server: Callable[..., ServerProcess]
) -> None:
    port = free_port()
    first = start_server(port=port, name="daphne-before-restart")
    console = Console.open(page, first.http_url + "/sync/")
    # The page waits 0.5 s, doubling up to 10 s. The same policy, scaled down, reaches its
    # cap within a second instead of half a minute.
    assert console.run("(c) => c.backoff") == {"baseMs": 500, "capMs": 10_000}
    console.run("(c) => { c.backoff = { baseMs: 100, capMs: 400 }; }")
    console.connect(ECHO)
    assert console.echo("before")["text"] == "before"

    since = console.mark()
    first.stop()
    lost = console.wait_for("close", since)[0]
    assert (lost["code"], lost["wasClean"]) == (1006, False)  # no close frame: the process died

    # While nothing listens, every attempt fails (error, then close 1006) and is retried.
    attempts = console.wait_for("reconnecting", since, count=5)
    second = start_server(port=port, name="daphne-after-restart")
    back = console.wait_for("reconnected", since, timeout=15_000)[0]
    assert console.wait_for("open", since)[0]["at"] >= back["at"]
    assert console.echo("after")["text"] == "after"  # on the new process
    assert second.process.poll() is None

    attempts = console.records("reconnecting", since)
    numbers = [a["attempt"] for a in attempts]
    assert numbers == list(range(1, len(numbers) + 1))
    # Exponential up to the cap...
    assert [a["ceiling"] for a in attempts] == [min(400, 100 * 2 ** (n - 1)) for n in numbers]
    # ...with "equal jitter": each wait is random within the upper half of its ceiling,
    assert all(a["ceiling"] / 2 <= a["delay"] <= a["ceiling"] for a in attempts)
    # so waits under the same ceiling differ (all equal: odds about 1 in 40,000).
    capped = [a["delay"] for a in attempts if a["ceiling"] == 400]
    assert len(capped) >= 3
    assert len(set(capped)) > 1
    # Each new socket was made no sooner than its wait.
    connects = console.records("connect", since)
    assert len(connects) == len(attempts)
    for attempt, connect in zip(attempts, connects, strict=True):
        assert connect["at"] - attempt["at"] >= attempt["delay"] - 2  # timer granularity
    # The failed attempts were real handshakes that failed, seen by both handler styles.
    errors = console.records("error", since)
    assert len(errors) == len(attempts) - 1
    assert all(e["via"] == ["onerror", "addEventListener"] for e in errors)
    assert back["message"] == f"back after {len(attempts)} attempt(s)"

    # And the console says so in its log.
    log = console.root.get_by_role("log", name="What the browser saw")
    expect(log.locator("li.log-reconnecting")).to_have_count(len(attempts))
    expect(log.locator("li.log-reconnecting").first).to_contain_text("attempt 1 in")
    expect(log.locator("li.log-reconnected")).to_contain_text(back["message"])

    # With the box unticked, the same loss is only reported.
    console.root.get_by_label("reconnect after a server loss").uncheck()
    since = console.mark()
    second.stop()
    assert console.wait_for("close", since)[0]["code"] == 1006
    assert console.records("reconnecting", since) == []  # decided within the close handler


# One reconnect decision of the page, with Math.random() pinned: the wait it chose, or null.
DECIDE = """(c, [attempt, rand, code]) => {
  const random = Math.random;
  Math.random = () => rand;
  try {
    c.wasOpen = true;
    c.reconnect = { attempt: attempt - 1, timer: null, active: true };
    const since = c.records.length;
    c.maybeReconnect(code);
    const made = c.records.slice(since).filter((r) => r.kind === "reconnecting");
    return made.length ? { delay: made[0].delay, ceiling: made[0].ceiling } : null;
  } finally {
    Math.random = random;
    c.stopReconnecting();
  }
}"""


def test_the_storms_clients_wait_as_the_page_does(page: Page, daphne_server: ServerProcess) -> None:
    """`make storm`'s clients read the policy from console.js and compute the same waits."""
    console = Console.open(page, daphne_server.http_url + "/sync/")
    policy = console_backoff()
    assert console.run("(c) => c.backoff") == {"baseMs": policy.base_ms, "capMs": policy.cap_ms}
    for attempt in (1, 2, 3, 5, 8):
        for rand in (0.0, 0.37, 0.999):
            decided = console.run(DECIDE, [attempt, rand, 1006])
            assert decided == {
                "delay": policy.delay_ms(attempt, rand),
                "ceiling": policy.ceiling_ms(attempt),
            }, (attempt, rand)
    for code in (1000, 1001, 1006, 1011, 1012, 4401, 4429, 4503):
        reconnects = console.run(DECIDE, [1, 0.5, code]) is not None
        assert reconnects == (code in policy.abnormal), code
