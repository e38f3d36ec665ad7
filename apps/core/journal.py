"""
The event journal: the ASGI events a connection exchanged with its consumer, as the consumer
saw them, kept for the page to show beside the browser's own log.

A connection opts in with `?journal=<id>` (a random id the page makes); others pay one
query-string check at connect and nothing per message. Without Redis the journal lives
in this process's memory. With it, in Redis (a capped list per id, expiring when idle), so the
page's polls of `/journal/<id>/` find the events whichever server process they land on: behind
a load balancer (`make cluster`), the socket and the poll rarely share a process.

A journal holds what the page said (a hello, chat text), the client's address and the server's
pid: it belongs to the browser that made it. Each page of the showcase gives its browser a
random owner cookie (`OWNER_COOKIE`, HttpOnly, set by `ConsumerStyleView`); the socket's
handshake and the page's polls both carry it, and a journal is stored under the owner and the
id together. Another client that knows (or guesses) the id reaches another journal: it cannot
read this one, write into it, or evict it. Room is made per owner and per client address (each
keeps its newest `PER_OWNER` / `PER_ADDRESS`), so one client flooding new ids only evicts its
own; a connection without the cookie is simply not journaled.
"""

import hashlib
import json
import logging
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import redis_clients

logger = logging.getLogger(__name__)

# In memory, at most this many journals in all; when full, new ones are not recorded (nobody
# else's are evicted to make room).
MAX_JOURNALS = 256
# Each owner (browser) and each client address keeps its newest this many journals.
PER_OWNER = 16
PER_ADDRESS = 64
MAX_EVENTS = 200
MAX_PREVIEW = 120
# A journal outlives its last event by this long: a page reads it within seconds.
EXPIRY_SECONDS = 600
REDIS_PREFIX = "core:journal:"
JOURNAL_ID = re.compile(r"[A-Za-z0-9-]{16,64}")
OWNER_COOKIE = "journal_owner"
OWNER_VALUE = re.compile(r"[A-Za-z0-9_-]{32,64}")


@dataclass
class Journal:
    """One journal in process memory: whose it is, and its latest events."""

    owner: str
    address: str | None
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    touched: float = field(default_factory=time.monotonic)


_journals: OrderedDict[str, Journal] = OrderedDict()


