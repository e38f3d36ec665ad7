"""WebSocket routes of echo_sync: `as_asgi()` builds one consumer instance per connection."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/sc/", consumers.SyncEchoConsumer.as_asgi()),
    path("ws/sc/generic/", consumers.SyncGenericEchoConsumer.as_asgi()),
    path("ws/sc/json/", consumers.SyncJsonConsumer.as_asgi()),
]
