"""
The lobby's chat, shared by every kind of lobby client (the socket lobby, the SSE lobby).

Every message gets an `id` from one history: in Redis when it is configured (one stream that
every server process writes and reads; apps/core/redis_clients.py), otherwise in this process's
memory. Ids increase by one per message, so a client that remembers the last id it saw can ask
`since(id)` for what it missed.

`publish` stores a message first, then sends it to the group: a client that joins the group
before it reads the history gets every message either from the history or live (or both, which
the id tells apart), never from neither. Behind Sentinel, "stored" means a replica has it too
(RedisHistory): a failover cannot lose a message the lobby announced.

A history that starts from nothing (the first message of a deployment, a Redis that lost its
data, a restarted process without Redis) numbers its first message with the current time in
microseconds, and counts up by one from there; a Redis history that changed servers (a failover)
jumps forward to the time the same way. So ids never go backwards across such a restart or
failover (unless one history issued more than a million messages a second of its life), and a
client that saw an earlier history's ids learns that its resume is not complete instead of
silently skipping new messages whose ids it thinks it has seen.

The history keeps the last `settings.LOBBY_HISTORY` (default HISTORY_SIZE) messages; the
guide (docs/reliability.md, "The lobby resumes") says why that many. A client that has seen
nothing yet (a fresh socket or stream) gets `recent()`: the last `settings.LOBBY_RECENT` (default
RECENT_SIZE) of them, whatever the client.

The group LOBBY_GROUP carries `lobby.chat` messages (the dict `publish` returns) and, from the
socket lobby, `presence.changed` (no other keys): a consumer in the group that does not show
presence gives that type a handler that does nothing.
"""

import asyncio
import logging
import secrets
import time
import weakref
from collections import deque
from typing import Any, NamedTuple, Protocol

from channels.layers import get_channel_layer
from django.conf import settings
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import redis_clients

logger = logging.getLogger(__name__)

LOBBY_GROUP = "lobby"
HISTORY_SIZE = 1000  # messages kept, unless settings.LOBBY_HISTORY says otherwise
RECENT_SIZE = 50  # messages a fresh client gets, unless settings.LOBBY_RECENT says otherwise
STREAM_KEY = "lobby:history"
META_KEY = "lobby:meta"  # hash: "first" (the history's first id), "last" (its latest id)
# Ids stay exact in JavaScript (Number) below 2**53: microseconds until the year 2255.
MAX_ID = 2**53 - 1

Message = dict[str, Any]


class Resume(NamedTuple):
    """What `since` found: the messages after the client's last id, and whether that is all."""

    messages: list[Message]  # oldest first, every one with an id above the client's
    complete: bool  # False when messages the client never saw are no longer in the history
    oldest: int | None  # the oldest id the history still holds (None: it holds none)


def _chat(message_id: int, user: str, text: str, at: float) -> Message:
    return {"type": "lobby.chat", "id": message_id, "user": user, "text": text, "at": at}


def _seed() -> int:
    """The first id of a history that starts now."""
    return time.time_ns() // 1000


def _resume(
    after: int, found: list[Message], first: int | None, oldest: int | None, last: int | None
) -> Resume:
    """
    Judge a resume: the client saw every id up to `after` (0: none), `found` holds the kept
    messages above it, and the history's ids run from `first` (its very first) to `last`, of
    which it still keeps `oldest` to `last`.

    Complete when nothing the client missed is gone: the kept messages reach back to after + 1.
    A client whose ids come from an earlier history (below `first`) or from nowhere (above
    `last`) may have missed messages that no history holds any more: not complete.
    """
    if first is None or last is None or oldest is None:  # nothing said since the history began
        return Resume([], after == 0, None)
    if after == 0:
        complete = oldest == first
    elif first <= after <= last:
        complete = after + 1 >= oldest
    else:
        complete = False
    return Resume(found, complete, oldest)


def _recent(found: list[Message], first: int | None, oldest: int | None) -> Resume:
    """
    Judge what a fresh client gets: `found`, the newest kept messages (oldest first), is
    complete when nothing was said before them since the history began (its `first` id).
    """
    if not found:
        return Resume([], first is None, oldest)
    return Resume(found, found[0]["id"] == first, oldest)


class History(Protocol):
    """Where lobby messages are numbered and kept."""

    async def add(self, user: str, text: str, at: float) -> Message:
        """Store a message, numbering it; return it."""

    async def since(self, after: int) -> Resume:
        """The stored messages with an id above `after`, oldest first."""

    async def recent(self, count: int) -> Resume:
        """The newest `count` stored messages, oldest first."""


