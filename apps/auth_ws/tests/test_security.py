"""
The security promises of design.md and issue 5, in one place.

test_consumers.py and test_accounts.py already hold the lobby's own rules (an anonymous socket
is closed 4401, a spoofed sender is ignored, logout closes the user's sockets, CSRF on login and
logout); this module adds the attacks around them: a foreign page carrying the victim's session
cookie, every account form without its CSRF token, a replayed or forged session cookie, and
secrets (session keys, passwords, CSRF tokens) looked for in every log line and every message a
client receives, in-process and in a real daphne's log.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.auth_ws import account_urls
from apps.auth_ws.presence import close_presence
from apps.auth_ws.tests.helpers import (
    PASSWORD,
    FormClient,
    join,
    lobby,
    log_in,
    presence,
    session_cookie,
)
from apps.core.tests.contract import communicator, expect_close
from tools.servers import ServerProcess, database_env, running, server_env, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)

WRONG_PASSWORD = "not the passphrase at all"
LOBBY_PATHS = ["/ws/auth/", "/ws/auth/strict/"]


@pytest.fixture(autouse=True)
async def _fresh_stores() -> AsyncIterator[None]:
    yield
    await close_presence()
    await get_channel_layer().flush()


@pytest.fixture
def users(transactional_db: None) -> None:
    for name in ("alice", "bob"):
        get_user_model().objects.create_user(name, password=PASSWORD)


# ------------------------------------------------------------------ the handshake's origin


@pytest.mark.parametrize("path", LOBBY_PATHS)
@pytest.mark.parametrize(
    "origin", [None, b"http://evil.example", b"http://127.0.0.1.evil.example", b"null"]
)
async def test_foreign_page_with_the_victims_cookie_is_refused(
    users: None, path: str, origin: bytes | None
) -> None:
    # Cross-site WebSocket hijacking: the browser sends alice's cookie with a handshake that a
    # foreign page started. Only the Origin header tells them apart.
    alice = await log_in("alice")
    comm = communicator(path, origin=origin, cookie=session_cookie(alice))
    connected, code = await comm.connect()
    assert not connected
    assert code == 1000  # closed before accept: daphne answers HTTP 403
    await comm.disconnect()


@pytest.mark.parametrize("path", LOBBY_PATHS)
async def test_own_page_with_the_cookie_joins(users: None, path: str) -> None:
    comm = await join(await log_in("alice"), path)
    assert await presence(comm) == ["alice"]
    await comm.disconnect()


# ------------------------------------------------------------------ CSRF on every form


def account_forms() -> list[str]:
    """Every URL name under /accounts/: all of them take POSTs."""
    return [pattern.name for pattern in account_urls.urlpatterns]


@pytest.mark.parametrize("name", account_forms())
def test_every_account_form_refuses_a_post_without_csrf_token(users: None, name: str) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="alice"))
    session_key = client.session.session_key
    fields = {"username": "mallory", "password": PASSWORD, "password1": PASSWORD}
    response = client.post(reverse(name), {**fields, "password2": PASSWORD})
    assert response.status_code == 403
    # Nothing happened: no new user, and alice is still logged in with the same session.
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert client.session.session_key == session_key


def test_a_csrf_token_from_another_session_is_refused(users: None) -> None:
    attacker = Client(enforce_csrf_checks=True)
    attacker.get(reverse("login"))
    stolen = attacker.cookies[settings.CSRF_COOKIE_NAME].value
    victim = Client(enforce_csrf_checks=True)
    victim.force_login(get_user_model().objects.get(username="alice"))
    response = victim.post(reverse("logout"), {"csrfmiddlewaretoken": stolen})
    assert response.status_code == 403
    assert victim.session.get("_auth_user_id")


# ------------------------------------------------------------------ who may be in the lobby


async def test_an_anonymous_socket_that_talks_fast_never_reaches_the_lobby(users: None) -> None:
    alice = await join(await log_in("alice"))
    await presence(alice)
    anonymous = communicator("/ws/auth/")
    assert (await anonymous.connect())[0]
    # Sent before it has even read its close: must go nowhere.
    for command in ({"type": "chat", "text": "let me in"}, {"type": "who"}, {"type": "info"}):
        await anonymous.send_json_to(command)
    assert (await expect_close(anonymous))["code"] == 4401
    assert await anonymous.receive_nothing(0.2)
    assert await alice.receive_nothing(0.2)
    await anonymous.disconnect()
    await alice.disconnect()


@pytest.mark.parametrize(
    "cookie", [b"sessionid=forged0123456789forged0123456789", b"sessionid=", b"sessionid=\xff"]
)
async def test_a_forged_session_cookie_is_anonymous(users: None, cookie: bytes) -> None:
    comm = communicator("/ws/auth/", cookie=cookie)
    assert (await comm.connect())[0]
    assert (await expect_close(comm))["code"] == 4401
    await comm.disconnect()


async def test_the_cookie_of_a_logged_out_session_opens_no_lobby(users: None) -> None:
    alice = await log_in("alice")
    cookie = session_cookie(alice)
    await alice.post(reverse("logout"))
    comm = communicator("/ws/auth/", cookie=cookie)  # replayed after logout
    assert (await comm.connect())[0]
    assert (await expect_close(comm))["code"] == 4401
    await comm.disconnect()
    strict = communicator("/ws/auth/strict/", cookie=cookie)
    assert not (await strict.connect())[0]
    await strict.disconnect()


# ------------------------------------------------------------------ secrets stay secret


def secrets_of(client: Client) -> dict[str, str]:
    """What must never be seen again outside the browser that holds it."""
    return {
        "session key": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "CSRF token": client.cookies[settings.CSRF_COOKIE_NAME].value,
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
    }


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets found in a text."""
    return [name for name, secret in secrets.items() if secret and secret in text]


