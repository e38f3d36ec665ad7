"""
The showcase as `config.asgi` serves it, plus two probe sockets for the server matrix only.

The browser suite's server-differences tests (`e2e/test_servers.py`) need two things no
showcase consumer does on purpose: close with any code the test names, and say which client
address the server put in the scope. Everything else goes to the showcase untouched.

- `/ws/probe/close/<code>/`: accept, then close with that code and the reason "probe". If the
  server refuses the code (daphne raises on 1001-2999), the refusal is caught and the socket
  closes with 4500 instead, so the browser can tell, and no traceback reaches the log.
- `/ws/probe/client/`: accept, send `scope["client"]` as JSON text, then echo nothing.

Never serve this module outside the tests.
"""

import json
import re
from typing import Any

from config.asgi import application as showcase

CLOSE = re.compile(r"/ws/probe/close/(\d+)/")
REFUSED = 4500


async def close_probe(code: int, receive: Any, send: Any) -> None:
    """Accept, close with `code`; 4500 if the server would not send it."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    try:
        await send({"type": "websocket.close", "code": code, "reason": "probe"})
    except Exception:  # whatever the server raises, the browser must learn of it
        await send({"type": "websocket.close", "code": REFUSED, "reason": "refused"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def client_probe(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, tell the browser its address as the server reported it, wait for the end."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(scope.get("client"))})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Route the two probes; hand everything else to the showcase."""
    if scope["type"] == "websocket":
        if match := CLOSE.fullmatch(scope["path"]):
            return await close_probe(int(match[1]), receive, send)
        if scope["path"] == "/ws/probe/client/":
            return await client_probe(scope, receive, send)
    return await showcase(scope, receive, send)