class MemoryHistory:
    """The last `size` messages in this process's memory: one process, `make run`."""

    def __init__(self, size: int) -> None:
        self.messages: deque[Message] = deque(maxlen=size)
        self.first: int | None = None
        self.last = 0

    async def add(self, user: str, text: str, at: float) -> Message:
        """Store a message, numbering it; return it."""
        if self.first is None:
            self.first = self.last = _seed()
        else:
            self.last += 1
        message = _chat(self.last, user, text, at)
        self.messages.append(message)
        return dict(message)

    async def since(self, after: int) -> Resume:
        """The stored messages with an id above `after`, oldest first."""
        found = [dict(m) for m in self.messages if m["id"] > after]
        oldest = self.messages[0]["id"] if self.messages else None
        return _resume(after, found, self.first, oldest, self.last if self.first else None)

    async def recent(self, count: int) -> Resume:
        """The newest `count` stored messages, oldest first."""
        found = [dict(m) for m in list(self.messages)[-count:]] if count > 0 else []
        oldest = self.messages[0]["id"] if self.messages else None
        return _recent(found, self.first, oldest)


# One script, so numbering and storing are one step: the stream always holds increasing ids,
# whichever process wrote them. Everything stays a string: Lua's numbers are doubles, and
# Redis's Lua prints large ones in exponent notation.
#
# Two things make it safe to run again and across a failover:
# - a token per message (KEYS[3]): a client that lost its connection mid-call and retries (as
#   redis-py does) gets the id of the first attempt back, not a second copy of the message;
# - the server's run id: a history written by another Redis server than last time (a replica
#   promoted after a failover, or a restart that kept the data) may lack the last ids the
#   previous server handed out, if they had not reached the replica. Such a history continues
#   from the time in microseconds on the server's clock (above any id handed out before, as
#   long as the servers' clocks differ by less than a failover takes), never from its own last
#   id, so no id is ever handed out twice.
# KEYS: stream, meta, token. ARGV: max length, user, text, time, token's life in seconds.
_ADD = """
local known = redis.call('GET', KEYS[3])
if known then
  return known
end
local clock = redis.call('TIME')
local now = clock[1] .. string.format('%06d', tonumber(clock[2]))
local server = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if redis.call('HSETNX', KEYS[2], 'first', now) == 1 then
  redis.call('HSET', KEYS[2], 'last', string.format('%.0f', tonumber(now) - 1))
elseif redis.call('HGET', KEYS[2], 'server') ~= server then
  if tonumber(now) > tonumber(redis.call('HGET', KEYS[2], 'last')) then
    redis.call('HSET', KEYS[2], 'last', string.format('%.0f', tonumber(now) - 1))
  end
end
redis.call('HSET', KEYS[2], 'server', server)
redis.call('HINCRBY', KEYS[2], 'last', 1)
local id = redis.call('HGET', KEYS[2], 'last')
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id .. '-0',
  'user', ARGV[2], 'text', ARGV[3], 'at', ARGV[4])
redis.call('SET', KEYS[3], id, 'EX', ARGV[5])
return id
"""
SENT_PREFIX = "lobby:sent:"  # + a token per message: the id it got
# A retry comes within seconds; the record of a sent message outlives it by far.
SENT_SECONDS = 300


class NotSaved(Exception):
    """
    A chat message could not be confirmed on a replica in time, and was withdrawn: it was not
    sent to the lobby, and the sender is told so (error `chat_not_saved`). `message_id` is the
    id it had been given (never given again).
    """

    code = "chat_not_saved"

    def __init__(self, message: str, message_id: int) -> None:
        super().__init__(message)
        self.message_id = message_id


