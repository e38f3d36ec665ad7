"""
Per-connection limits that every consumer applies before it looks at a message.

Daphne already refuses messages over 1 MiB; these limits are the application's own, lower
and per endpoint kind, so a visitor can see close 4009 and 4429 arrive from the consumer.

Why 4009 and not RFC 6455's 1009 (message too big): daphne hands the application's close
code to autobahn, whose sendClose accepts only 1000 and 3000-4999, the codes a browser may
send (crossbario/autobahn-python#1642). A consumer's close(1009) raises there, and the client
sees 1011 instead. An application code arrives intact on every server.
"""

import time
from typing import NamedTuple

from django.conf import settings

CLOSE_MESSAGE_TOO_BIG = 4009
CLOSE_RATE_LIMITED = 4429
# Not a limit of the client's: the server cannot serve this socket now (its channel layer is
# unreachable, or it is shutting down). The client should reconnect with backoff (outage.py).
CLOSE_UNAVAILABLE = 4503


class Refusal(NamedTuple):
    """Why a message was refused: the close code and reason to send."""

    code: int
    reason: str


class TokenBucket:
    """Allow `rate` messages per second on average, in bursts of up to `burst`."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, amount: float = 1) -> bool:
        """Spend `amount` tokens if there are that many."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False


class Limiter:
    """
    The limits of one connection, read from `settings.WS_LIMITS[kind]`.

    Once a message is refused, every later one is refused too: the consumer has sent its
    close, and ASGI servers may raise on a send after that.
    """

    __slots__ = ("bucket", "max_bytes", "refusal")

    def __init__(self, kind: str) -> None:
        limits = settings.WS_LIMITS[kind]
        self.max_bytes: int = limits["max_message_bytes"]
        rate = limits["messages_per_second"]
        self.bucket = TokenBucket(rate, limits["burst"]) if rate else None
        self.refusal: Refusal | None = None

    def check(self, text: str | None, data: bytes | None) -> Refusal | None:
        """Return the refusal for this message (text or bytes), or None to let it through."""
        if self.refusal is None:
            # UTF-8 length: the limit is on what crossed the wire, not on characters.
            size = len(text.encode()) if text is not None else len(data or b"")
            if size > self.max_bytes:
                self.refusal = Refusal(
                    CLOSE_MESSAGE_TOO_BIG, f"message of {size} bytes is over {self.max_bytes}"
                )
            elif self.bucket is not None and not self.bucket.take():
                self.refusal = Refusal(CLOSE_RATE_LIMITED, "too many messages")
        return self.refusal


class BlockBudget:
    """
    How many seconds one socket may spend in `block` commands: `budget_seconds` at once,
    refilled at `refill_per_second` (settings.WS_LIMITS["block"]).

    A socket's messages are handled one at a time, so a socket never has two blocks running;
    the budget bounds how long one socket can hold the sync thread or the event loop in all.
    """

    __slots__ = ("bucket",)

    def __init__(self) -> None:
        limits = settings.WS_LIMITS["block"]
        self.bucket = TokenBucket(limits["refill_per_second"], limits["budget_seconds"])

    def spend(self, seconds: float) -> bool:
        """Take `seconds` from the budget if they are there."""
        return self.bucket.take(seconds)

    def describe(self) -> str:
        """The budget in words, for the error a refused block gets."""
        return (
            f"{self.bucket.burst:g} s of blocking per socket, refilled at "
            f"{self.bucket.rate:g} s per second"
        )
