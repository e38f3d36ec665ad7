"""Django's HTTP handler, cancelled mid-request as daphne's shutdown does (core.handlers)."""

import asyncio
import gc
from typing import Any

import pytest

from apps.core.handlers import get_asgi_application


async def test_a_request_cancelled_mid_view_leaves_no_unread_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = get_asgi_application()
    view_started = asyncio.Event()

    async def slow_view(request: Any) -> Any:
        view_started.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(handler, "run_get_response", slow_view)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "http.request", "body": b"", "more_body": False})
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/journal/x/",
        "raw_path": b"/journal/x/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def send(message: dict[str, Any]) -> None:
        pass

    loop = asyncio.get_running_loop()
    unread: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unread.append(context))
    try:
        request = asyncio.ensure_future(handler(scope, inbox.get, send))
        await asyncio.wait_for(view_started.wait(), 5)
        request.cancel()  # the server's shutdown
        with pytest.raises(asyncio.CancelledError):
            await request
        await inbox.put({"type": "http.disconnect"})  # the client's connection then closes
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()  # an exception nobody read is reported when its task is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [context["message"] for context in unread] == []
