"""
Limits per user and per client address, across sockets, streams, HTTP and server processes.

`limits.py` holds what one connection may do; a user with twenty tabs, or one address with
hundreds of sockets, gets around those. The limits here count per *who*: the logged-in user,
or the client's address for anonymous visitors (`scope["client"]`: behind nginx, daphne's
--proxy-headers make it the browser's address, never one the client claims).

- `allow(kind, who)`: a token bucket per `who` (`messages_per_second`, in bursts of up to
  `burst`), for the lobby's messages whatever path they take (a socket's chat, the HTTP POST)
  and for sign-ups.
- `acquire(kind, who, holder)` / `release(...)`: at most `limit` things held at once per
  `who`, each hold expiring after `hold_seconds` so a process that dies holding one leaks
  nothing for long; unfinished jobs use it.

With Redis (REDIS_URL, or REDIS_SENTINELS: apps/core/redis_clients.py) both live in Redis (one
Lua script each, so every server process shares the count); otherwise in this process's
memory. Every limit is a `settings.WS_LIMITS` entry, and 0 turns it off (load tests lift them
with WS_LIMITS in the environment, docs/settings.md).
"""

import asyncio
import time
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import Redis

from . import redis_clients
from .limits import TokenBucket

REDIS_PREFIX = "throttle:"
# Memory buckets and holds of visitors who went quiet are forgotten past this many keys.
MAX_MEMORY_KEYS = 10_000


def setting(kind: str, name: str) -> float:
    """One number of `settings.WS_LIMITS[kind]`; 0 (no limit) when it is not set."""
    return float(settings.WS_LIMITS.get(kind, {}).get(name, 0) or 0)


def of_user(user: Any) -> str:
    """A logged-in user as a limit key."""
    return f"user:{user.pk}"


def of_address(host: str | None) -> str | None:
    """A client address as a limit key (None when the server does not know it)."""
    return f"address:{host}" if host else None


def address(scope: dict[str, Any]) -> str | None:
    """The connection's client address as a limit key (None when the server does not know it)."""
    client = scope.get("client")
    return of_address(client[0] if client else None)


def who(scope: dict[str, Any]) -> str | None:
    """Whom a limit counts for this connection: its user, else its address (None: unknown)."""
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return of_user(user)
    return address(scope)


# ---------------------------------------------------------------------------- token buckets

# KEYS: the bucket. ARGV: rate per second, burst, now (seconds). Returns 1 if a token was taken.
_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, stamp = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local taken = 0
if tokens >= 1 then tokens = tokens - 1; taken = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return taken
"""

# KEYS: the holds (a sorted set: holder -> expiry). ARGV: now, limit, expiry, holder.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) == false
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""


class MemoryStore:
    """Buckets and holds in this process's memory (no Redis: one process)."""

    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}
        self.holds: dict[str, dict[str, float]] = {}

    async def take(self, key: str, rate: float, burst: float) -> bool:
        """Take one token from the bucket `key`."""
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_MEMORY_KEYS:
                self.forget_full_buckets()
            bucket = self.buckets[key] = TokenBucket(rate, burst)
        bucket.rate, bucket.burst = rate, burst
        return bucket.take()

    def forget_full_buckets(self) -> None:
        """Drop buckets that have refilled: a new one starts full, so nothing changes."""
        now = time.monotonic()
        for key, bucket in list(self.buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * bucket.rate >= bucket.burst:
                del self.buckets[key]

    async def acquire(self, key: str, holder: str, limit: int, seconds: float) -> bool:
        """Hold one of `limit` places of `key` for `holder`."""
        now = time.time()
        holds = {h: t for h, t in self.holds.get(key, {}).items() if t > now}
        if holder not in holds and len(holds) >= limit:
            self.holds[key] = holds
            return False
        holds[holder] = now + seconds
        self.holds[key] = holds
        if len(self.holds) > MAX_MEMORY_KEYS:
            self.holds = {k: v for k, v in self.holds.items() if any(t > now for t in v.values())}
        return True

    async def release(self, key: str, holder: str) -> None:
        """Give the place back."""
        holds = self.holds.get(key)
        if holds is not None:
            holds.pop(holder, None)
            if not holds:
                del self.holds[key]


class RedisStore:
    """Buckets and holds in Redis, shared by every server process."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.take_script = client.register_script(_TAKE)
        self.acquire_script = client.register_script(_ACQUIRE)

    async def take(self, key: str, rate: float, burst: float) -> bool:
        """Take one token from the bucket `key`."""
        args = [repr(rate), repr(burst), repr(time.time())]
        return bool(await self.take_script(keys=[REDIS_PREFIX + key], args=args))

    async def acquire(self, key: str, holder: str, limit: int, seconds: float) -> bool:
        """Hold one of `limit` places of `key` for `holder`."""
        now = time.time()
        args = [repr(now), limit, repr(now + seconds), holder]
        return bool(await self.acquire_script(keys=[REDIS_PREFIX + key], args=args))

    async def release(self, key: str, holder: str) -> None:
        """Give the place back."""
        await self.client.zrem(REDIS_PREFIX + key, holder)


# One memory store per process (sync views reach it through async_to_sync, which may run on a
# loop of its own), one Redis store per event loop (a client's connections belong to its loop).
_memory = MemoryStore()
_redis_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisStore] = (
    weakref.WeakKeyDictionary()
)


def get_store() -> MemoryStore | RedisStore:
    """The store for this process and loop: Redis when it is configured, else memory."""
    if not redis_clients.configured():
        return _memory
    loop = asyncio.get_running_loop()
    store = _redis_stores.get(loop)
    if store is None:
        store = _redis_stores[loop] = RedisStore(redis_clients.connect())
    return store


async def close_store() -> None:
    """Empty the memory store and close the loop's Redis client (tests call this)."""
    global _memory
    _memory = MemoryStore()
    store = _redis_stores.pop(asyncio.get_running_loop(), None)
    if store is not None:
        await redis_clients.disconnect(store.client)


async def allow(kind: str, who: str | None) -> bool:
    """Whether `who` may do one more `kind` now (a token from their bucket)."""
    per_hour = setting(kind, "per_hour")
    rate = per_hour / 3600 if per_hour else setting(kind, "messages_per_second")
    if not rate or who is None:
        return True
    return await get_store().take(f"{kind}:{who}", rate, max(1.0, setting(kind, "burst")))


async def acquire(kind: str, who: str | None, holder: str) -> bool:
    """Whether `who` may hold one more `kind` (holder: what holds it, e.g. a job's id)."""
    limit = int(setting(kind, "limit"))
    if not limit or who is None:
        return True
    seconds = setting(kind, "hold_seconds") or 3600
    return await get_store().acquire(f"{kind}:{who}", holder, limit, seconds)


async def release(kind: str, who: str | None, holder: str) -> None:
    """Give back what `acquire` granted (nothing happens if it was never held)."""
    if setting(kind, "limit") and who is not None:
        await get_store().release(f"{kind}:{who}", holder)
