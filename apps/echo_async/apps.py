from django.apps import AppConfig


class EchoAsyncConfig(AppConfig):
    """Echo endpoints written as asynchronous consumers."""

    name = "apps.echo_async"
    label = "echo_async"
