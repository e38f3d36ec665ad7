from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every demo shares: page layout, the socket console, limits and the JSON protocol."""

    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        """Under daphne, let browsers answer a server's close in time (daphne_close.py)."""
        from .daphne_close import lengthen_close_handshake

        lengthen_close_handshake()
