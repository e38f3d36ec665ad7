"""
The lobby's history behind Redis Sentinel (apps/core/lobby.py, apps/core/redis_clients.py),
through a real primary, replica and three Sentinels (tools/servers.py start_redis_group) that
the tests fail over with SIGKILL: a chat message the lobby announced survives the failover, and
ids never go backwards, even when the replica lagged behind the primary that died.
"""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from channels.layers import get_channel_layer

from apps.core import lobby, redis_clients
from tools.servers import RunningGroup


@pytest.fixture
async def sentinel_lobby(redis_group: RunningGroup, settings) -> AsyncIterator[RunningGroup]:
    """The lobby's history in the session's Redis group, emptied, found through the Sentinels."""
    settings.REDIS_URL = ""
    settings.REDIS_SENTINELS = [(redis_group.group.host, p) for p in redis_group.group.sentinels]
    settings.REDIS_MASTER_NAME = redis_group.group.master_name
    settings.REDIS_PASSWORD = redis_group.group.password
    settings.LOBBY_REPLICAS = None  # the defaults: 1 behind Sentinel, for up to 1 s
    settings.LOBBY_REPLICA_WAIT_MS = 1000
    primary = redis_group.group.wait_for_primary()
    with redis_group.group.client(primary) as client:
        client.flushall()
    yield redis_group
    await lobby.close_history()


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process is frozen (SIGSTOP) inside the block: a replica that falls behind."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def fail_over(running: RunningGroup, while_frozen: int | None = None) -> int:
    """SIGKILL the primary (waking `while_frozen` only then); wait for the new one; return it."""
    group = running.group
    old = group.wait_for_primary()
    running.node(old).stop(signal.SIGKILL)
    if while_frozen is not None:
        os.kill(while_frozen, signal.SIGCONT)
    new = group.wait_for_primary(other_than=old)
    running.restart(old)  # what supervisord does in `make cluster`: it rejoins as a replica
    group.wait_for_replica(old)
    return new


def replica_has(running: RunningGroup, message_id: int, timeout: float = 30.0) -> None:
    """Wait until the replica's copy of the lobby's counter has reached `message_id`."""
    group = running.group
    replica = next(port for port in group.nodes if port != group.wait_for_primary())
    deadline = time.monotonic() + timeout
    with group.client(replica) as client:
        while int(client.hget(lobby.META_KEY, "last") or 0) < message_id:
            assert time.monotonic() < deadline, f"the replica never had message {message_id}"
            time.sleep(0.02)


def replica_pid(running: RunningGroup) -> int:
    primary = running.group.wait_for_primary()
    replica = next(port for port in running.group.nodes if port != primary)
    return running.node(replica).process.pid


async def test_clients_find_the_primary_through_the_sentinels(sentinel_lobby) -> None:
    assert redis_clients.configured() and redis_clients.replicated()
    client = redis_clients.connect(decode_responses=True)
    try:
        assert await client.ping()
        role = await client.execute_command("ROLE")
        assert role[0] == "master"
    finally:
        await redis_clients.disconnect(client)


async def test_a_message_no_replica_confirms_is_withdrawn_and_not_announced(
    sentinel_lobby,
) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(lobby.LOBBY_GROUP, channel)
    with stopped(replica_pid(sentinel_lobby)), pytest.raises(lobby.NotSaved) as refused:
        await lobby.publish("alice", "never confirmed")
    assert "never confirmed" not in [m["text"] for m in (await lobby.since(0)).messages]
    later, _ = await say("after it")
    assert later > refused.value.message_id
    # Nothing but the later message (if it was announced) reached the lobby's group.
    while True:
        try:
            event = await asyncio.wait_for(layer.receive(channel), 0.5)
        except TimeoutError:
            break
        assert event["text"] != "never confirmed"
    await layer.group_discard(lobby.LOBBY_GROUP, channel)


async def say(text: str) -> tuple[int, bool]:
    """Publish; the id the message got, and whether it was announced (not `chat_not_saved`)."""
    try:
        return (await lobby.publish("alice", text))["id"], True
    except lobby.NotSaved as refused:  # a replica too slow for the wait: a legitimate answer
        return refused.message_id, False


async def test_announced_messages_survive_a_failover_right_after_a_burst(sentinel_lobby) -> None:
    said = {f"m{n}": await say(f"m{n}") for n in range(30)}
    announced = {text: message_id for text, (message_id, ok) in said.items() if ok}
    assert announced, "no message of the burst was announced"
    # Killed the instant the burst was answered: whatever the replica has is all there is.
    await asyncio.to_thread(fail_over, sentinel_lobby)
    after, _ = await say("after the failover")
    found = await lobby.since(0)
    kept = {m["id"]: m["text"] for m in found.messages}
    lost = [text for text, message_id in announced.items() if kept.get(message_id) != text]
    assert not lost, f"announced, then lost in the failover: {lost}"
    assert after > max(message_id for message_id, _ in said.values())


async def test_ids_never_go_backwards_after_the_replica_lagged(sentinel_lobby) -> None:
    # A history the replica knows (its counter included) before the replica falls behind.
    before, _ = await say("the replica has this one")
    await asyncio.to_thread(replica_has, sentinel_lobby, before)
    frozen = replica_pid(sentinel_lobby)
    os.kill(frozen, signal.SIGSTOP)
    try:
        # Cut the replication link as a network would: what the primary writes from now on
        # never reaches the replica (a frozen replica alone would still find it in its socket).
        group = sentinel_lobby.group
        with group.client(group.wait_for_primary()) as primary:
            primary.client_kill_filter(_type="replica")
        # The primary numbers it (and a resuming page might read it there) but no replica has
        # it when the primary dies: its id must never be handed out again.
        with pytest.raises(lobby.NotSaved) as refused:
            await lobby.publish("alice", "lost with the primary")
        await asyncio.to_thread(fail_over, sentinel_lobby, frozen)
    finally:
        os.kill(frozen, signal.SIGCONT)
    later, _ = await say("on the new primary")
    assert later > refused.value.message_id
    found = await lobby.since(refused.value.message_id)
    assert "lost with the primary" not in [m["text"] for m in found.messages]


async def test_a_channel_layer_receive_loop_rides_through_a_failover(sentinel_lobby) -> None:
    # What a runworker and every consumer's receive loop do: wait on the layer. The killed
    # primary comes back as a replica at its old address; a reconnect must not go there.
    from channels_redis.core import RedisChannelLayer

    group = sentinel_lobby.group
    sentinels = [(group.host, port) for port in group.sentinels]
    host = redis_clients.layer_host(
        "", sentinels, group.master_name, group.password, retry=settings_retry()
    )
    layer = RedisChannelLayer(hosts=[host])
    try:
        await layer.send("jobs", {"type": "before"})
        assert (await asyncio.wait_for(layer.receive("jobs"), 10))["type"] == "before"
        waiting = asyncio.ensure_future(layer.receive("jobs"))
        await asyncio.to_thread(fail_over, sentinel_lobby)
        for n in range(3):
            await layer.send("jobs", {"type": "after", "n": n})
        received = [await asyncio.wait_for(waiting, 20)]
        received += [await asyncio.wait_for(layer.receive("jobs"), 20) for _ in range(2)]
        assert [m["n"] for m in received] == [0, 1, 2]
    finally:
        await layer.flush()


def settings_retry():
    """The retry settings.py gives clients behind Sentinel (through a failover)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=43)  # 20 s
