"""
A look inside the running server process, for the chaos soak: off unless SHOWCASE_STATS=1.

`/stats/` answers a small JSON object: application instances alive now (counted by
`QuietDisconnectMiddleware`, so one per open socket or HTTP request), the event loop's asyncio
tasks, threads and resident memory. With the setting off (the default) the URL answers 404,
as if it did not exist: a normal run shows nothing of its insides.
"""

import asyncio
import os
import threading
from typing import Any

from . import disconnects


def resident_bytes() -> int | None:
    """This process's resident memory, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def snapshot() -> dict[str, Any]:
    """The figures; call it on the server's event loop (an async view) to count its tasks."""
    return {
        "pid": os.getpid(),
        "instances": dict(disconnects.live),
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        "rss": resident_bytes(),
    }
