"""Coalesced calls (apps/core/coalesce.py): a herd of callers shares one call, never a stale one."""

import asyncio
import gc

import pytest

from apps.core.coalesce import Coalesced


class Source:
    """Counts calls; each call reads the value as it is when the call starts."""

    def __init__(self) -> None:
        self.value = 0
        self.calls = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.calls += 1
        seen = self.value
        await self.release.wait()
        return seen


async def test_callers_that_ask_together_share_one_call() -> None:
    source = Source()
    read = Coalesced(source.read)
    herd = [asyncio.create_task(read()) for _ in range(1000)]
    await asyncio.sleep(0)
    source.release.set()
    assert await asyncio.gather(*herd) == [0] * 1000
    assert source.calls == 1


async def test_a_caller_that_asks_during_a_call_gets_the_next_one() -> None:
    source = Source()
    read = Coalesced(source.read)
    early = asyncio.create_task(read())
    await asyncio.sleep(0.01)  # that call has started, and read the value 0
    source.value = 1  # a change after the call began: a later caller must see it
    late = [asyncio.create_task(read()) for _ in range(10)]
    await asyncio.sleep(0.01)
    source.release.set()
    assert await early == 0
    assert await asyncio.gather(*late) == [1] * 10
    assert source.calls == 2


async def test_errors_reach_every_caller_and_a_cancelled_caller_cancels_no_other() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ValueError("down")

    call = Coalesced(failing)
    herd = [asyncio.create_task(call()) for _ in range(3)]
    await asyncio.sleep(0)
    herd[0].cancel()
    results = await asyncio.gather(*herd, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert [type(r) for r in results[1:]] == [ValueError, ValueError]
    assert calls == 1


async def test_a_failed_call_nobody_waits_for_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("down")

    caller = asyncio.create_task(Coalesced(failing)())
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0.05)
    gc.collect()
    assert "never retrieved" not in caplog.text
