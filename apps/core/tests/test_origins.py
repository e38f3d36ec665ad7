"""
Same-origin for every socket and every event stream, as strict as Django's CSRF on forms
(apps/core/origins.py): scheme, host and port must be the request's own, or trusted.

Every refused case here was accepted by `AllowedHostsOriginValidator` (issue 21: another port,
another scheme, with the visitor's cookie); each handshake carries a logged-in session, so only
the origin check can be what refuses it.
"""

from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator

from apps.auth_ws.presence import close_presence
from apps.core.origins import own_origin
from apps.core.tests.accounts import create_users, log_in, session_cookie
from apps.core.tests.contract import HOST, ORIGIN, communicator
from apps.jobs import worker
from config.asgi import application, websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

# Every socket path an app serves (the catch-all, last, refuses every handshake anyway).
SOCKET_PATHS = ["/" + str(route.pattern) for route in websocket_urlpatterns[:-1]]
FOREIGN = [
    None,
    b"null",
    b"http://127.0.0.1:9999",  # another port of the same host: same site, another origin
    b"https://127.0.0.1:8000",  # another scheme
    b"http://127.0.0.1",  # port 80 is another port
    b"http://localhost:8000",  # another name for the host is another origin
    b"http://127.0.0.1.evil.test:8000",  # look-alikes
    b"http://evil-127.0.0.1:8000",
    b"http://127.0.0.1:8000.evil.test",
    b"http://127.0.0.1:99999",  # malformed: refused, not a traceback
    b"http://127.0.0.1:port",
]


@pytest.fixture(autouse=True)
async def _clean() -> AsyncIterator[None]:
    yield
    await worker.stop_in_process_worker()
    await close_presence()
    await get_channel_layer().flush()


@pytest.fixture
async def alice(transactional_db: None) -> bytes:
    """alice's session cookie: a handshake refused with it was refused for its origin."""
    await sync_to_async(create_users)("alice")
    return session_cookie(await log_in("alice"))


def test_every_socket_path_is_checked() -> None:
    assert SOCKET_PATHS == [
        "/ws/sc/",
        "/ws/sc/generic/",
        "/ws/sc/json/",
        "/ws/ac/",
        "/ws/ac/generic/",
        "/ws/ac/json/",
        "/ws/auth/",
        "/ws/auth/strict/",
        "/ws/jobs/",
    ]


@pytest.mark.parametrize("path", SOCKET_PATHS)
async def test_a_foreign_origin_is_refused_with_the_visitors_cookie_and_the_own_accepted(
    alice: bytes, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    for origin in FOREIGN:
        caplog.clear()
        comm = communicator(path, origin=origin, cookie=alice)
        # Refused before accept (close 1000 to the communicator): daphne answers HTTP 403.
        assert await comm.connect() == (False, 1000), origin
        await comm.disconnect()
        refusals = [r for r in caplog.records if r.name == "apps.core.origins"]
        assert [r.exc_info for r in refusals] == [None], origin  # one line, no traceback
    comm = communicator(path, origin=ORIGIN, cookie=alice)
    assert (await comm.connect())[0]
    await comm.disconnect()


async def test_a_host_not_in_allowed_hosts_has_no_own_origin(alice: bytes) -> None:
    # DNS rebinding: evil.test resolves to this server, and its page's origin matches the Host
    # header it sent. Django's host check, which the origin check goes through, refuses it.
    comm = communicator(
        "/ws/ac/json/", origin=b"http://evil.test:8000", cookie=alice, host=b"evil.test:8000"
    )
    assert not (await comm.connect())[0]
    await comm.disconnect()


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"https://showcase.example", True),
        (b"https://chat.showcase.example", False),
        (b"http://showcase.example", False),
        (b"https://showcase.example:8443", False),
        (b"https://a.sub.example.org", True),  # "https://*.sub.example.org"
        (b"https://sub.example.org", True),
        (b"http://a.sub.example.org", False),
        (b"https://a.sub.example.org:444", False),
    ],
)
async def test_csrf_trusted_origins_are_trusted_by_scheme_host_and_port(
    alice: bytes, settings, origin: bytes, accepted: bool
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://showcase.example", "https://*.sub.example.org"]
    comm = communicator("/ws/ac/json/", origin=origin, cookie=alice)
    assert (await comm.connect())[0] is accepted
    await comm.disconnect()


@pytest.mark.parametrize(
    ("forwarded_proto", "origin", "accepted"),
    [
        (b"https", b"https://showcase.example", True),
        (b"https", b"http://showcase.example", False),
        (b"http", b"https://showcase.example", False),
        (None, b"https://showcase.example", False),  # no proxy said so: the socket is ws://
        (None, b"http://showcase.example", True),
    ],
)
async def test_behind_a_tls_proxy_the_origin_is_https(
    alice: bytes, settings, forwarded_proto: bytes | None, origin: bytes, accepted: bool
) -> None:
    # HTTPS=1 (config/settings.py): nginx terminates TLS and says so in X-Forwarded-Proto,
    # which SECURE_PROXY_SSL_HEADER trusts, for forms and (here) for sockets alike.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["showcase.example"]
    headers = [(b"x-forwarded-proto", forwarded_proto)] if forwarded_proto else []
    comm = communicator(
        "/ws/ac/json/", origin=origin, cookie=alice, headers=headers, host=b"showcase.example"
    )
    assert (await comm.connect())[0] is accepted
    await comm.disconnect()


def test_own_origin_follows_the_scheme_of_the_socket() -> None:
    headers = [(b"host", HOST)]
    assert own_origin({"type": "websocket", "scheme": "ws", "headers": headers}) == ORIGIN.decode()
    secure = {"type": "websocket", "scheme": "wss", "headers": headers}
    assert own_origin(secure) == "https://127.0.0.1:8000"
    assert own_origin({"type": "http", "scheme": "http", "headers": headers}) == ORIGIN.decode()
    assert own_origin({"type": "websocket", "headers": [(b"host", b"evil.test")]}) is None


# ------------------------------------------------------------------ event streams


async def stream_status(path: str, headers: list[tuple[bytes, bytes]], cookie: bytes) -> int:
    """The status an event stream answers a GET with these headers."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"host", HOST), (b"cookie", cookie), *headers],
    }
    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(2)
    await app.send_input({"type": "http.disconnect"})
    await app.wait(2)
    return start["status"]


@pytest.mark.parametrize("path", ["/sse/ticks/", "/sse/lobby/"])
async def test_event_streams_are_for_the_sites_own_pages(alice: bytes, path: str) -> None:
    cases = [
        ([], 200),  # a page's own EventSource sends no Origin
        ([(b"sec-fetch-site", b"same-origin")], 200),
        ([(b"origin", ORIGIN)], 200),
        ([(b"origin", b"http://127.0.0.1:9999")], 403),
        ([(b"origin", b"https://127.0.0.1:8000")], 403),
        ([(b"origin", b"null")], 403),
        ([(b"sec-fetch-site", b"same-site")], 403),  # another port, in a no-cors request
        ([(b"sec-fetch-site", b"cross-site")], 403),
    ]
    assert [await stream_status(path, headers, alice) for headers, _ in cases] == [
        status for _, status in cases
    ]
