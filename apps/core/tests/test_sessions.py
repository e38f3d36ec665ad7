"""
Logging out reaches every socket of the user (apps/core/sessions.py): the lobby, both JSON
endpoints and the jobs socket close with 4401, and none of them acts as the user afterwards.

One process here, through the whole ASGI stack; across two daphne processes and Redis:
apps/auth_ws/tests/test_multiprocess.py; through nginx: e2e/cluster/test_security.py.
"""

from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.urls import reverse

from apps.auth_ws.presence import close_presence
from apps.core.models import Note
from apps.core.tests.accounts import create_users, log_in, session_cookie
from apps.core.tests.contract import communicator, expect_close
from apps.jobs import worker

pytestmark = pytest.mark.django_db(transaction=True)

# Every socket that acts as its user: the lobby (chat), the JSON endpoints (notes), the jobs.
USER_SOCKETS = ["/ws/auth/", "/ws/sc/json/", "/ws/ac/json/", "/ws/jobs/"]
NOTE_SOCKETS = ["/ws/sc/json/", "/ws/ac/json/"]


@pytest.fixture(autouse=True)
async def _clean() -> AsyncIterator[None]:
    yield
    await worker.stop_in_process_worker()
    await close_presence()
    await get_channel_layer().flush()
    await sync_to_async(connections.close_all)()


async def opened(path: str, cookie: bytes) -> object:
    """An open socket with this cookie, its unsolicited greetings read."""
    comm = communicator(path, cookie=cookie)
    assert (await comm.connect())[0]
    if path == "/ws/auth/":
        # hello, the recent history (a fresh join's `resume`), then who is online.
        greetings = [(await comm.receive_json_from())["type"] for _ in range(3)]
        assert greetings == ["hello", "resume", "presence"]
    elif path == "/ws/jobs/":
        assert (await comm.receive_json_from())["type"] == "hello"
    return comm


async def ask(comm: object, content: dict) -> dict:
    """Send one command, return the reply."""
    await comm.send_json_to(content)
    return await comm.receive_json_from(timeout=5)


async def test_logout_closes_every_socket_of_the_user_and_none_acts_as_the_user() -> None:
    await sync_to_async(create_users)("alice", "bob")
    alice = await log_in("alice")
    sockets = {path: await opened(path, session_cookie(alice)) for path in USER_SOCKETS}
    bob = await opened("/ws/ac/json/", session_cookie(await log_in("bob")))
    for path in NOTE_SOCKETS:
        saved = await ask(sockets[path], {"type": "note", "text": f"before, on {path}"})
        assert saved["author"] == "alice"
    for path in USER_SOCKETS[1:]:
        assert (await ask(sockets[path], {"type": "info"}))["user"] == "alice"

    await alice.post(reverse("logout"))

    for path, comm in sockets.items():
        closed = await expect_close(comm)
        assert (closed["code"], closed["reason"]) == (4401, "logged out"), path
    # The server has not heard the client's close reply yet: the consumers still run, and
    # must not act as alice for anything the client sends in that window.
    for path in NOTE_SOCKETS:
        await sockets[path].send_json_to({"type": "note", "text": "after the logout"})
        await sockets[path].send_json_to({"type": "info"})
    await sockets["/ws/auth/"].send_json_to({"type": "chat", "text": "after the logout"})
    for comm in sockets.values():
        assert await comm.receive_nothing(0.3)
        await comm.disconnect()
    assert not await Note.objects.filter(text="after the logout").aexists()
    assert await Note.objects.filter(author__username="alice").acount() == 2

    # Bob's socket is nobody else's business.
    assert (await ask(bob, {"type": "info"}))["user"] == "bob"
    await bob.disconnect()


async def test_anonymous_sockets_join_no_user_group() -> None:
    comm = await opened("/ws/ac/json/", b"")
    layer = get_channel_layer()
    assert [g for g in layer.groups if g.startswith("user.")] == []
    assert (await ask(comm, {"type": "info"}))["user"] is None
    await comm.disconnect()
