from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every demo shares: page layout, the socket console, limits and the JSON protocol."""

    name = "apps.core"
    label = "core"
