"""
One call for a herd: callers that ask for the same answer at the same moment share one call.

When a thousand lobby sockets hear "presence changed" at once, each would read the same list from
Redis; when a hundred leave at once, each would tell the whole lobby. `Coalesced` makes every
caller that asks before the next call has started share that call, so a herd costs one call per
process instead of one per socket, and nobody gets a stale answer: every caller's call began
after it asked. A caller that asks while a call runs waits for the next one.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Future) -> None:
    # Every caller may have been cancelled before the call failed: its error must not be
    # reported later as "exception was never retrieved", with a traceback.
    if not task.cancelled():
        task.exception()


class Coalesced(Generic[T]):
    """An async function whose concurrent callers share its next call (see the module)."""

    def __init__(self, function: Callable[[], Awaitable[T]]) -> None:
        self.function = function
        self.next: asyncio.Future[T] | None = None  # scheduled, not started yet

    async def __call__(self) -> T:
        """The result of a call that starts after now, shared with whoever else asks meanwhile."""
        if self.next is None:
            self.next = asyncio.ensure_future(self._call())
            self.next.add_done_callback(_retrieve)
        # Shielded: one caller cancelled (its socket closed) must not cancel the others' call.
        return await asyncio.shield(self.next)

    async def _call(self) -> T:
        self.next = None  # started: from now on, callers need the call after this one
        return await self.function()
