"""
Asynchronous consumers, from raw ASGI events up to JSON.

Every handler here runs on the server's event loop: nothing may block, and the ORM is reached
through Django's async ORM methods (`acreate`, `async for`) or a `database_sync_to_async`
function. In exchange there is no thread hop per message, so the same echo costs less than in
the sync style. That last part is true only with `NoDatabaseMixin`: stock Channels hops to a
thread before every handler to tidy database connections (`aclose_old_connections`).
The raw and generic echoes never touch the database and use the mixin; the JSON consumer
saves and reads notes, so it keeps the stock dispatch and pays the hop (docs/benchmarks.md
has the figures for both).
"""

import asyncio
import time
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DatabaseError

from apps.core import protocol
from apps.core.consumers import NoDatabaseMixin
from apps.core.limits import BlockBudget, Limiter
from apps.core.models import MAX_NOTE_CHARS, Note
from apps.core.sessions import SessionEndedMixin


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


class AsyncJsonConsumer(SessionEndedMixin, AsyncJsonWebsocketConsumer):
    """
    JSON in, typed envelopes out: `receive_json` gets decoded objects. It acts as the logged-in
    user (notes), so it closes 4401 when that user logs out (SessionEndedMixin).
    """

    # No NoDatabaseMixin here: the async ORM runs its queries in the thread-sensitive thread,
    # and the stock dispatch's `aclose_old_connections()` before each handler is what closes
    # that thread's connection once it broke or outlived CONN_MAX_AGE.

    async def connect(self) -> None:
        """Accept, agreeing to the subprotocol if it was offered."""
        self.limiter = Limiter("json")
        self.block_budget = BlockBudget()
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
        except DatabaseError as error:
            await self.send_json(protocol.database_error(error))

    async def receive_json(self, content: dict[str, Any]) -> None:
        """Act on one command: `echo`, `info`, `close`, `note`, `notes`, `block`, `notes.unsafe`."""
        match content["type"]:
            case "echo":
                await self.send_json({"type": "echo", "data": content.get("data")})
            case "info":
                await self.send_json(protocol.info(self))
            case "close":
                await self.close(*protocol.close_args(content))
            case "note":
                way = protocol.via(content, "async_orm", "database_sync_to_async")
                await self.save_note(protocol.note_text(content, MAX_NOTE_CHARS), way)
            case "notes":
                way = protocol.via(content, "async_orm", "database_sync_to_async")
                await self.latest_notes(way)
            case "block":
                on_loop = protocol.on_loop(content, allowed=True)
                await self.block(protocol.block_seconds(content), on_loop)
            case "notes.unsafe":
                await self.latest_notes_unsafe()
            case _:
                raise protocol.unknown(content)

    async def save_note(self, text: str, way: str) -> None:
        """The async ORM (`acreate`), or a `database_sync_to_async` function."""
        started = time.perf_counter()
        if way == "async_orm":
            note = await Note.objects.acreate(text=text, author=protocol.author(self.scope))
        else:
            note = await self.create_note_in_thread(text)
        await self.send_json(
            {"type": "note", **note.as_dict(), "via": way, "ms": protocol.ms_since(started)}
        )

    async def latest_notes(self, way: str) -> None:
        """`async for` over a queryset, or a `database_sync_to_async` function."""
        started = time.perf_counter()
        if way == "async_orm":
            queryset = Note.objects.select_related("author")[: protocol.NOTES_SHOWN]
            notes = [note.as_dict() async for note in queryset]
        else:
            notes = await self.latest_notes_in_thread()
        await self.send_json(
            {"type": "notes", "notes": notes, "via": way, "ms": protocol.ms_since(started)}
        )

    @database_sync_to_async
    def create_note_in_thread(self, text: str) -> Note:
        """Sync ORM code, run in the thread-sensitive thread; connections tidied around it."""
        return Note.objects.create(text=text, author=protocol.author(self.scope))

    @database_sync_to_async
    def latest_notes_in_thread(self) -> list[dict[str, Any]]:
        """The same queryset as the sync consumer's, evaluated in that thread."""
        queryset = Note.objects.select_related("author")[: protocol.NOTES_SHOWN]
        return [note.as_dict() for note in queryset]

    async def block(self, seconds: float, on_loop: bool) -> None:
        """
        `await asyncio.sleep`: this handler waits, every other socket goes on. With `on_loop`,
        the mistake on purpose: `time.sleep` on the event loop stalls every socket of the
        process, sync ones included (their messages reach the thread through the loop).
        """
        if not self.block_budget.spend(seconds):
            raise protocol.BadMessage("block_limited", self.block_budget.describe())
        started, clock = time.time(), time.perf_counter()
        if on_loop:
            time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is what this shows
            how = "time.sleep on the event loop"
        else:
            await asyncio.sleep(seconds)
            how = "await asyncio.sleep"
        waited = time.perf_counter() - clock
        await self.send_json(protocol.block_reply(seconds, how, started, time.time(), waited))

    async def latest_notes_unsafe(self) -> None:
        """
        The mistake on purpose: a plain queryset evaluated on the event loop. Django refuses
        before it touches the database, raising SynchronousOnlyOperation.
        """
        try:
            notes = [note.as_dict() for note in Note.objects.all()[: protocol.NOTES_SHOWN]]
        except SynchronousOnlyOperation as error:
            raise protocol.BadMessage(
                "synchronous_only_operation",
                f"{error} The ORM was called on the event loop: use the async ORM "
                "(acreate, async for) or a database_sync_to_async function.",
            ) from None
        await self.send_json({"type": "notes", "notes": notes, "via": "unsafe"})
