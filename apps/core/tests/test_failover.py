"""
The lobby's history behind Redis Sentinel (apps/core/lobby.py, apps/core/redis_clients.py),
through a real primary, replica and three Sentinels (tools/servers.py start_redis_group) that
the tests fail over with SIGKILL: a chat message the lobby announced survives the failover, and
ids never go backwards, even when the replica lagged behind the primary that died.
"""

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from apps.core import lobby, redis_clients
from tools.servers import RunningGroup

WAIT_MS = 300


@pytest.fixture
async def sentinel_lobby(redis_group: RunningGroup, settings) -> AsyncIterator[RunningGroup]:
    """The lobby's history in the session's Redis group, emptied, found through the Sentinels."""
    settings.REDIS_URL = ""
    settings.REDIS_SENTINELS = [(redis_group.group.host, p) for p in redis_group.group.sentinels]
    settings.REDIS_MASTER_NAME = redis_group.group.master_name
    settings.REDIS_PASSWORD = redis_group.group.password
    settings.LOBBY_REPLICAS = None  # the default: 1 behind Sentinel
    settings.LOBBY_REPLICA_WAIT_MS = WAIT_MS
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
    before = (await lobby.publish("alice", "confirmed"))["id"]
    with stopped(replica_pid(sentinel_lobby)), pytest.raises(lobby.NotSaved):
        await lobby.publish("alice", "never confirmed")
    found = await lobby.since(0)
    assert [m["text"] for m in found.messages] == ["confirmed"]
    after = (await lobby.publish("alice", "confirmed again"))["id"]
    assert after > before


async def test_announced_messages_survive_a_failover_right_after_a_burst(sentinel_lobby) -> None:
    said = [await lobby.publish("alice", f"m{n}") for n in range(30)]
    # Killed the instant the burst was acknowledged: whatever the replica has is all there is.
    await asyncio.to_thread(fail_over, sentinel_lobby)
    after = await lobby.publish("bob", "after the failover")
    found = await lobby.since(0)
    kept = {m["id"]: m["text"] for m in found.messages}
    assert all(kept.get(m["id"]) == m["text"] for m in said), "an announced message was lost"
    assert after["id"] > said[-1]["id"]
    assert found.complete


async def test_ids_never_go_backwards_after_the_replica_lagged(sentinel_lobby) -> None:
    last_announced = (await lobby.publish("alice", "announced"))["id"]
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
        with pytest.raises(lobby.NotSaved):
            await lobby.publish("alice", "lost with the primary")
        await asyncio.to_thread(fail_over, sentinel_lobby, frozen)
    finally:
        os.kill(frozen, signal.SIGCONT)
    later = await lobby.publish("bob", "on the new primary")
    assert later["id"] > last_announced + 1
    assert [m["text"] for m in (await lobby.since(last_announced)).messages] == [
        "on the new primary"
    ]


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

    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=23)