class RedisHistory:
    """
    The last `size` messages in a Redis stream that every server process shares.

    With `replicas` above 0 (Redis behind Sentinel), a message counts as stored only once that
    many replicas have it (Redis's WAIT, up to `wait_ms`): a failover then cannot lose a message
    whose id the lobby announced. One that no replica confirmed in time is withdrawn and
    `add` raises NotSaved.
    """

    def __init__(self, client: Redis, size: int, replicas: int = 0, wait_ms: int = 1000) -> None:
        self.client = client
        self.size = size
        self.replicas = replicas
        self.wait_ms = wait_ms

    async def add(self, user: str, text: str, at: float) -> Message:
        """Store a message, numbering it; return it."""
        token = SENT_PREFIX + secrets.token_hex(16)
        keys = [STREAM_KEY, META_KEY, token]
        args = [self.size, user, text, repr(at), SENT_SECONDS]
        # The script's text each time, not its hash: a retry may land on a server that has
        # never seen it (a promoted replica), and the text is small.
        if not self.replicas:
            message_id = int(await self.client.eval(_ADD, len(keys), *keys, *args))
            return _chat(message_id, user, text, at)
        # WAIT counts the replicas that have every write of this connection so far: the
        # script and WAIT must share one connection, so they go in one pipeline. A retried
        # pipeline (a failover under it) runs the script again: the token keeps it one message.
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.eval(_ADD, len(keys), *keys, *args)
            pipe.wait(self.replicas, self.wait_ms)
            found, confirmed = await pipe.execute()
        message_id = int(found)
        if confirmed < self.replicas:
            await self.withdraw(message_id)
            raise NotSaved(
                f"no replica confirmed the message within {self.wait_ms} ms; it was not sent",
                message_id,
            )
        return _chat(message_id, user, text, at)

    async def withdraw(self, message_id: int) -> None:
        """Remove a message that was stored but never announced (best effort)."""
        try:
            await self.client.xdel(STREAM_KEY, f"{message_id}-0")
        except RedisError as error:
            # Gone with its server, or still there: either way it was never announced.
            logger.warning("lobby message %s not withdrawn: %r", message_id, error)

    async def since(self, after: int) -> Resume:
        """The stored messages with an id above `after`, oldest first."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(META_KEY, "first", "last")
            pipe.xrange(STREAM_KEY, min=f"{after + 1}-0", max="+")
            pipe.xrange(STREAM_KEY, min="-", max="+", count=1)
            (first, last), entries, head = await pipe.execute()
        found = [self._message(entry_id, fields) for entry_id, fields in entries]
        oldest = int(head[0][0].split("-")[0]) if head else None
        first_id = int(first) if first is not None else None
        last_id = int(last) if last is not None else None
        return _resume(after, found, first_id, oldest, last_id)

    async def recent(self, count: int) -> Resume:
        """The newest `count` stored messages, oldest first."""
        if count <= 0:
            return _recent([], None, None)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(META_KEY, "first")
            pipe.xrevrange(STREAM_KEY, max="+", min="-", count=count)
            pipe.xrange(STREAM_KEY, min="-", max="+", count=1)
            first, entries, head = await pipe.execute()
        found = [self._message(entry_id, fields) for entry_id, fields in reversed(entries)]
        oldest = int(head[0][0].split("-")[0]) if head else None
        return _recent(found, int(first) if first is not None else None, oldest)

    @staticmethod
    def _message(entry_id: str, fields: dict[str, str]) -> Message:
        return _chat(
            int(entry_id.split("-")[0]), fields["user"], fields["text"], float(fields["at"])
        )


# One history per event loop: a Redis client's connections belong to the loop that opened them
# (the Redis one uses the loop's shared, bounded client: apps/core/redis_clients.py). A server
# process has one loop (so one memory history per process); a test suite has one loop per
# test, so every test starts with an empty memory history.
_histories: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, History] = (
    weakref.WeakKeyDictionary()
)


def replicas_to_wait_for() -> int:
    """LOBBY_REPLICAS, or by default 1 behind Sentinel (a replica exists) and 0 otherwise."""
    replicas = getattr(settings, "LOBBY_REPLICAS", None)
    if replicas is None:
        return 1 if redis_clients.replicated() else 0
    return replicas


def get_history() -> History:
    """The history for the running event loop: Redis if it is configured, else memory."""
    loop = asyncio.get_running_loop()
    history = _histories.get(loop)
    if history is None:
        size = getattr(settings, "LOBBY_HISTORY", HISTORY_SIZE)
        if redis_clients.configured():
            history = RedisHistory(
                redis_clients.shared(),
                size,
                replicas=replicas_to_wait_for(),
                wait_ms=getattr(settings, "LOBBY_REPLICA_WAIT_MS", 1000),
            )
        else:
            history = MemoryHistory(size)
        _histories[loop] = history
    return history


async def close_history() -> None:
    """Forget the running loop's history, closing its Redis connections (tests call this)."""
    if isinstance(_histories.pop(asyncio.get_running_loop(), None), RedisHistory):
        await redis_clients.close_shared()


async def publish(user: str, text: str) -> Message:
    """Store a chat message (giving it the next id), send it to the lobby group, return it."""
    message = await get_history().add(user, text, time.time())
    await get_channel_layer().group_send(LOBBY_GROUP, dict(message))
    return message


async def since(last_id: int) -> Resume:
    """The messages after `last_id` (0: from the oldest kept), and whether that is all of them."""
    if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 <= last_id <= MAX_ID:
        raise ValueError(f"last_id must be an integer from 0 to {MAX_ID}, not {last_id!r}")
    return await get_history().since(last_id)


async def recent() -> Resume:
    """What a client that has seen nothing yet gets: the newest `settings.LOBBY_RECENT`."""
    return await get_history().recent(getattr(settings, "LOBBY_RECENT", RECENT_SIZE))
