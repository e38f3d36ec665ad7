"""
Synchronous consumers, from raw ASGI events up to JSON.

Every handler here runs in a worker thread: Channels hands each message to asgiref's
thread-sensitive executor, one thread shared by all sync code in the process. That is why a
sync consumer may call the ORM directly, and why one slow handler delays every other sync
consumer in the same process (the JSON consumer's `block` command shows it).
`QueuedSendMixin` lets `self.send` return without waiting for the event loop when
`SYNC_SEND = "queued"` (apps/core/consumers.py says when that pays).

Channels also calls `close_old_connections()` before and after each handler, as Django does
around a request: a connection that broke, or outlived `CONN_MAX_AGE`, is never reused.
"""

import time
from typing import Any

from channels.consumer import SyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import JsonWebsocketConsumer, WebsocketConsumer
from django.db import DatabaseError

from apps.core import protocol
from apps.core.consumers import QueuedSendMixin
from apps.core.limits import BlockBudget, Limiter
from apps.core.models import MAX_NOTE_CHARS, Note
from apps.core.sessions import SyncSessionEndedMixin


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


class SyncJsonConsumer(QueuedSendMixin, SyncSessionEndedMixin, JsonWebsocketConsumer):
    """
    JSON in, typed envelopes out: `receive_json` gets decoded objects. It acts as the logged-in
    user (notes), so it closes 4401 when that user logs out (SyncSessionEndedMixin).
    """

    def connect(self) -> None:
        """Accept, agreeing to the subprotocol if it was offered."""
        self.limiter = Limiter("json")
        self.block_budget = BlockBudget()
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
        except DatabaseError as error:
            self.send_json(protocol.database_error(error))

    def receive_json(self, content: dict[str, Any]) -> None:
        """Act on one command: `echo`, `info`, `close`, `note`, `notes` or `block`."""
        match content["type"]:
            case "echo":
                self.send_json({"type": "echo", "data": content.get("data")})
            case "info":
                self.send_json(protocol.info(self))
            case "close":
                self.close(*protocol.close_args(content))
            case "note":
                protocol.via(content, "orm")
                self.save_note(protocol.note_text(content, MAX_NOTE_CHARS))
            case "notes":
                protocol.via(content, "orm")
                self.latest_notes()
            case "block":
                protocol.on_loop(content, allowed=False)
                self.block(protocol.block_seconds(content))
            case _:
                raise protocol.unknown(content)

    def save_note(self, text: str) -> None:
        """The ORM, called directly: this handler already runs in the thread Django needs."""
        started = time.perf_counter()
        note = Note.objects.create(text=text, author=protocol.author(self.scope))
        self.send_json(
            {"type": "note", **note.as_dict(), "via": "orm", "ms": protocol.ms_since(started)}
        )

    def latest_notes(self) -> None:
        """A plain queryset, evaluated in this thread like in any view."""
        started = time.perf_counter()
        notes = [
            note.as_dict() for note in Note.objects.select_related("author")[: protocol.NOTES_SHOWN]
        ]
        self.send_json(
            {"type": "notes", "notes": notes, "via": "orm", "ms": protocol.ms_since(started)}
        )

    def block(self, seconds: float) -> None:
        """
        `time.sleep` in the process's one sync thread: until it returns, no other sync
        consumer of this process runs a handler, so their sockets' echoes wait.
        """
        if not self.block_budget.spend(seconds):
            raise protocol.BadMessage("block_limited", self.block_budget.describe())
        started, clock = time.time(), time.perf_counter()
        time.sleep(seconds)
        waited = time.perf_counter() - clock
        self.send_json(
            protocol.block_reply(
                seconds, "time.sleep in the sync thread", started, time.time(), waited
            )
        )
