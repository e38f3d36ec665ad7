"""
Hostile input against both JSON endpoints, through the full ASGI stack (origin check included).

Each example opens one socket and sends a sequence of arbitrary frames (any text, any bytes,
any JSON, command-shaped objects with fields of any type, commands in any order, a close in the
middle). Every frame must get exactly the answer design.md documents: an `error` envelope, an
echo of the data, an `info`, or a close with a documented code; the consumer never raises; and
while the socket is open it stays usable.
"""

import asyncio
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apps.core.limits import CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED
from apps.core.tests.contract import communicator
from apps.core.tests.strategies import (
    BURST,
    LIMITS,
    MAX_BYTES,
    Frame,
    envelope,
    frames,
    parse_command,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def expected_answer(frame: Frame) -> tuple[str, Any]:
    """What design.md promises for one frame that passed the limits."""
    content = parse_command(frame)
    if isinstance(content, str):
        return "error", content
    match content["type"]:
        case "echo":
            return "echo", content.get("data")
        case "info":
            return "info", None
        case "close":
            code = content.get("code", 1000)
            reason = content.get("reason", "")
            if isinstance(code, bool) or not isinstance(code, int):
                return "error", "invalid_close_code"
            if not (code == 1000 or 3000 <= code <= 4999):
                return "error", "invalid_close_code"
            try:
                fits = isinstance(reason, str) and len(reason.encode()) <= 123
            except UnicodeEncodeError:
                fits = False
            return ("close", code) if fits else ("error", "invalid_reason")
        case _:
            return "error", "unknown_type"


async def exchange(path: str, sequence: list[Frame]) -> None:
    """Send the frames one by one, checking each answer; end with a usability check."""
    comm = communicator(path)
    assert (await comm.connect())[0]
    allowed = 0
    closed = False
    for frame in sequence:
        await comm.send_input(frame.event)
        output = await comm.receive_output(timeout=3)
        if frame.size > MAX_BYTES:
            assert output == {"type": "websocket.close", "code": CLOSE_MESSAGE_TOO_BIG} | {
                "reason": output.get("reason")
            }
        elif allowed == BURST:
            assert output["type"] == "websocket.close"
            assert output["code"] == CLOSE_RATE_LIMITED
        else:
            allowed += 1
            kind, value = expected_answer(frame)
            if kind == "close":
                assert output["type"] == "websocket.close", output
                assert output["code"] == value
            else:
                reply = envelope(output)
                assert reply["type"] == kind, (frame, reply)
                if kind == "error":
                    assert reply["code"] == value, (frame, reply)
                elif kind == "echo":
                    assert reply == {"type": "echo", "data": value}
        if output["type"] == "websocket.close":
            closed = True
            break
    if closed:
        # A client may still have frames in flight after the close: they must not crash it.
        await comm.send_input({"type": "websocket.receive", "text": '{"type": "echo"}'})
        await comm.send_input({"type": "websocket.receive", "bytes": b"\xff"})
        await asyncio.sleep(0.01)
    elif allowed < BURST:
        await comm.send_json_to({"type": "echo", "data": "still usable"})
        assert await comm.receive_json_from(timeout=3) == {"type": "echo", "data": "still usable"}
    # disconnect() waits for the application and re-raises anything it raised.
    await comm.disconnect(timeout=3)


@pytest.mark.parametrize("path", ["/ws/sc/json/", "/ws/ac/json/"])
@FUZZ
@given(sequence=st.lists(frames(), min_size=1, max_size=BURST + 3))
# Found by this test: 1e400 decoded to inf and was echoed as `Infinity`, which is not JSON; a
# "\ud800" reason decoded to a lone surrogate and crashed the UTF-8 length check; data nested
# 981 deep parsed, then crashed the sync consumer's json.dumps with a RecursionError.
@example(sequence=[Frame(text='{"type": "echo", "data": [1e400, -1e400]}')])
@example(sequence=[Frame(text='{"type": "close", "code": 4000, "reason": "\\ud800"}')])
@example(sequence=[Frame(text='{"type": "echo", "data": ' + "[" * 981 + "]" * 981 + "}")])
def test_any_input_gets_a_documented_answer(path: str, sequence: list[Frame]) -> None:
    with override_settings(WS_LIMITS={**django_settings.WS_LIMITS, "json": LIMITS}):
        asyncio.run(exchange(path, sequence))
