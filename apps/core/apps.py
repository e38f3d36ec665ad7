import gc

from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    """What every demo shares: page layout, the socket console, limits and the JSON protocol."""

    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        """
        Apply GC_THRESHOLD to this process's garbage collector (settings.py says why),
        under daphne let browsers answer a server's close in time (daphne_close.py) and let
        every consumer hear of a shutdown (daphne_shutdown.py), and connect logout to every
        connection of the user (sessions.py).
        """
        from . import sessions  # noqa: F401  (its receiver of user_logged_out)
        from .daphne_close import lengthen_close_handshake
        from .daphne_shutdown import wait_for_every_application

        if settings.GC_THRESHOLD:
            gc.set_threshold(*settings.GC_THRESHOLD)
        lengthen_close_handshake()
        wait_for_every_application()
