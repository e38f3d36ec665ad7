"""
Synchronous consumers, from raw ASGI events up to JSON.

Every handler here runs in a worker thread: Channels hands each message to asgiref's
thread-sensitive executor, one thread shared by all sync code in the process. That is why a
sync consumer may call the ORM directly, and why one slow handler delays every other sync
consumer in the same process. `QueuedSendMixin` lets `self.send` return without waiting for
the event loop when `SYNC_SEND = "queued"` (apps/core/consumers.py says when that pays).
"""

from typing import Any

from channels.consumer import SyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import JsonWebsocketConsumer, WebsocketConsumer

from apps.core import protocol
from apps.core.consumers import QueuedSendMixin
from apps.core.limits import Limiter


class SyncEchoConsumer(QueuedSendMixin, SyncConsumer):
    """Raw ASGI: each event is a dict, handled by the method named after its `type`."""

    def websocket_connect(self, event: dict[str, Any]) -> None:
        """The client asked for a handshake; it completes when we send `websocket.accept`."""
        self.limiter = Limiter("echo")
        self.send(
            {
                "type": "websocket.accept",
                "subprotocol": protocol.select_subprotocol(self.scope),
                # Uvicorn sends these on the handshake response; daphne ignores them.
                "headers": [(b"x-showcase-consumer", b"SyncEchoConsumer")],
            }
        )

    def websocket_receive(self, event: dict[str, Any]) -> None:
        """A message arrived: exactly one of `text` and `bytes` is set. Echo it in kind."""
        if refusal := self.limiter.check(event.get("text"), event.get("bytes")):
            self.send({"type": "websocket.close", "code": refusal.code, "reason": refusal.reason})
        elif event.get("text") is not None:
            self.send({"type": "websocket.send", "text": event["text"]})
        else:
            self.send({"type": "websocket.send", "bytes": event["bytes"]})

    def websocket_disconnect(self, event: dict[str, Any]) -> None:
        """The socket is gone; `event["code"]` says how. Without StopConsumer we would linger."""
        raise StopConsumer()


class SyncGenericEchoConsumer(QueuedSendMixin, WebsocketConsumer):
    """The generic consumer turns events into `connect`, `receive(text_data, bytes_data)`..."""

    def connect(self) -> None:
        """Accept, agreeing to the subprotocol if it was offered."""
        self.limiter = Limiter("echo")
        self.accept(protocol.select_subprotocol(self.scope))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Echo text as text and bytes as bytes."""
        if refusal := self.limiter.check(text_data, bytes_data):
            self.close(refusal.code, refusal.reason)
        elif text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)


class SyncJsonConsumer(QueuedSendMixin, JsonWebsocketConsumer):
    """JSON in, typed envelopes out: `receive_json` gets decoded objects."""

    def connect(self) -> None:
        """Accept, agreeing to the subprotocol if it was offered."""
        self.limiter = Limiter("json")
        self.accept(protocol.select_subprotocol(self.scope))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Decode, answering bad input with an error envelope instead of the base class's crash."""
        if refusal := self.limiter.check(text_data, bytes_data):
            self.close(refusal.code, refusal.reason)
            return
        try:
            self.receive_json(protocol.decode(text_data))
        except protocol.BadMessage as bad:
            self.send_json(bad.envelope)

    def receive_json(self, content: dict[str, Any]) -> None:
        """Act on one command: `echo`, `info` or `close`."""
        match content["type"]:
            case "echo":
                self.send_json({"type": "echo", "data": content.get("data")})
            case "info":
                self.send_json(protocol.info(self))
            case "close":
                self.close(*protocol.close_args(content))
            case _:
                raise protocol.unknown(content)
