from django.apps import AppConfig


class EchoSyncConfig(AppConfig):
    """Echo endpoints written as synchronous consumers."""

    name = "apps.echo_sync"
    label = "echo_sync"
