"""
The showcase on three hosts that share nothing (`make cluster HOSTS=3`), seen from the browser:
the walk across hosts, every daphne of host b killed outright while browsers are connected, and
a Redis failover during chat. The cluster (e2e/hosts/conftest.py) is the session's; each test
asks it for the current pids, and its users are new accounts (the cluster has its own database).
"""

import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import BrowserContext, Page, expect

from e2e.cluster.helpers import hello, info, lobby_on, sign_up_over_http
from e2e.console import Console
from tools.servers import Cluster

# The page's own backoff (0.5 s doubling to 10 s), scaled down: the policy is tested elsewhere.
FAST_BACKOFF = "(c) => { c.backoff = { baseMs: 100, capMs: 400 }; }"
PAGES = ("/", "/sync/", "/async/", "/auth/", "/http/", "/worker/", "/accounts/signup/")


def new_user(new_context: Callable[..., BrowserContext], name: str) -> BrowserContext:
    """A browser context logged in as a new account (`name` plus a random suffix)."""
    context = new_context()
    sign_up_over_http(context, f"{name}-{secrets.token_hex(3)}")
    return context


def lobby_on_host(cluster: Cluster, context: BrowserContext, host: str) -> Console:
    """A lobby page whose socket a daphne process of `host` serves."""
    page = context.new_page()
    console = lobby_on(page, cluster.pid(cluster.daphnes_on(host)[0]))
    console.run(FAST_BACKOFF)
    return console


def chat_ids(console: Console, since: int = 0) -> list[tuple[int, str]]:
    """The (id, text) of every chat envelope the page received, in arrival order."""
    found = []
    for record in console.records("message", since):
        envelope = json.loads(record["text"])
        if envelope.get("type") == "chat":
            found.append((envelope["id"], envelope["text"]))
    return found


def shown(page: Page) -> list[str]:
    """The chat messages the page shows, top to bottom (in id order), by text."""
    texts = page.locator("[data-chat-log] li[data-id] span").all_inner_texts()
    return [text.strip() for text in texts]


def test_the_walk_across_hosts(
    new_context: Callable[..., BrowserContext], hosts_cluster: Cluster
) -> None:
    page = new_context().new_page()
    for path in PAGES:
        assert page.goto(path).status == 200, path
    # Echo and info on both hosts: nginx alternates between them.
    console = Console.open(page, "/async/")
    seen = {}
    for _ in range(6):
        console.connect("/ws/ac/json/")
        since = console.mark()
        console.send_json({"type": "echo", "data": "across hosts"})
        echoed = console.wait_for("message", since, where="JSON.parse(r.text).type === 'echo'")
        assert json.loads(echoed[0]["text"])["data"] == "across hosts"
        where = info(console)
        seen[where["host"]] = where
        since = console.mark()
        console.close()
        console.wait_for("close", since)
        if len(seen) == 2:
            break
    assert set(seen) == {"a", "b"}
    assert {where["database"] for where in seen.values()} == {"postgresql"}
    pids = {host: {hosts_cluster.pid(n) for n in hosts_cluster.daphnes_on(host)} for host in "ab"}
    assert all(seen[host]["process"] in pids[host] for host in "ab")

    # The lobby between a user on host a and a user on host b, both ways.
    alice = lobby_on_host(hosts_cluster, new_user(new_context, "alice"), "a")
    bob = lobby_on_host(hosts_cluster, new_user(new_context, "bob"), "b")
    expect(bob.page.locator("[data-online] li")).to_have_count(2)
    since = bob.mark()
    alice.send_json({"type": "chat", "text": "from host a"})
    bob.wait_for("message", since, where="JSON.parse(r.text).text === 'from host a'")
    since = alice.mark()
    bob.send_json({"type": "chat", "text": "from host b"})
    alice.wait_for("message", since, where="JSON.parse(r.text).text === 'from host b'")


