"""
Asynchronous consumers, from raw ASGI events up to JSON.

Every handler here runs on the server's event loop: nothing may block, and the ORM is reached
through `database_sync_to_async` (or Django's async ORM methods). In exchange there is no
thread hop per message, so the same echo costs less than in the sync style. That last part is
true only with `NoDatabaseMixin`: stock Channels hops to a thread before every handler to tidy
database connections, which these consumers never open (docs/benchmarks.md has the figures).
"""

from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

from apps.core import protocol
from apps.core.consumers import NoDatabaseMixin
from apps.core.limits import Limiter


class AsyncEchoConsumer(NoDatabaseMixin, AsyncConsumer):
    """Raw ASGI: each event is a dict, handled by the method named after its `type`."""

    async def websocket_connect(self, event: dict[str, Any]) -> None:
        """The client asked for a handshake; it completes when we send `websocket.accept`."""
        self.limiter = Limiter("echo")
        await self.send(
            {
                "type": "websocket.accept",
                "subprotocol": protocol.select_subprotocol(self.scope),
                # Uvicorn sends these on the handshake response; daphne ignores them.
                "headers": [(b"x-showcase-consumer", b"AsyncEchoConsumer")],
            }
        )

    async def websocket_receive(self, event: dict[str, Any]) -> None:
        """A message arrived: exactly one of `text` and `bytes` is set. Echo it in kind."""
        if refusal := self.limiter.check(event.get("text"), event.get("bytes")):
            await self.send(
                {"type": "websocket.close", "code": refusal.code, "reason": refusal.reason}
            )
        elif event.get("text") is not None:
            await self.send({"type": "websocket.send", "text": event["text"]})
        else:
            await self.send({"type": "websocket.send", "bytes": event["bytes"]})

    async def websocket_disconnect(self, event: dict[str, Any]) -> None:
        """The socket is gone; `event["code"]` says how. Without StopConsumer we would linger."""
        raise StopConsumer()


class AsyncGenericEchoConsumer(NoDatabaseMixin, AsyncWebsocketConsumer):
    """The generic consumer turns events into `connect`, `receive(text_data, bytes_data)`..."""

    async def connect(self) -> None:
        """Accept, agreeing to the subprotocol if it was offered."""
        self.limiter = Limiter("echo")
        await self.accept(protocol.select_subprotocol(self.scope))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Echo text as text and bytes as bytes."""
        if refusal := self.limiter.check(text_data, bytes_data):
            await self.close(refusal.code, refusal.reason)
        elif text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)


class AsyncJsonConsumer(NoDatabaseMixin, AsyncJsonWebsocketConsumer):
    """JSON in, typed envelopes out: `receive_json` gets decoded objects."""

    async def connect(self) -> None:
        """Accept, agreeing to the subprotocol if it was offered."""
        self.limiter = Limiter("json")
        await self.accept(protocol.select_subprotocol(self.scope))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Decode, answering bad input with an error envelope instead of the base class's crash."""
        if refusal := self.limiter.check(text_data, bytes_data):
            await self.close(refusal.code, refusal.reason)
            return
        try:
            await self.receive_json(protocol.decode(text_data))
        except protocol.BadMessage as bad:
            await self.send_json(bad.envelope)

    async def receive_json(self, content: dict[str, Any]) -> None:
        """Act on one command: `echo`, `info` or `close`."""
        match content["type"]:
            case "echo":
                await self.send_json({"type": "echo", "data": content.get("data")})
            case "info":
                await self.send_json(protocol.info(self))
            case "close":
                await self.close(*protocol.close_args(content))
            case _:
                raise protocol.unknown(content)
