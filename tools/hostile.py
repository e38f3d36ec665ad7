"""
Clients that misbehave on purpose, the way phones on bad networks do: they reset the TCP
connection mid-message, stop reading, fail the protocol while an echo is in flight, or give up
during the handshake.

They speak just enough RFC 6455 over a raw asyncio stream to do what a well-behaved client
library never would. Every behaviour ends with a TCP reset (SO_LINGER 0: the kernel sends RST
and drops whatever is unread), so the server never gets a goodbye. Tests and the chaos soak
(`python -m bench.soak --chaos`) use them; the server must stay quiet and alive.
"""

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable

HANDSHAKE_SECONDS = 10.0
# Bytes: set before connecting, so the window the client advertises stays this small.
RECEIVE_WINDOW = 4096

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


class HandshakeRefused(Exception):
    """The server answered the upgrade request with something other than 101."""


def frame(opcode: int, data: bytes, fin: bool = True) -> bytes:
    """One client frame (masked, as RFC 6455 requires of clients)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(data)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    # XOR with the repeated mask, through one big integer: fast enough for 256 KiB payloads.
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + masked


def upgrade_request(path: str, port: int, origin: str | None = None, cookie: str = "") -> bytes:
    """The HTTP request that asks for a WebSocket on `path`, from the site's own page by default."""
    origin = origin or f"http://127.0.0.1:{port}"
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: SO_LINGER on, timeout 0, so the kernel sends RST at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """
    A TCP connection with a small receive window, like a client on a slow link: whatever the
    server sends beyond a few KiB stays in the server's own buffers until the client reads.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_WINDOW)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def connect_raw(
    port: int, path: str, cookie: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a socket and complete the handshake; raise HandshakeRefused on anything but 101."""
    reader, writer = await open_raw(port)
    writer.write(upgrade_request(path, port, cookie=cookie))
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANDSHAKE_SECONDS)
    except TimeoutError:
        reset(writer)
        raise HandshakeRefused("no answer to the upgrade request") from None
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        reset(writer)
        raise HandshakeRefused(f"connection lost before the answer ({error!r})") from None
    if not head.startswith(b"HTTP/1.1 101"):
        reset(writer)
        raise HandshakeRefused(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return reader, writer


def payload(kind: str, size: int, number: int) -> bytes:
    """
    A text message of about `size` bytes that an endpoint of this kind answers: "echo" (pure
    echo), "json" (the JSON echo envelope) or "lobby" (a chat line, which the lobby broadcasts;
    its text is capped at 500 characters, and so is `size`).
    """
    if kind == "lobby":
        return b'{"type": "chat", "text": "%d %s"}' % (number, b"x" * min(size, 480))
    if kind == "json":
        return b'{"type": "echo", "data": "%d %s"}' % (number, b"x" * size)
    return b"%d %s" % (number, b"x" * size)


def large(kind: str) -> bytes:
    """
    6 MiB in messages of 60 KiB: more than the server's kernel can buffer for a client that
    reads nothing (Linux allows a socket 4 MiB at most by default), so the server's own
    buffers hold the rest of the echoes and it cannot finish closing the connection.
    """
    message = frame(TEXT, payload(kind, 60 * 1024, 0))
    return message * (6 * 1024 // 60)


def small(kind: str, count: int = 100) -> bytes:
    """Short messages, sent in one write: the application echoes them one by one."""
    return b"".join(frame(TEXT, payload(kind, 200, n)) for n in range(1, count + 1))


# ---------------------------------------------------------------------------- behaviours
# Each takes (port, path, kind, cookie) and returns once it has reset its socket; `kind` is
# what the endpoint speaks (see `payload`), `cookie` a session cookie for the lobby.


async def burst_then_reset(port: int, path: str, kind: str, cookie: str = "") -> None:
    """Send a burst of large messages, never read the echoes, then reset."""
    _, writer = await connect_raw(port, path, cookie)
    for n in range(20):
        writer.write(frame(TEXT, payload(kind, 32 * 1024, n)))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    reset(writer)


async def close_while_echoing(port: int, path: str, kind: str, cookie: str = "") -> None:
    """
    Send a burst and a close frame, reading nothing: the server takes the close while its
    application still echoes the burst, and it cannot finish closing the connection while
    echoes wait for a reader that never comes. Reset a moment later.
    """
    _, writer = await connect_raw(port, path, cookie)
    writer.write(large(kind))
    writer.write(small(kind) + frame(CLOSE, struct.pack("!H", 1000)))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await asyncio.sleep(0.3)
    reset(writer)


async def invalid_while_echoing(port: int, path: str, kind: str, cookie: str = "") -> None:
    """
    Send a burst and a text frame that is not UTF-8, reading nothing: the server fails the
    connection (1007) while the application still echoes the burst. Reset a moment later.
    """
    _, writer = await connect_raw(port, path, cookie)
    writer.write(large(kind))
    writer.write(small(kind) + frame(TEXT, b"\xff\xfe not utf-8"))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await asyncio.sleep(0.3)
    reset(writer)


async def send_past_close(
    port: int, path: str, kind: str, cookie: str = "", count: int = 100
) -> None:
    """
    Ask a JSON endpoint to close the socket and keep sending in the same write, never reading:
    the consumer closes, then meets the messages queued behind the command and answers each
    on a socket that is closing (its close frame awaits a reply that never comes). On other
    endpoints the burst alone, then the reset.
    """
    _, writer = await connect_raw(port, path, cookie)
    if kind == "json":
        writer.write(frame(TEXT, b'{"type": "close", "code": 4000}'))
    writer.write(small(kind, count))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await asyncio.sleep(0.3)
    reset(writer)


async def stop_reading(port: int, path: str, kind: str, cookie: str = "") -> None:
    """
    Keep sending large messages while never reading, until the echoes have filled both socket
    buffers and the server holds the rest; then say goodbye and reset before reading it.
    """
    _, writer = await connect_raw(port, path, cookie)
    message = frame(TEXT, payload(kind, 64 * 1024, 0))
    for _ in range(60):
        writer.write(message)
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except (TimeoutError, ConnectionError):
            break  # the server stopped reading too: both directions are full
    writer.write(frame(CLOSE, struct.pack("!H", 1000)))
    await asyncio.sleep(0.1)
    reset(writer)


async def reset_mid_message(port: int, path: str, kind: str, cookie: str = "") -> None:
    """Send one whole message and half of the next, then reset."""
    _, writer = await connect_raw(port, path, cookie)
    writer.write(frame(TEXT, payload(kind, 1024, 0)))
    half = frame(TEXT, payload(kind, 8 * 1024, 1))
    writer.write(half[: len(half) // 2])
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    reset(writer)


async def reset_mid_handshake(port: int, path: str, kind: str, cookie: str = "") -> None:
    """Send the upgrade request and reset before the server's answer can arrive."""
    _, writer = await open_raw(port)
    writer.write(upgrade_request(path, port, cookie=cookie))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    reset(writer)


async def half_request(port: int, path: str, kind: str, cookie: str = "") -> None:
    """Send half of the upgrade request, then reset."""
    _, writer = await open_raw(port)
    request = upgrade_request(path, port, cookie=cookie)
    writer.write(request[: len(request) // 2])
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    reset(writer)


Behaviour = Callable[[int, str, str, str], Awaitable[None]]

BEHAVIOURS: dict[str, Behaviour] = {
    "burst then reset": burst_then_reset,
    "close while echoing": close_while_echoing,
    "invalid UTF-8 while echoing": invalid_while_echoing,
    "send past the close": send_past_close,
    "stop reading": stop_reading,
    "reset mid-message": reset_mid_message,
    "reset mid-handshake": reset_mid_handshake,
    "half a request": half_request,
}
