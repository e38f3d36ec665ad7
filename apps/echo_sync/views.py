from apps.core.views import ConsumerStyleView

from . import consumers, routing

# The side-by-side demo: each handler of the JSON consumer, and what its answer shows.
HANDLERS = (
    (
        "save_note",
        "note: the ORM, directly",
        "Note.objects.create() in the handler, as in a view: sync handlers already run in "
        "asgiref's one sync thread, where Django allows the ORM. Channels calls "
        "close_old_connections() before and after every sync handler, as Django does around a "
        "request, so a connection that broke or outlived CONN_MAX_AGE is never reused (with "
        "the default CONN_MAX_AGE = 0, each message opens its own). `ms` is the time the "
        "query took.",
    ),
    (
        "latest_notes",
        "notes: a plain queryset",
        "The ten latest notes, evaluated right here. Notes written on the async page show up "
        "too: one table, three ways to reach it.",
    ),
    (
        "block",
        "block: time.sleep in the sync thread",
        "Press block on Socket A, then echo on Socket B: B's answer comes only when A's sleep "
        "is over, and its log line says how long it waited. The sleep holds the one thread "
        "every sync handler of the process runs in, and Django's async ORM runs its queries "
        "there too. A socket may spend 5 s blocking, refilled at 0.1 s per second; past it, "
        "error block_limited.",
    ),
)

index = ConsumerStyleView.as_view(
    template_name="echo_sync/index.html",
    routing=routing,
    consumers=consumers,
    demo_consumer=consumers.SyncJsonConsumer,
    demo_handlers=HANDLERS,
    note_commands=(("note", {"type": "note"}),),
    demo_commands=(
        ("echo", {"type": "echo", "data": "ping"}),
        ("notes", {"type": "notes"}),
        ("block 1.5 s", {"type": "block", "seconds": 1.5}),
    ),
)
