"""
The event journal: the ASGI events a connection exchanged with its consumer, as the consumer
saw them, kept for the page to show beside the browser's own log.

A connection opts in with `?journal=<id>` (a random id the page makes); others pay one
query-string check at connect and nothing per message. Without Redis the journal lives
in this process's memory. With it, in Redis (a capped list per id, expiring when idle), so the
page's polls of `/journal/<id>/` find the events whichever server process they land on: behind
a load balancer (`make cluster`), the socket and the poll rarely share a process.
"""

import json
import logging
import re
import time
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import redis_clients

logger = logging.getLogger(__name__)

MAX_JOURNALS = 256
MAX_EVENTS = 200
MAX_PREVIEW = 120
# A journal in Redis outlives its last event by this long: a page reads it within seconds.
EXPIRY_SECONDS = 600
REDIS_PREFIX = "core:journal:"
JOURNAL_ID = re.compile(r"[A-Za-z0-9-]{16,64}")

_journals: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()


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


async def record(journal_id: str, direction: str, event: dict[str, Any]) -> None:
    """Append one event; the oldest journals and events make room."""
    entry = _summary(direction, event)
    client = _redis()
    if client is None:
        events = _journals.get(journal_id)
        if events is None:
            events = _journals[journal_id] = deque(maxlen=MAX_EVENTS)
            while len(_journals) > MAX_JOURNALS:
                _journals.popitem(last=False)
        events.append(entry)
        return
    key = REDIS_PREFIX + journal_id
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, json.dumps(entry))
            pipe.ltrim(key, -MAX_EVENTS, -1)
            pipe.expire(key, EXPIRY_SECONDS)
            await pipe.execute()
    except RedisError as error:
        # A diagnostic aid must not cost the socket it watches: the event is left out.
        logger.warning("journal %s: event not recorded (%s)", journal_id, error)


async def read(journal_id: str) -> list[dict[str, Any]]:
    """The events recorded under this id, oldest first."""
    client = _redis()
    if client is None:
        return list(_journals.get(journal_id, ()))
    return [json.loads(item) for item in await client.lrange(REDIS_PREFIX + journal_id, 0, -1)]


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
    """ASGI middleware: records every event in both directions for opted-in connections."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = journal_id(scope)
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
