"""
The ASGI application the benchmarks serve: the project as it is, plus bench-only routes.

`/ws/...` goes to `config.asgi.application` untouched (origin check, auth, journal, limits).
`/bench/...` goes to references measured beside it, with no middleware at all:

- `/bench/asgi/`: a bare ASGI echo, no Django and no Channels (the server's ceiling);
- `/bench/<style>/`: minimal Channels consumers, one per style of the project's endpoints;
- `/bench/nodb/<style>/`: the async ones again with `NoDatabaseMixin` (the optimisation);
- `/bench/queued/<style>/`: the sync ones again with `QueuedSendMixin` (the sync optimisation);
- `/bench/fanout/` and `/bench/fanout/nodb/`: lobby-style broadcast through the channel layer;
- `/bench/db/thread-pool/`, `/bench/db/new-thread/`: the ORM from threads that Channels does
  not manage (`python -m bench.connections` counts the database connections they leave).
"""

import threading
from typing import Any

from asgiref.sync import sync_to_async
from channels.consumer import AsyncConsumer, SyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels.routing import URLRouter
from django.db import DatabaseError
from django.urls import path

from apps.core.consumers import NoDatabaseMixin, QueuedSendMixin

# Sets Django up; the imports above load no models, so they may come first.
from config.asgi import application as project

FANOUT_GROUP = "bench-fanout"


async def bare_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket echo in plain ASGI: what the server costs with nothing on top."""
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
        else:
            return


class RawSync(SyncConsumer):
    """Bare SyncConsumer echo."""

    def websocket_connect(self, event: dict[str, Any]) -> None:
        """Accept."""
        self.send({"type": "websocket.accept"})

    def websocket_receive(self, event: dict[str, Any]) -> None:
        """Echo in kind."""
        if event.get("text") is not None:
            self.send({"type": "websocket.send", "text": event["text"]})
        else:
            self.send({"type": "websocket.send", "bytes": event["bytes"]})

    def websocket_disconnect(self, event: dict[str, Any]) -> None:
        """Stop."""
        raise StopConsumer()


class RawAsync(AsyncConsumer):
    """Bare AsyncConsumer echo."""

    async def websocket_connect(self, event: dict[str, Any]) -> None:
        """Accept."""
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, event: dict[str, Any]) -> None:
        """Echo in kind."""
        if event.get("text") is not None:
            await self.send({"type": "websocket.send", "text": event["text"]})
        else:
            await self.send({"type": "websocket.send", "bytes": event["bytes"]})

    async def websocket_disconnect(self, event: dict[str, Any]) -> None:
        """Stop."""
        raise StopConsumer()


class GenericSync(WebsocketConsumer):
    """Bare WebsocketConsumer echo."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Echo in kind."""
        self.send(text_data=text_data, bytes_data=bytes_data)


class GenericAsync(AsyncWebsocketConsumer):
    """Bare AsyncWebsocketConsumer echo."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Echo in kind."""
        await self.send(text_data=text_data, bytes_data=bytes_data)


class JsonSync(JsonWebsocketConsumer):
    """Bare JsonWebsocketConsumer answering with the project's echo envelope."""

    def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        """Echo the data."""
        self.send_json({"type": "echo", "data": content.get("data")})


class JsonAsync(AsyncJsonWebsocketConsumer):
    """Bare AsyncJsonWebsocketConsumer answering with the project's echo envelope."""

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        """Echo the data."""
        await self.send_json({"type": "echo", "data": content.get("data")})


class RawAsyncNoDb(NoDatabaseMixin, RawAsync):
    """RawAsync without the per-message database cleanup hop."""


class GenericAsyncNoDb(NoDatabaseMixin, GenericAsync):
    """GenericAsync without the per-message database cleanup hop."""


class JsonAsyncNoDb(NoDatabaseMixin, JsonAsync):
    """JsonAsync without the per-message database cleanup hop."""


class RawSyncQueued(QueuedSendMixin, RawSync):
    """RawSync whose sends do not wait for the event loop, whatever SYNC_SEND says."""

    sync_send = "queued"


class GenericSyncQueued(QueuedSendMixin, GenericSync):
    """GenericSync whose sends do not wait for the event loop."""

    sync_send = "queued"


