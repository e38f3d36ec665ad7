"""
Django's ASGI handler for the showcase's HTTP views, with one fault of Django 5.2 taken out.

Django 5.2's `ASGIHandler.handle` runs the view beside a task that waits for the client's
`http.disconnect` and raises `RequestAborted` when it comes. If the server cancels `handle`
while both run (daphne cancels every application at shutdown: apps/core/daphne_shutdown.py),
that task is left behind; the disconnect arrives, it raises, nobody reads the exception, and
asyncio logs "Task exception was never retrieved" with a traceback (a stop during a page's
`/journal/` poll did it). Django 6.0 runs the two in a TaskGroup, which cancels the waiter with
`handle`, so the fault is gone there and Django's own handler is used.
"""

from typing import Any

import django
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler


class DisconnectQuietlyHandler(ASGIHandler):
    """Django's handler whose disconnect waiter returns at the disconnect instead of raising."""

    async def listen_for_disconnect(self, receive: Any) -> None:
        """Wait for `http.disconnect`; `handle` cancels the view when this returns."""
        try:
            await super().listen_for_disconnect(receive)
        except RequestAborted:
            return


def get_asgi_application() -> ASGIHandler:
    """Set Django up and return its ASGI handler (`django.core.asgi.get_asgi_application`)."""
    django.setup(set_prefix=False)
    if django.VERSION < (6, 0):
        return DisconnectQuietlyHandler()
    return ASGIHandler()
