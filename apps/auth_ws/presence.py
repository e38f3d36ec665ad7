"""
Who is online in the lobby: one entry per open socket, kept alive by the socket's heartbeat.

An entry is (socket's channel name, username, time of its last heartbeat). A user is online
while at least one of their entries is fresh, so several tabs count once, and an entry whose
heartbeats stop (its server process died without a goodbye) expires after
`settings.PRESENCE_TTL` seconds instead of keeping its user online forever.

With Redis the entries live in one Redis sorted set shared by every server process
(member "channel|username", score the heartbeat's time), with a hash beside it counting each
user's entries; without it, in this process's memory.
Every change returns whether the set of online users changed, so the caller tells the lobby
only then. Heartbeat times come from each host's clock: hosts must agree to well under the TTL.
"""

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import Protocol

from django.conf import settings
from redis.asyncio import Redis

from apps.core import redis_clients
from apps.core.coalesce import Coalesced

REDIS_KEY = "auth_ws:presence"


def _usernames(members: Iterable[str]) -> list[str]:
    """Distinct usernames of "channel|username" members, sorted."""
    return sorted({member.split("|", 1)[1] for member in members})


class Presence(Protocol):
    """What the lobby consumer needs from a presence store."""

    async def join(self, channel: str, username: str) -> bool:
        """Add (or refresh) this socket's entry; True if the online users changed."""

    async def leave(self, channel: str, username: str) -> bool:
        """Remove this socket's entry; True if the online users changed."""

    async def online(self) -> list[str]:
        """The usernames with at least one fresh entry, sorted."""


class MemoryPresence:
    """Entries in this process's memory: enough when one process serves every socket."""

    def __init__(self) -> None:
        self.entries: dict[str, float] = {}  # "channel|username" -> last heartbeat

    def _change(self, add: str | None = None, remove: str | None = None) -> bool:
        before = _usernames(self.entries)
        now = time.time()
        for member, stamp in list(self.entries.items()):
            if stamp < now - settings.PRESENCE_TTL:
                del self.entries[member]
        if add:
            self.entries[add] = now
        if remove:
            self.entries.pop(remove, None)
        return _usernames(self.entries) != before

    async def join(self, channel: str, username: str) -> bool:
        """Add (or refresh) this socket's entry; True if the online users changed."""
        return self._change(add=f"{channel}|{username}")

    async def leave(self, channel: str, username: str) -> bool:
        """Remove this socket's entry; True if the online users changed."""
        return self._change(remove=f"{channel}|{username}")

    async def online(self) -> list[str]:
        """The usernames with at least one fresh entry, sorted."""
        oldest = time.time() - settings.PRESENCE_TTL
        return _usernames(m for m, stamp in self.entries.items() if stamp >= oldest)


# One script, so a change and its verdict are one step whatever other processes do: of two tabs
# opening at once, exactly one sees its user come online. It counts each user's entries in a
# hash beside the sorted set, so it touches only the users this change concerns (the socket's,
# and those of expired entries) and answers 1 or 0: a thousand sockets joining together cost
# Redis a thousand small steps, where comparing the whole list before and after each one (what
# this did before) sent the list to Python twice per join, and grew with the square of the herd.
# KEYS: entries (sorted set), counts (hash). ARGV: now, oldest fresh score, member to add or "",
# member to remove or "", seconds until both keys expire.
_CHANGE = """
local entries, counts = KEYS[1], KEYS[2]
local function user(member) return string.match(member, '^[^|]*|(.*)$') or member end
local affected, expired = {}, redis.call('ZRANGEBYSCORE', entries, '-inf', '(' .. ARGV[2])
for _, member in ipairs(expired) do affected[user(member)] = true end
if ARGV[3] ~= '' then affected[user(ARGV[3])] = true end
if ARGV[4] ~= '' then affected[user(ARGV[4])] = true end
local before = {}
local function count(name) return tonumber(redis.call('HGET', counts, name) or 0) end
for name in pairs(affected) do before[name] = count(name) > 0 end
for _, member in ipairs(expired) do
  if redis.call('ZREM', entries, member) == 1 then
    redis.call('HINCRBY', counts, user(member), -1)
  end
end
if ARGV[3] ~= '' and redis.call('ZADD', entries, ARGV[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', counts, user(ARGV[3]), 1)
end
if ARGV[4] ~= '' and redis.call('ZREM', entries, ARGV[4]) == 1 then
  redis.call('HINCRBY', counts, user(ARGV[4]), -1)
end
local changed = 0
for name in pairs(affected) do
  local left = count(name)
  if left <= 0 then redis.call('HDEL', counts, name) end
  if (left > 0) ~= before[name] then changed = 1 end
end
redis.call('EXPIRE', entries, ARGV[5])
redis.call('EXPIRE', counts, ARGV[5])
return changed
"""


class RedisPresence:
    """Entries in a Redis sorted set that every server process reads and writes."""

    def __init__(self, client: Redis, key: str = REDIS_KEY) -> None:
        self.client = client
        self.key = key
        self.script = client.register_script(_CHANGE)
        # Every socket of this process that hears "presence changed" at once shares one read.
        self.read_online = Coalesced(self._online)

    async def _change(self, add: str = "", remove: str = "") -> bool:
        now = time.time()
        ttl = settings.PRESENCE_TTL
        # Should every process stop, the keys go too.
        args = [repr(now), repr(now - ttl), add, remove, max(1, round(ttl * 2))]
        return bool(await self.script(keys=[self.key, f"{self.key}:counts"], args=args))

    async def join(self, channel: str, username: str) -> bool:
        """Add (or refresh) this socket's entry; True if the online users changed."""
        return await self._change(add=f"{channel}|{username}")

    async def leave(self, channel: str, username: str) -> bool:
        """Remove this socket's entry; True if the online users changed."""
        return await self._change(remove=f"{channel}|{username}")

    async def online(self) -> list[str]:
        """The usernames with at least one fresh entry, sorted (a read begun after the call)."""
        return await self.read_online()

    async def _online(self) -> list[str]:
        oldest = time.time() - settings.PRESENCE_TTL
        return _usernames(await self.client.zrangebyscore(self.key, oldest, "+inf"))


# One store per event loop: a Redis client's connections belong to the loop that opened them
# (the Redis store uses the loop's shared, bounded client: apps/core/redis_clients.py). A server
# process has one loop; a test suite has one per test.
_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Presence] = (
    weakref.WeakKeyDictionary()
)


def get_presence() -> Presence:
    """The presence store for the running event loop: Redis if it is configured, else memory."""
    loop = asyncio.get_running_loop()
    store = _stores.get(loop)
    if store is None:
        if redis_clients.configured():
            store = RedisPresence(redis_clients.shared())
        else:
            store = MemoryPresence()
        _stores[loop] = store
    return store


async def close_presence() -> None:
    """Forget the running loop's store, closing its Redis connections (tests call this)."""
    if isinstance(_stores.pop(asyncio.get_running_loop(), None), RedisPresence):
        await redis_clients.close_shared()