class JsonSyncQueued(QueuedSendMixin, JsonSync):
    """JsonSync whose sends do not wait for the event loop."""

    sync_send = "queued"


class Fanout(AsyncWebsocketConsumer):
    """
    Lobby-style broadcast: `?listen` sockets join one group; any text another socket sends is
    group_send to it, and every member forwards it to its client.
    """

    async def connect(self) -> None:
        """Join the group before accepting, so an open socket is already a member."""
        self.listening = b"listen" in self.scope["query_string"]
        if self.listening:
            await self.channel_layer.group_add(FANOUT_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        """Leave the group."""
        if self.listening:
            await self.channel_layer.group_discard(FANOUT_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Broadcast what arrived."""
        await self.channel_layer.group_send(
            FANOUT_GROUP, {"type": "fanout.message", "text": text_data}
        )

    async def fanout_message(self, event: dict[str, Any]) -> None:
        """A broadcast reached this member: forward it."""
        await self.send(text_data=event["text"])


class FanoutNoDb(NoDatabaseMixin, Fanout):
    """Fanout without the per-message database cleanup hop."""


def count_notes() -> int:
    """One query, in whatever thread calls it."""
    from apps.core.models import Note

    return Note.objects.count()


def notes_reply(count: int | None, error: BaseException | None) -> dict[str, Any]:
    """The answer: the count, or the project's `database_error` envelope."""
    from apps.core.protocol import database_error

    if error is not None:
        return database_error(error)
    return {"type": "notes", "count": count}


class NotesInThreadPool(AsyncJsonWebsocketConsumer):
    """
    A mistake: the ORM through `sync_to_async(thread_sensitive=False)`, i.e. in the event
    loop's default executor. Each of its threads opens a connection of its own, and nothing
    closes it: Django and Channels tidy connections only around requests and consumer
    handlers, in the thread-sensitive thread.
    """

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        """Count the notes in an executor thread."""
        try:
            count = await sync_to_async(count_notes, thread_sensitive=False)()
        except DatabaseError as error:
            await self.send_json(notes_reply(None, error))
        else:
            await self.send_json(notes_reply(count, None))


class NotesInNewThread(JsonWebsocketConsumer):
    """
    A mistake: each message's query in a thread started for it, which ends right after. The
    connection it opened is never closed by Django; it goes when that thread's objects are
    collected (with Django's pool, it is never given back).
    """

    def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        """Count the notes in a thread of its own."""
        result: dict[str, Any] = {"count": None, "error": None}

        def work() -> None:
            try:
                result["count"] = count_notes()
            except DatabaseError as error:
                result["error"] = error

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        self.send_json(notes_reply(result["count"], result["error"]))


bench_routes = URLRouter(
    [
        path("bench/raw-sync/", RawSync.as_asgi()),
        path("bench/raw-async/", RawAsync.as_asgi()),
        path("bench/generic-sync/", GenericSync.as_asgi()),
        path("bench/generic-async/", GenericAsync.as_asgi()),
        path("bench/json-sync/", JsonSync.as_asgi()),
        path("bench/json-async/", JsonAsync.as_asgi()),
        path("bench/nodb/raw-async/", RawAsyncNoDb.as_asgi()),
        path("bench/nodb/generic-async/", GenericAsyncNoDb.as_asgi()),
        path("bench/nodb/json-async/", JsonAsyncNoDb.as_asgi()),
        path("bench/queued/raw-sync/", RawSyncQueued.as_asgi()),
        path("bench/queued/generic-sync/", GenericSyncQueued.as_asgi()),
        path("bench/queued/json-sync/", JsonSyncQueued.as_asgi()),
        path("bench/fanout/", Fanout.as_asgi()),
        path("bench/fanout/nodb/", FanoutNoDb.as_asgi()),
        path("bench/db/thread-pool/", NotesInThreadPool.as_asgi()),
        path("bench/db/new-thread/", NotesInNewThread.as_asgi()),
    ]
)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Send `/bench/` sockets to the references, everything else to the project."""
    if scope["type"] == "websocket" and scope["path"].startswith("/bench/"):
        if scope["path"] == "/bench/asgi/":
            return await bare_echo(scope, receive, send)
        return await bench_routes(scope, receive, send)
    return await project(scope, receive, send)
