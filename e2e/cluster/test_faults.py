"""
Faults in the cluster, seen from the browser: a daphne process killed outright (kill -9), and
a rolling restart of every daphne. supervisord brings processes back; nginx sends reconnecting
consoles to a process that is up; sockets elsewhere never notice. The processes get new pids
here: every test in this folder asks the cluster for the current ones.
"""

import time
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from apps.core.tests.databases import on, postgres_alias
from e2e.cluster.conftest import PRESENCE_TTL
from e2e.cluster.helpers import connect_on, hello, info, lobby_on, log_in_over_http
from e2e.console import Console
from tools.servers import Cluster

# The cluster runs on PostgreSQL (conftest.py): users and sessions live there.
pytestmark = on(postgres_alias(), transaction=True)

# The page's own backoff (0.5 s doubling to 10 s), scaled down: the policy is tested elsewhere
# (e2e/test_reconnect.py); here only that the console comes back through nginx.
FAST_BACKOFF = "(c) => { c.backoff = { baseMs: 100, capMs: 400 }; }"


def echo_console(new_context: Callable[..., BrowserContext], pid: int) -> Console:
    """A console on /async/ whose JSON socket is served by daphne process `pid`."""
    console = Console.open(new_context().new_page(), "/async/")
    console.run(FAST_BACKOFF)
    connect_on(console, "/ws/ac/json/", pid)
    return console


def online(console: Console) -> list[str]:
    return console.page.locator("[data-online] li").evaluate_all(
        "(items) => items.map(i => i.dataset.user)"
    )


def test_kill_9_one_daphne_while_browsers_are_connected(
    new_context: Callable[..., BrowserContext],
    cluster: Cluster,
    users: None,
) -> None:
    victim, survivor = cluster.daphnes
    doomed, spared = cluster.pid(victim), cluster.pid(survivor)
    on_victim = echo_console(new_context, doomed)
    on_survivor = echo_console(new_context, spared)
    bob_context = new_context()
    log_in_over_http(bob_context, "bob")
    bob_page = bob_context.new_page()
    bob = lobby_on(bob_page, spared)
    # alice's only tab, on the doomed process, will not reconnect: she must drop out of the
    # lobby by presence expiry alone, as a user whose browser went away with the process.
    alice_context = new_context()
    log_in_over_http(alice_context, "alice")
    alice_page = alice_context.new_page()
    alice = lobby_on(alice_page, doomed)
    alice_page.get_by_label("reconnect after a server loss").uncheck()
    expect(bob_page.locator("[data-online] li")).to_have_count(2)

    marks = {c: c.mark() for c in (on_victim, on_survivor, bob, alice)}
    killed_at = time.time()  # the pages' clock too (Date.now())
    cluster.kill(victim)

    lost = on_victim.wait_for("close", marks[on_victim])[0]
    assert (lost["code"], lost["wasClean"]) == (1006, False)
    assert alice.wait_for("close", marks[alice])[0]["code"] == 1006
    # The console reconnects by itself, through nginx, to a live process.
    on_victim.wait_for("reconnected", marks[on_victim], timeout=15_000)
    assert info(on_victim)["process"] != doomed
    # supervisord starts a new process in the victim's place.
    reborn = cluster.wait_serving(victim, other_than=doomed)
    assert reborn != doomed

    # alice's presence entry expires: bob's list is right again within the TTL, plus one
    # heartbeat interval (when expired entries are pruned) and 2 s of slack for a loaded
    # machine. Without expiry she would stay online for good.
    expect(bob_page.locator("[data-online] li")).to_have_count(1, timeout=15_000)
    assert online(bob) == ["bob"]
    alone = bob.wait_for(
        "message", marks[bob], where="JSON.stringify(JSON.parse(r.text).users) === '[\"bob\"]'"
    )[0]
    assert alone["at"] / 1000 - killed_at <= PRESENCE_TTL * 4 / 3 + 2.0

    # The other process's sockets never noticed.
    for console in (on_survivor, bob):
        assert console.records("close", marks[console]) == []
    assert info(on_survivor)["process"] == spared
    assert on_survivor.echo('{"type": "echo", "data": 1}')["text"] == '{"type": "echo", "data": 1}'


def test_rolling_restart_leaves_every_console_connected(
    new_context: Callable[..., BrowserContext],
    cluster: Cluster,
    users: None,
) -> None:
    before = [cluster.pid(name) for name in cluster.daphnes]
    consoles = [echo_console(new_context, pid) for pid in before]
    bob_context = new_context()
    log_in_over_http(bob_context, "bob")
    bob_page = bob_context.new_page()
    bob = lobby_on(bob_page, before[0])
    bob.run(FAST_BACKOFF)
    marks = {c: c.mark() for c in (*consoles, bob)}

    after = set(cluster.rolling_restart().values())  # the documented `make cluster-restart`
    assert after.isdisjoint(before)

    for console in consoles:
        # Each lost its socket at least once and is connected again, to a new process.
        console.wait_for("reconnected", marks[console], timeout=15_000)
        expect(console.root.locator("[data-ready-state]")).to_have_text("1 OPEN")
        assert info(console)["process"] in after
    back = bob.records("reconnected", marks[bob])
    assert back, "the lobby's socket was on a restarted process: it must have reconnected"
    assert hello(bob, marks[bob])["process"] in after
    expect(bob_page.locator("[data-lobby-status]")).to_contain_text("connected as bob")
    expect(bob_page.locator("[data-online] li")).to_have_count(1)
