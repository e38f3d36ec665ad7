import gc

from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    """What every demo shares: page layout, the socket console, limits and the JSON protocol."""

    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        """Apply GC_THRESHOLD to this process's garbage collector (settings.py says why)."""
        if settings.GC_THRESHOLD:
            gc.set_threshold(*settings.GC_THRESHOLD)
