"""
The JSON envelope both JSON consumers speak, and the subprotocol every endpoint offers.

Sync and async JSON consumers share this module so that the only difference between them is
the consumer style itself. Nothing here does I/O.
"""

import json
import logging
import math
import os
import re
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connections, router

from apps.core.models import Note

Envelope = dict[str, Any]

logger = logging.getLogger(__name__)

# RFC 6455 5.5: a close frame carries at most 125 bytes, two of them the code.
MAX_REASON_BYTES = 123
# Nesting beyond this is refused before parsing: near Python's recursion limit, json.loads can
# succeed where json.dumps of the same data, called deeper in the consumer, then raises.
MAX_DEPTH = 100
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BadMessage(Exception):
    """A message the endpoint answers with an `error` envelope; the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.envelope: Envelope = {"type": "error", "code": code, "message": message}


def select_subprotocol(scope: dict[str, Any]) -> str | None:
    """Agree to the showcase's subprotocol if the client offered it; otherwise pick none."""
    if settings.WS_SUBPROTOCOL in scope.get("subprotocols", ()):
        return settings.WS_SUBPROTOCOL
    return None


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity, which are not JSON: a browser could not parse
    # the echo.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    # 1e400 parses as float("inf"), which json.dumps would echo as the non-JSON `Infinity`.
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"{literal[:20]} is out of range for a double")
    return number


