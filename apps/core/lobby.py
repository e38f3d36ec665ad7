"""
The lobby's chat, shared by every kind of lobby client (the socket lobby, the SSE lobby).

Every message gets an `id` from one history: in Redis with `REDIS_URL` (one stream that every
server process writes and reads), otherwise in this process's memory. Ids increase by one per
message, so a client that remembers the last id it saw can ask `since(id)` for what it missed.

`publish` stores a message first, then sends it to the group: a client that joins the group
before it reads the history gets every message either from the history or live (or both, which
the id tells apart), never from neither.

A history that starts from nothing (the first message of a deployment, a Redis that lost its
data, a restarted process without Redis) numbers its first message with the current time in
microseconds, and counts up by one from there. So ids never go backwards across such a restart
(unless one history issued more than a million messages a second of its life), and a client that
saw an earlier history's ids learns that its resume is not complete instead of silently skipping
new messages whose ids it thinks it has seen.

The history keeps the last `settings.LOBBY_HISTORY` (default HISTORY_SIZE) messages; the
guide (docs/reliability.md, "The lobby resumes") says why that many. A client that has seen
nothing yet (a fresh socket or stream) gets `recent()`: the last `settings.LOBBY_RECENT` (default
RECENT_SIZE) of them, whatever the client.

The group LOBBY_GROUP carries `lobby.chat` messages (the dict `publish` returns) and, from the
socket lobby, `presence.changed` (no other keys): a consumer in the group that does not show
presence gives that type a handler that does nothing.
"""

import asyncio
import time
import weakref
from collections import deque
from typing import Any, NamedTuple, Protocol

from channels.layers import get_channel_layer
from django.conf import settings
from redis.asyncio import Redis

from .redis_pools import close_client, get_client

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


# One script, so numbering and storing are one step: the stream always holds consecutive ids,
# whichever process wrote them. Everything stays a string: Lua's numbers are doubles, and
# Redis's Lua prints large ones in exponent notation.
# KEYS: stream, meta. ARGV: max length, first id if the history is new, id before it, user,
# text, time.
_ADD = """
if redis.call('HSETNX', KEYS[2], 'first', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[2], 'last', ARGV[3])
end
redis.call('HINCRBY', KEYS[2], 'last', 1)
local id = redis.call('HGET', KEYS[2], 'last')
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id .. '-0',
  'user', ARGV[4], 'text', ARGV[5], 'at', ARGV[6])
return id
"""


class RedisHistory:
    """The last `size` messages in a Redis stream that every server process shares."""

    def __init__(self, client: Redis, size: int) -> None:
        self.client = client
        self.size = size
        self.script = client.register_script(_ADD)

    async def add(self, user: str, text: str, at: float) -> Message:
        """Store a message, numbering it; return it."""
        seed = _seed()
        args = [self.size, seed, seed - 1, user, text, repr(at)]
        message_id = int(await self.script(keys=[STREAM_KEY, META_KEY], args=args))
        return _chat(message_id, user, text, at)

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
# (the Redis one uses the loop's shared, bounded client: apps/core/redis_pools.py). A server
# process has one loop (so one memory history per process); a test suite has one loop per
# test, so every test starts with an empty memory history.
_histories: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, History] = (
    weakref.WeakKeyDictionary()
)


def get_history() -> History:
    """The history for the running event loop: Redis if REDIS_URL is set, else memory."""
    loop = asyncio.get_running_loop()
    history = _histories.get(loop)
    if history is None:
        size = getattr(settings, "LOBBY_HISTORY", HISTORY_SIZE)
        history = RedisHistory(get_client(), size) if settings.REDIS_URL else MemoryHistory(size)
        _histories[loop] = history
    return history


async def close_history() -> None:
    """Forget the running loop's history, closing its Redis connections (tests call this)."""
    if isinstance(_histories.pop(asyncio.get_running_loop(), None), RedisHistory):
        await close_client()


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