def _summary(direction: str, event: dict[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of an ASGI event, with payloads cut short."""
    entry: dict[str, Any] = {"t": time.time(), "direction": direction}
    for key, value in event.items():
        if key == "text" and value is not None:
            entry[key] = value[:MAX_PREVIEW]
            entry["length"] = len(value)
        elif key == "bytes" and value is not None:
            entry[key] = value[: MAX_PREVIEW // 2].hex(" ")
            entry["length"] = len(value)
        elif key == "headers":
            entry[key] = [
                [bytes(n).decode("latin-1"), bytes(v).decode("latin-1")] for n, v in value
            ]
        else:
            entry[key] = value
    return entry


def _redis() -> Redis | None:
    """The running loop's shared Redis client when Redis is configured, else None (memory)."""
    return redis_clients.shared() if redis_clients.configured() else None


def storage_key(owner: str, journal_id: str) -> str:
    """Where an owner's journal lives: its id, under a digest of the owner's secret cookie."""
    return f"{hashlib.sha256(owner.encode()).hexdigest()[:32]}:{journal_id}"


def owner_of(cookies: dict[str, str]) -> str | None:
    """The journal owner of a request or handshake (its cookie), or None."""
    value = cookies.get(OWNER_COOKIE)
    return value if value and OWNER_VALUE.fullmatch(value) else None


def give_owner(request: HttpRequest, response: HttpResponse) -> None:
    """Give the browser an owner cookie, unless it has one (pages with a socket console)."""
    if owner_of(request.COOKIES) is None:
        response.set_cookie(
            OWNER_COOKIE,
            secrets.token_urlsafe(32),
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )


# Redis: each owner's and each address's journals in a sorted set (key -> last opened), so
# the oldest make room for a new one of the same owner or address, never anyone else's.
# KEYS: the owner's set, the address's set (or ""). ARGV: key, now, per owner, per address,
# prefix, expiry seconds.
_CLAIM = """
local now, expiry = tonumber(ARGV[2]), tonumber(ARGV[6])
local function make_room(set, limit)
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now - expiry)
  if redis.call('ZSCORE', set, ARGV[1]) then return end
  while redis.call('ZCARD', set) >= limit do
    local oldest = redis.call('ZPOPMIN', set)
    redis.call('DEL', ARGV[5] .. oldest[1])
  end
end
make_room(KEYS[1], tonumber(ARGV[3]))
if KEYS[2] ~= '' then make_room(KEYS[2], tonumber(ARGV[4])) end
for _, set in ipairs(KEYS) do
  if set ~= '' then
    redis.call('ZADD', set, now, ARGV[1])
    redis.call('EXPIRE', set, expiry)
  end
end
return 1
"""


async def claim(owner: str, address: str | None, journal_id: str) -> str | None:
    """
    Open (or reopen) the owner's journal `journal_id` for a new connection; return its key,
    or None when memory is full. Makes room among the owner's and the address's own journals.
    """
    key = storage_key(owner, journal_id)
    client = _redis()
    if client is None:
        return _claim_in_memory(key, owner, address)
    owner_set = f"{REDIS_PREFIX}owner:{key.split(':', 1)[0]}"
    address_set = f"{REDIS_PREFIX}address:{address}" if address else ""
    args = [key, time.time(), PER_OWNER, PER_ADDRESS, REDIS_PREFIX, EXPIRY_SECONDS]
    try:
        await client.eval(_CLAIM, 2, owner_set, address_set, *args)
    except RedisError as error:
        logger.warning("journal not opened (%s)", error)
        return None
    return key


def _claim_in_memory(key: str, owner: str, address: str | None) -> str | None:
    now = time.monotonic()
    if key in _journals:
        _journals[key].touched = now
        _journals.move_to_end(key)
        return key
    for stale in [k for k, j in _journals.items() if now - j.touched > EXPIRY_SECONDS]:
        del _journals[stale]
    for mine, limit in (
        ([k for k, j in _journals.items() if j.owner == owner], PER_OWNER),
        ([k for k, j in _journals.items() if address and j.address == address], PER_ADDRESS),
    ):
        for oldest in mine[: max(0, len(mine) - limit + 1)]:
            _journals.pop(oldest, None)
    if len(_journals) >= MAX_JOURNALS:
        logger.warning("journal not opened: %d journals in memory already", MAX_JOURNALS)
        return None
    _journals[key] = Journal(owner, address)
    return key


async def record(key: str, direction: str, event: dict[str, Any]) -> None:
    """Append one event to a claimed journal; its oldest events make room."""
    entry = _summary(direction, event)
    client = _redis()
    if client is None:
        journal = _journals.get(key)
        if journal is not None:  # evicted meanwhile: the connection's journal is gone
            journal.events.append(entry)
            journal.touched = time.monotonic()
        return
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.rpush(REDIS_PREFIX + key, json.dumps(entry))
            pipe.ltrim(REDIS_PREFIX + key, -MAX_EVENTS, -1)
            pipe.expire(REDIS_PREFIX + key, EXPIRY_SECONDS)
            await pipe.execute()
    except RedisError as error:
        # A diagnostic aid must not cost the socket it watches: the event is left out.
        logger.warning("journal event not recorded (%s)", error)


async def read(owner: str | None, journal_id: str) -> list[dict[str, Any]]:
    """The events of the owner's journal `journal_id`, oldest first (none for anyone else)."""
    if owner is None:
        return []
    key = storage_key(owner, journal_id)
    client = _redis()
    if client is None:
        journal = _journals.get(key)
        return list(journal.events) if journal is not None else []
    return [json.loads(item) for item in await client.lrange(REDIS_PREFIX + key, 0, -1)]


async def close_journal() -> None:
    """Close the running loop's Redis client, if it has one (tests call this)."""
    await redis_clients.close_shared()


def journal_id(scope: dict[str, Any]) -> str | None:
    """The id a connection asked to be journaled under, if its path allows it."""
    if not scope["path"].startswith(settings.JOURNAL_PATH_PREFIXES):
        return None
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("journal")
    if values and JOURNAL_ID.fullmatch(values[0]):
        return values[0]
    return None


class JournalMiddleware:
    """
    ASGI middleware (inside AuthMiddlewareStack, which parses the cookies): records every
    event in both directions for opted-in connections, in their owner's journal.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        requested = journal_id(scope)
        owner = owner_of(scope.get("cookies", {})) if requested else None
        if owner is None:
            return await self.app(scope, receive, send)
        client = scope.get("client")
        key = await claim(owner, client[0] if client else None, requested)
        if key is None:
            return await self.app(scope, receive, send)

        async def journaled_receive() -> dict[str, Any]:
            event = await receive()
            await record(key, "received", event)
            return event

        async def journaled_send(event: dict[str, Any]) -> None:
            await record(key, "sent", event)
            await send(event)

        return await self.app(scope, journaled_receive, journaled_send)
