"""
What the lobby's tests share: the demo password, logging in (through the login view in-process,
or through the HTML forms of a real server), and lobby sockets with that session's cookie.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, build_opener

from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

# Logging in and its cookie are every app's business: apps/core/tests/accounts.py.
from apps.core.tests.accounts import PASSWORD, log_in, session_cookie
from apps.core.tests.contract import communicator
from tools.servers import ServerProcess

__all__ = [
    "LOBBY",
    "PASSWORD",
    "FormClient",
    "connect",
    "join",
    "lobby",
    "log_in",
    "logged_in",
    "presence",
    "session_cookie",
]

LOBBY = "/ws/auth/"


async def connect(client: AsyncClient | None, path: str = LOBBY) -> WebsocketCommunicator:
    """A connected socket to `path`, with the client's session cookie (None: anonymous)."""
    comm = communicator(path, cookie=session_cookie(client) if client else None)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def join(client: AsyncClient, path: str = LOBBY) -> WebsocketCommunicator:
    """
    Connect and read the hello and the fresh socket's `resume` (with the recent chat it
    announces), leaving the presence message to the test.
    """
    comm = await connect(client, path)
    hello = await comm.receive_json_from()
    assert hello["type"] == "hello"
    resume = await comm.receive_json_from()
    assert (resume["type"], resume["after"]) == ("resume", None), resume
    for _ in range(resume["missed"]):
        assert (await comm.receive_json_from())["type"] == "chat"
    return comm


async def presence(comm: WebsocketCommunicator, within: float = 1) -> list[str]:
    """The users of the next message, which must be a `presence` envelope."""
    reply = await comm.receive_json_from(within)
    assert reply["type"] == "presence", reply
    return reply["users"]


class FormClient:
    """A cookie jar and urllib: logs in and out through the HTML forms, CSRF token and all."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.jar = CookieJar()
        self.opener = build_opener(HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        """The value of one of the jar's cookies."""
        return next(c.value for c in self.jar if c.name == name)

    def post(self, path: str, fields: dict[str, str]) -> int:
        """POST a form with the CSRF token; the final status, redirects followed."""
        data = urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        with self.opener.open(self.server.http_url + path, data, timeout=10) as response:
            return response.status

    def log_in(self, username: str) -> None:
        """Load the login form (for its CSRF cookie), then log in with the demo password."""
        with self.opener.open(self.server.http_url + "/accounts/login/", timeout=10) as page:
            assert re.search(rb'name="csrfmiddlewaretoken"', page.read())
        assert self.post("/accounts/login/", {"username": username, "password": PASSWORD}) == 200
        assert self.cookie("sessionid")

    def log_out(self) -> None:
        """Log out through the logout form's POST."""
        assert self.post("/accounts/logout/", {}) == 200

    def cookie_header(self) -> str:
        """Every cookie of the jar, as a `Cookie` header value."""
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


async def logged_in(server: ServerProcess, username: str) -> FormClient:
    """A FormClient logged in on this server (the blocking forms run in a thread)."""
    client = FormClient(server)
    await asyncio.to_thread(client.log_in, username)
    return client


@asynccontextmanager
async def lobby(
    server: ServerProcess, client: FormClient, query: str = ""
) -> AsyncIterator[ClientConnection]:
    """A lobby socket on this server, with this client's session cookie."""
    async with ws_connect(
        server.ws_url + LOBBY + query,
        origin=server.http_url,
        additional_headers={"Cookie": client.cookie_header()},
        open_timeout=5,
    ) as ws:
        yield ws
