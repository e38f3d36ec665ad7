"""
What each layer between the server and a project consumer adds per message, timed in-process
(no sockets): the figures behind "the showcase's own features add no measurable tax".
"""

import asyncio
import os
import time
from typing import Any

ROUNDS = 100_000


async def _noop(message: dict[str, Any]) -> None:
    """A send that does nothing: the baseline."""


async def _per_call(send: Any, message: dict[str, Any]) -> float:
    started = time.perf_counter()
    for _ in range(ROUNDS):
        await send(message)
    return (time.perf_counter() - started) / ROUNDS


def measure() -> list[dict[str, Any]]:
    """Microseconds per message for each layer, above a bare awaited send."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from channels.sessions import InstanceSessionWrapper

    from apps.core.limits import Limiter

    async def run() -> list[dict[str, Any]]:
        message = {"type": "websocket.send", "text": "x" * 32}
        base = await _per_call(_noop, message)
        session = InstanceSessionWrapper({"type": "websocket", "cookies": {}}, _noop)
        await session.resolve_session()
        wrapped = await _per_call(session.send, message)
        limiter = Limiter("echo")
        limiter.bucket = None  # the benchmarks lift the rate limit; the size check remains
        started = time.perf_counter()
        for _ in range(ROUNDS):
            limiter.check(message["text"], None)
        check = (time.perf_counter() - started) / ROUNDS
        return [
            {"layer": "AuthMiddlewareStack's session wrapper, per send (Channels)",
             "us": 1e6 * (wrapped - base)},
            {"layer": "apps.core.limits.Limiter.check, per received message",
             "us": 1e6 * check},
        ]  # fmt: skip

    return asyncio.run(run())
