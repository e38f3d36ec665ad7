from apps.core.views import ConsumerStyleView

from . import consumers, routing

# The side-by-side demo: each handler of the JSON consumer, and what its answer shows.
HANDLERS = (
    (
        "save_note",
        "note: the async ORM, or database_sync_to_async",
        "await Note.objects.acreate(): Django's async ORM hands the query to sync_to_async, "
        "so it runs in the same one thread as the sync consumers' handlers (not faster, and "
        "a blocked sync handler delays it). It leaves that thread's connection open; the "
        "stock dispatch's aclose_old_connections() before the next message closes it once "
        "it is obsolete (CONN_MAX_AGE). That is why this consumer does not use "
        "NoDatabaseMixin, which skips that call.",
    ),
    (
        "latest_notes",
        "notes: async for, or database_sync_to_async",
        "async for over the same queryset the sync page evaluates directly; with "
        '"via": "database_sync_to_async", the function below does it. Notes saved on the '
        "sync page show here: one table, three ways to reach it.",
    ),
    (
        "latest_notes_in_thread",
        "database_sync_to_async: sync ORM code, wrapped",
        "Any sync ORM code, run in the thread-sensitive thread; Channels closes stale "
        "connections before and after each call, so it is safe with or without "
        "NoDatabaseMixin.",
    ),
    (
        "latest_notes_unsafe",
        "notes.unsafe: the ORM on the event loop",
        "The mistake, on purpose: list(queryset) in an async handler. Django refuses before "
        "it touches the database (SynchronousOnlyOperation: “You cannot call this from an "
        "async context”), and the consumer answers error synchronous_only_operation. "
        "DJANGO_ALLOW_ASYNC_UNSAFE would silence it and block the loop for every query: "
        "never in a server.",
    ),
    (
        "block",
        "block: await asyncio.sleep, or time.sleep on the loop",
        "Press block on Socket A, then echo on Socket B: B answers at once, because awaiting "
        "frees the loop for every other socket (A's own next message still waits its turn). "
        "Now block on the loop: time.sleep stalls every socket of the process, B's echo and "
        "the sync consumers' too. A socket may spend 5 s blocking, refilled at 0.1 s per "
        "second; past it, error block_limited.",
    ),
)

index = ConsumerStyleView.as_view(
    template_name="echo_async/index.html",
    routing=routing,
    consumers=consumers,
    demo_consumer=consumers.AsyncJsonConsumer,
    demo_handlers=HANDLERS,
    note_commands=(
        ("note (async ORM)", {"type": "note", "via": "async_orm"}),
        ("note (database_sync_to_async)", {"type": "note", "via": "database_sync_to_async"}),
    ),
    demo_commands=(
        ("echo", {"type": "echo", "data": "ping"}),
        ("notes (async ORM)", {"type": "notes", "via": "async_orm"}),
        ("notes (database_sync_to_async)", {"type": "notes", "via": "database_sync_to_async"}),
        ("notes.unsafe", {"type": "notes.unsafe"}),
        ("block 1.5 s (await asyncio.sleep)", {"type": "block", "seconds": 1.5}),
        (
            "block 1.5 s on the loop (time.sleep)",
            {"type": "block", "seconds": 1.5, "on_loop": True},
        ),
    ),
)