def test_kill_9_every_daphne_on_host_b_while_browsers_are_connected(
    new_context: Callable[..., BrowserContext], hosts_cluster: Cluster
) -> None:
    alice = lobby_on_host(hosts_cluster, new_user(new_context, "alice"), "b")
    bob = lobby_on_host(hosts_cluster, new_user(new_context, "bob"), "a")
    # The lobby's history is the session's: this test's messages are told apart by a tag.
    tag = secrets.token_hex(3)
    texts = [f"{tag} before", f"{tag} while away 1", f"{tag} while away 2", f"{tag} after"]
    bob.send_json({"type": "chat", "text": texts[0]})
    expect(alice.page.locator("[data-chat-log] li[data-id]", has_text=texts[0])).to_have_count(1)

    since = alice.mark()
    on_b = hosts_cluster.daphnes_on("b")
    killed = {name: hosts_cluster.kill(name) for name in on_b}
    alice.wait_for("close", since)
    # While alice is away (reconnecting), bob goes on talking.
    for text in texts[1:3]:
        bob.send_json({"type": "chat", "text": text})
    # She comes back through nginx to host a (b's processes take seconds to start again, her
    # page retries within 400 ms) and resumes from the last id she saw.
    again = hello(alice, since)
    a_pids = {hosts_cluster.pid(n) for n in hosts_cluster.daphnes_on("a")}
    assert again["process"] in a_pids
    bob.send_json({"type": "chat", "text": texts[3]})
    expect(alice.page.locator("[data-chat-log] li[data-id]", has_text=tag)).to_have_count(4)
    assert [text for text in shown(alice.page) if text.startswith(tag)] == texts
    for name, pid in killed.items():  # supervisord restarts them on b
        hosts_cluster.wait_serving(name, other_than=pid)


def test_a_redis_failover_during_chat_loses_nothing_acknowledged(
    new_context: Callable[..., BrowserContext], hosts_cluster: Cluster
) -> None:
    alice = lobby_on_host(hosts_cluster, new_user(new_context, "alice"), "a")
    bob = lobby_on_host(hosts_cluster, new_user(new_context, "bob"), "b")
    expect(bob.page.locator("[data-online] li")).to_have_count(2)
    since = alice.mark()
    sent = []
    with ThreadPoolExecutor(1) as pool:
        failing_over = pool.submit(hosts_cluster.fail_over)
        started = time.monotonic()
        while not failing_over.done() or time.monotonic() - started < 2:
            text = f"chat {len(sent)}"
            alice.send_json({"type": "chat", "text": text})
            sent.append(text)
            alice.page.wait_for_timeout(250)  # the lobby's rate limit is 5 messages a second
        failover = failing_over.result()
    alice.send_json({"type": "chat", "text": "the end"})
    alice.wait_for("message", since, where="JSON.parse(r.text).text === 'the end'", timeout=30_000)
    # Acknowledged: the sender's own `chat` envelope (with its id) came back to her.
    acknowledged = {text: message_id for message_id, text in chat_ids(alice, since)}
    refused = [
        json.loads(r["text"])
        for r in alice.records("message", since)
        if json.loads(r["text"]).get("type") == "error"
    ]
    assert {e["code"] for e in refused} <= {"chat_not_saved"}
    # Every acknowledged message reaches bob's page too, once, in id order.
    expect(bob.page.locator("[data-chat-log] li[data-id]", has_text="the end")).to_have_count(1)
    on_bob = shown(bob.page)
    lost = [text for text in acknowledged if text not in on_bob]
    assert not lost, f"acknowledged, then lost in the failover: {lost}"
    assert len(on_bob) == len(set(on_bob))
    ids = [acknowledged[text] for text in on_bob if text in acknowledged]
    assert ids == sorted(ids)
    # Each socket stayed up, or closed 4503 and came back.
    for console in (alice, bob):
        assert {c["code"] for c in console.records("close", since)} <= {4503}
    assert failover["promoted"] <= failover["rejoined"]
    print(
        f"failover: promoted after {failover['promoted']:.2f} s, old primary a replica again "
        f"after {failover['rejoined']:.2f} s; {len(acknowledged)} of {len(sent) + 1} messages "
        f"acknowledged, {len(refused)} refused (chat_not_saved), 0 lost"
    )
