"""
The protections of issue 21 through `make cluster` (nginx in front of two daphne processes and
Redis): a page of another origin gets nowhere, logging out reaches every socket and stream of
the user on both processes, and nginx cuts a client that trickles its request headers.
"""

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from playwright.sync_api import BrowserContext
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from apps.core.tests.databases import on, postgres_alias
from e2e.cluster.helpers import log_in_over_http
from e2e.foreign import assert_nothing_reached, foreign_outcomes
from tools.servers import Cluster

pytestmark = on(postgres_alias(), transaction=True)

# deploy/nginx-site.conf: client_header_timeout.
HEADER_SECONDS = 5


def test_a_page_on_another_port_gets_nowhere_through_nginx(
    new_context: Callable[..., BrowserContext], cluster: Cluster, foreign_site: str, users: None
) -> None:
    context = new_context()
    log_in_over_http(context, "alice")
    assert_nothing_reached(foreign_outcomes(context.new_page(), foreign_site, cluster.http_url))


# ------------------------------------------------------------------ logout, on both processes


def cookie_header(context: BrowserContext) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())


class Stream:
    """
    A raw GET of an event stream through nginx, read event by event. HTTP/1.0, so nginx sends
    the body as it comes, without chunked encoding, and ends it by closing.
    """

    def __init__(self, cluster: Cluster, path: str, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
        request = (
            f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{cluster.port}\r\nCookie: {cookie}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        head = self.read_until(b"\r\n\r\n", within=10)
        assert head.startswith(b"HTTP/1.1 200"), head

    def read_until(self, end: bytes, within: float) -> bytes:
        """Bytes up to and including `end`."""
        deadline = time.monotonic() + within
        while end not in self.buffer:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"the stream ended before {end!r}: {self.buffer[-200:]!r}")
            self.buffer += data
        found, self.buffer = self.buffer.split(end, 1)
        return found + end

    def event(self, name: str, within: float = 10) -> dict:
        """The data of the next event of this name (other events and comments skipped)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            block = self.read_until(b"\n\n", deadline - time.monotonic()).decode()
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if fields.get("event") == name:
                return json.loads(fields["data"])
        raise AssertionError(f"no {name} event within {within} s")


def closed_code(ws: ClientConnection) -> int:
    """Read what is still queued until the server's close; return its code."""
    try:
        while True:
            ws.recv(timeout=10)
    except ConnectionClosed as closed:
        return closed.rcvd.code
    except TimeoutError:
        raise AssertionError("the socket stayed open") from None


@pytest.fixture
def alice(new_context: Callable[..., BrowserContext], users: None) -> Iterator[BrowserContext]:
    context = new_context()
    log_in_over_http(context, "alice")
    yield context


def test_logout_reaches_every_socket_and_stream_of_the_user_on_both_processes(
    alice: BrowserContext, cluster: Cluster
) -> None:
    cookie = cookie_header(alice)
    paths = ["/ws/auth/", "/ws/sc/json/", "/ws/ac/json/", "/ws/jobs/"]
    with ExitStack() as stack:
        sockets, processes = [], set()
        for path in paths:
            for _ in range(2):  # nginx alternates: one on each process, as a rule
                ws = stack.enter_context(
                    ws_connect(
                        cluster.ws_url + path,
                        origin=cluster.http_url,
                        additional_headers={"Cookie": cookie},
                    )
                )
                ws.send(json.dumps({"type": "info"}))
                while (reply := json.loads(ws.recv(timeout=10)))["type"] != "info":
                    pass  # the lobby's hello and presence, the jobs socket's hello
                assert reply["user"] == "alice"
                processes.add(reply["process"])
                sockets.append((path, ws))
        assert processes == {cluster.pid(name) for name in cluster.daphnes}
        streams = [Stream(cluster, "/sse/lobby/", cookie) for _ in range(2)]
        for stream in streams:
            assert stream.event("hello")["user"] == "alice"

        token = next(c["value"] for c in alice.cookies() if c["name"] == "csrftoken")
        response = alice.request.post(
            "/accounts/logout/", form={"csrfmiddlewaretoken": token}, max_redirects=0
        )
        assert response.status == 302
        for path, ws in sockets:
            assert closed_code(ws) == 4401, path
        for stream in streams:
            assert stream.event("bye") == {"reason": "logged out"}
            stream.sock.close()


# ------------------------------------------------------------------ slow handshakes


def test_nginx_cuts_a_client_that_trickles_its_headers(cluster: Cluster) -> None:
    # Issue 21: 200 handshakes that each sent a header line every 2 s were all still open on
    # daphne after 26 s. nginx gives the whole request HEADER_SECONDS, however it trickles.
    clients = []
    for _ in range(20):
        client = socket.create_connection(("127.0.0.1", cluster.port), timeout=5)
        client.sendall(b"GET /ws/auth/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        clients.append(client)
    started = time.monotonic()
    closed_after: dict[int, float] = {}
    line = 0
    while len(closed_after) < len(clients) and time.monotonic() - started < 4 * HEADER_SECONDS:
        line += 1
        for n, client in enumerate(clients):
            if n in closed_after:
                continue
            try:
                client.sendall(f"X-Trickle-{line}: {'x' * 8}\r\n".encode())
                client.settimeout(0.05)
                if client.recv(1024) == b"":
                    closed_after[n] = time.monotonic() - started
            except TimeoutError:
                pass  # still open: nginx is waiting for the rest of the headers
            except OSError:
                closed_after[n] = time.monotonic() - started
        # Meanwhile the site serves everyone else.
        with socket.create_connection(("127.0.0.1", cluster.port), timeout=5) as other:
            other.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{cluster.port}\r\n\r\n".encode())
            assert other.recv(12) == b"HTTP/1.1 200"
        # A line a second, as a slow-loris client would: the pace is the attack itself.
        time.sleep(1)
    for client in clients:
        client.close()
    assert len(closed_after) == len(clients), "nginx left trickling clients open"
    assert max(closed_after.values()) < HEADER_SECONDS + 4, closed_after
    assert min(closed_after.values()) > HEADER_SECONDS - 1.5, closed_after