async def test_no_secret_in_a_log_record_or_a_reply(
    users: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client()
    client.get(reverse("login"))  # sets the CSRF cookie
    await asyncio.to_thread(
        client.post, reverse("login"), {"username": "alice", "password": WRONG_PASSWORD}
    )
    await asyncio.to_thread(
        client.post, reverse("login"), {"username": "alice", "password": PASSWORD}
    )
    secrets = secrets_of(client)
    cookie = f"sessionid={secrets['session key']}; csrftoken={secrets['CSRF token']}".encode()

    comm = communicator("/ws/auth/", cookie=cookie, subprotocols=["showcase.v1"])
    assert (await comm.connect())[0]
    replies: list[dict] = []

    async def read_all() -> None:
        # receive_nothing, not a receive_output timeout: that would cancel the consumer.
        while not await comm.receive_nothing(0.2):
            replies.append(await comm.receive_output())

    await read_all()  # hello, resume, presence
    frames = [
        '{"type": "info"}',
        '{"type": "who"}',
        '{"type": "chat", "text": "hello"}',
        f'{{"type": "{secrets["session key"][:5]}"}}',  # an error that quotes its input
        "{not json",
        '{"type": "chat", "text": ' + json.dumps("x" * 600) + "}",
    ]
    for frame in frames:
        await comm.send_to(text_data=frame)
        await read_all()
    await asyncio.to_thread(client.post, reverse("logout"))
    await read_all()
    await comm.disconnect()

    types = [json.loads(r["text"])["type"] if "text" in r else r["type"] for r in replies]
    assert types == ["hello", "resume", "presence", "info", "presence", "chat"] + ["error"] * 3 + [
        "websocket.close"
    ]
    assert replies[-1]["code"] == 4401
    for reply in replies:
        assert not leaks(json.dumps(reply), secrets), reply
    for record in caplog.records:
        line = logging.Formatter().format(record)
        assert not leaks(line, secrets), line


@pytest.fixture
def daphne_like_make_run(transactional_db: None) -> Iterator[ServerProcess]:
    env = server_env(
        DEBUG="1",  # as `make run` serves it
        **database_env(settings.DATABASES["default"]),
        FAST_PASSWORD_HASHER="1",
    )
    with running(start_daphne(env, name="security")) as server:
        yield server


async def test_no_secret_in_a_real_servers_log(
    users: None, daphne_like_make_run: ServerProcess
) -> None:
    server = daphne_like_make_run
    alice = FormClient(server)
    # A failed login first: the wrong password must not be logged either.
    await asyncio.to_thread(alice.opener.open, server.http_url + "/accounts/login/", timeout=10)
    status = await asyncio.to_thread(
        alice.post, "/accounts/login/", {"username": "alice", "password": WRONG_PASSWORD}
    )
    assert status == 200
    await asyncio.to_thread(alice.log_in, "alice")
    secrets = {
        "session key": alice.cookie("sessionid"),
        "CSRF token": alice.cookie("csrftoken"),
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
    }
    async with lobby(server, alice, query="?journal=security-test-journal-0001") as ws:
        seen = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)]  # hello, presence
        await ws.send(json.dumps({"type": "chat", "text": "hi"}))
        await ws.send("{not json")
        seen += [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)]
        with alice.opener.open(server.http_url + "/journal/security-test-journal-0001/") as feed:
            seen.append(feed.read().decode())
        await asyncio.to_thread(alice.log_out)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 4401
    for text in seen:
        assert not leaks(text, secrets), text
    log = server.log()
    assert re.search(r"WSCONNECT /ws/auth/", log), log  # the log did record the visit
    assert not leaks(log, secrets), log
