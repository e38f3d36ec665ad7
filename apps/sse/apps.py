from django.apps import AppConfig


class SseConfig(AppConfig):
    """HTTP consumers: Server-Sent Events streamed by `AsyncHttpConsumer`."""

    name = "apps.sse"
    label = "sse"
