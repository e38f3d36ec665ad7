"""
The event journal: the ASGI events a connection exchanged with its consumer, as the consumer
saw them, kept in this process's memory for the page to show beside the browser's own log.

A connection opts in with `?journal=<id>` (a random id the page makes); others pay one
query-string check at connect and nothing per message. The journal lives in one process: with
several server processes, ask the process that served the socket.
"""

import re
import time
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

MAX_JOURNALS = 256
MAX_EVENTS = 200
MAX_PREVIEW = 120
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


def record(journal_id: str, direction: str, event: dict[str, Any]) -> None:
    """Append one event; the oldest journals and events make room."""
    events = _journals.get(journal_id)
    if events is None:
        events = _journals[journal_id] = deque(maxlen=MAX_EVENTS)
        while len(_journals) > MAX_JOURNALS:
            _journals.popitem(last=False)
    events.append(_summary(direction, event))


def read(journal_id: str) -> list[dict[str, Any]]:
    """The events recorded under this id, oldest first."""
    return list(_journals.get(journal_id, ()))


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
            record(key, "received", event)
            return event

        async def journaled_send(event: dict[str, Any]) -> None:
            record(key, "sent", event)
            await send(event)

        return await self.app(scope, journaled_receive, journaled_send)
