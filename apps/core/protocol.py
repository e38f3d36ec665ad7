"""
The JSON envelope both JSON consumers speak, and the subprotocol every endpoint offers.

Sync and async JSON consumers share this module so that the only difference between them is
the consumer style itself. Nothing here does I/O.
"""

import json
import math
import os
import re
import threading
from typing import Any

from django.conf import settings

Envelope = dict[str, Any]

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
    process id which server process (behind a load balancer, one of several), and `client` the
    peer's address as the server saw it (behind a proxy, from its X-Forwarded-For).
    """
    user = consumer.scope.get("user")
    client = consumer.scope.get("client")
    return {
        "type": "info",
        "consumer": type(consumer).__name__,
        "thread": threading.current_thread().name,
        "process": os.getpid(),
        "client": list(client) if client else None,
        "path": consumer.scope["path"],
        "subprotocols_offered": list(consumer.scope.get("subprotocols", ())),
        "user": user.get_username() if user is not None and user.is_authenticated else None,
    }


def unknown(content: dict[str, Any]) -> BadMessage:
    """The error for a command this endpoint does not know."""
    return BadMessage("unknown_type", f"unknown type {content['type']!r}; try echo, info or close")