# One decoder for every message: json.loads builds a new one on each call that passes options.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings skipped)."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _is_unicode(content: Any) -> bool:
    # JSON's grammar lets "\ud800" through, but no UTF-8 can carry the lone surrogate it
    # decodes to: echoed, logged, stored or sent through Redis (msgpack), it would raise.
    try:
        json.dumps(content, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def decode(text: str | None) -> dict[str, Any]:
    """Decode one incoming frame into a command object (a binary frame arrives as None)."""
    if text is None:
        raise BadMessage("binary_not_supported", "this endpoint takes JSON text frames only")
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise BadMessage("invalid_json", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        content = _DECODER.decode(text)
    except ValueError as exc:
        raise BadMessage("invalid_json", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise BadMessage("invalid_json", "JSON nested too deeply") from None
    if "\\u" in text and not _is_unicode(content):
        raise BadMessage("invalid_json", "a \\u escape left a lone surrogate: not Unicode text")
    if not isinstance(content, dict):
        raise BadMessage("not_an_object", f"expected a JSON object, got {type(content).__name__}")
    if not isinstance(content.get("type"), str):
        raise BadMessage("missing_type", 'expected a string "type" field')
    return content


def close_args(content: dict[str, Any]) -> tuple[int, str]:
    """The code and reason of a `close` command: a code a browser may see, a reason that fits."""
    code = content.get("code", 1000)
    reason = content.get("reason", "")
    if (
        isinstance(code, bool)
        or not isinstance(code, int)
        or not (code == 1000 or 3000 <= code <= 4999)
    ):
        raise BadMessage("invalid_close_code", "code must be 1000 or within 3000-4999")
    if not isinstance(reason, str) or len(reason.encode()) > MAX_REASON_BYTES:
        raise BadMessage(
            "invalid_reason", f"reason must be text of at most {MAX_REASON_BYTES} UTF-8 bytes"
        )
    return code, reason


def info(consumer: Any) -> Envelope:
    """
    Where this consumer runs: the thread name tells a worker thread from the event loop, the
    process id which server process (behind a load balancer, one of several), `host` which
    machine (settings.SHOWCASE_HOST: in `make cluster HOSTS=3`, "a" or "b"), `database` the
    vendor its notes are saved in (`sqlite` or `postgresql`; no query is made), and `client`
    the peer's address as the server saw it (behind a proxy, from its X-Forwarded-For).
    """
    user = consumer.scope.get("user")
    client = consumer.scope.get("client")
    return {
        "type": "info",
        "consumer": type(consumer).__name__,
        "thread": threading.current_thread().name,
        "process": os.getpid(),
        "host": settings.SHOWCASE_HOST,
        "database": connections[router.db_for_write(Note)].vendor,
        "client": list(client) if client else None,
        "path": consumer.scope["path"],
        "subprotocols_offered": list(consumer.scope.get("subprotocols", ())),
        "user": user.get_username() if user is not None and user.is_authenticated else None,
    }


def unknown(content: dict[str, Any]) -> BadMessage:
    """The error for a command this endpoint does not know."""
    return BadMessage(
        "unknown_type",
        f"unknown type {content['type']!r}; try echo, info, close, note, notes or block",
    )


# ------------------------------------------------------------------ the ORM and blocking demos
# How many notes `notes` answers with, newest first.
NOTES_SHOWN = 10
# `block` sleeps at most this long: enough to see a stall, too short to be a denial of service.
MAX_BLOCK_SECONDS = 2.0


def note_text(content: dict[str, Any], max_chars: int) -> str:
    """The text of a `note` command: a non-blank string of at most `max_chars` characters."""
    text = content.get("text")
    if not isinstance(text, str):
        raise BadMessage("invalid_text", 'a note needs a string "text"')
    if not text.strip():
        raise BadMessage("invalid_text", "a note's text must not be empty")
    if len(text) > max_chars:
        raise BadMessage("invalid_text", f"a note is at most {max_chars} characters")
    if "\x00" in text:
        # SQLite would store it; PostgreSQL refuses NUL in text. Refuse it everywhere alike.
        raise BadMessage("invalid_text", "a note's text must not contain NUL")
    return text


def via(content: dict[str, Any], *ways: str) -> str:
    """Which way to reach the database (`via`): one of `ways`, the first when absent."""
    chosen = content.get("via", ways[0])
    if chosen not in ways:
        raise BadMessage("invalid_via", f"via must be one of {', '.join(ways)}")
    return chosen


def block_seconds(content: dict[str, Any]) -> float:
    """The `seconds` of a `block` command: a number, 0 < seconds <= MAX_BLOCK_SECONDS."""
    seconds = content.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_BLOCK_SECONDS
    ):
        raise BadMessage(
            "invalid_seconds", f"seconds must be a number above 0 and at most {MAX_BLOCK_SECONDS:g}"
        )
    return float(seconds)


def on_loop(content: dict[str, Any], allowed: bool) -> bool:
    """Whether a `block` asks to sleep on the event loop itself (async endpoint only)."""
    value = content.get("on_loop", False)
    if not isinstance(value, bool):
        raise BadMessage("invalid_on_loop", "on_loop must be true or false")
    if value and not allowed:
        raise BadMessage(
            "invalid_on_loop", "a sync consumer's handlers run in a worker thread, not on the loop"
        )
    return value


def author(scope: dict[str, Any]) -> Any:
    """The logged-in user who writes a note, or None (AuthMiddleware resolved it at connect)."""
    user = scope.get("user")
    return user if user is not None and user.is_authenticated else None


def ms_since(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading, rounded for display."""
    return round(1000 * (time.perf_counter() - started), 3)


def block_reply(seconds: float, how: str, started: float, ended: float, waited: float) -> Envelope:
    """
    The answer to `block`: what was asked, how it slept, and the wait measured around the
    sleep; `started` and `ended` are wall-clock times, so two sockets' blocks can be compared.
    """
    return {
        "type": "block",
        "seconds": seconds,
        "how": how,
        "waited": round(waited, 4),
        "started": started,
        "ended": ended,
    }


def database_error(error: Exception) -> Envelope:
    """
    The answer when the database fails a `note` or `notes` (locked, gone, out of space): one
    log line for the operator, an error for the socket, which stays open.
    """
    logger.warning("database error: %s: %s", type(error).__name__, error)
    return {
        "type": "error",
        "code": "database_error",
        "message": f"the database failed ({type(error).__name__}); nothing was saved, try again",
    }
