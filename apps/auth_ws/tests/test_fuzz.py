"""
Hostile input against the lobby, from a logged-in socket, through the full ASGI stack.

The same frames as apps/core/tests/test_fuzz.py, plus chat-shaped commands whose `text` and
`user` fields take any value. Every frame must get the documented answer (a chat, presence,
info or `error` envelope, or close 4009/4429), the consumer never raises, every chat names the
session's user whatever the frame claims, and the socket stays usable while open.
"""

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.auth_ws.consumers import MAX_CHAT_CHARS
from apps.auth_ws.presence import close_presence
from apps.core.limits import CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED
from apps.core.tests.contract import communicator
from apps.core.tests.strategies import (
    BURST,
    ERROR_CODES,
    LIMITS,
    MAX_BYTES,
    Frame,
    envelope,
    frames,
    json_literal,
    long_string,
    parse_command,
    string_literal,
)

pytestmark = pytest.mark.django_db(transaction=True)

LOBBY_ERROR_CODES = ERROR_CODES | {"invalid_text", "text_too_long"}
CHAT_FIELDS = {'"text"': string_literal | long_string | json_literal, '"user"': string_literal}


@pytest.fixture
def alice_cookie(transactional_db: None) -> bytes:
    """The session cookie of a real login: the fuzzing runs as a logged-in user."""
    client = Client()
    client.force_login(get_user_model().objects.create_user("alice"))
    return f"sessionid={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def expected_answer(frame: Frame) -> tuple[str, Any]:
    """What the lobby promises for one frame that passed the limits."""
    content = parse_command(frame)
    if isinstance(content, str):
        return "error", content
    match content["type"]:
        case "chat":
            text = content.get("text")
            if not isinstance(text, str) or not text.strip():
                return "error", "invalid_text"
            if len(text) > MAX_CHAT_CHARS:
                return "error", "text_too_long"
            return "chat", text
        case "who":
            return "presence", None
        case "info":
            return "info", None
        case _:
            return "error", "unknown_type"


async def exchange(cookie: bytes, sequence: list[Frame]) -> None:
    """Join, send the frames one by one checking each answer, then prove the socket works."""
    comm = communicator("/ws/auth/", cookie=cookie)
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["type"] == "hello"
    assert (await comm.receive_json_from())["type"] == "resume"  # nothing said yet: no chat
    assert await comm.receive_json_from() == {"type": "presence", "users": ["alice"]}
    allowed = 0
    closed = False
    for frame in sequence:
        await comm.send_input(frame.event)
        output = await comm.receive_output(timeout=3)
        if frame.size > MAX_BYTES:
            assert output["type"] == "websocket.close" and output["code"] == CLOSE_MESSAGE_TOO_BIG
        elif allowed == BURST:
            assert output["type"] == "websocket.close" and output["code"] == CLOSE_RATE_LIMITED
        else:
            allowed += 1
            kind, value = expected_answer(frame)
            reply = envelope(output, LOBBY_ERROR_CODES)
            assert reply["type"] == kind, (frame, reply)
            if kind == "error":
                assert reply["code"] == value, (frame, reply)
            elif kind == "chat":
                # Whoever the frame claims to be, the sender is the session's user.
                assert (reply["user"], reply["text"]) == ("alice", value)
            elif kind == "presence":
                assert reply["users"] == ["alice"]
            else:
                assert reply["user"] == "alice"
        if output["type"] == "websocket.close":
            closed = True
            break
    if closed:
        await comm.send_input({"type": "websocket.receive", "text": '{"type": "who"}'})
        assert await comm.receive_nothing(0.05)  # a closing socket answers nothing more
    elif allowed < BURST:
        await comm.send_json_to({"type": "chat", "text": "still usable"})
        assert (await comm.receive_json_from(timeout=3))["text"] == "still usable"
    await comm.disconnect(timeout=3)
    await close_presence()
    await get_channel_layer().flush()


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one login serves every example
    ],
)
@given(sequence=st.lists(frames(CHAT_FIELDS), min_size=1, max_size=BURST + 3))
# A lone surrogate cannot be packed by channels-redis (msgpack): refused before it is sent on.
@example(sequence=[Frame(text='{"type": "chat", "text": "\\ud800"}')])
@example(sequence=[Frame(text='{"type": "chat", "text": "I am bob", "user": "bob"}')])
def test_any_input_gets_a_documented_answer(alice_cookie: bytes, sequence: list[Frame]) -> None:
    with override_settings(WS_LIMITS={"lobby": LIMITS}):
        asyncio.run(exchange(alice_cookie, sequence))
