"""WebSocket routes of echo_async: `as_asgi()` builds one consumer instance per connection."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/ac/", consumers.AsyncEchoConsumer.as_asgi()),
    path("ws/ac/generic/", consumers.AsyncGenericEchoConsumer.as_asgi()),
    path("ws/ac/json/", consumers.AsyncJsonConsumer.as_asgi()),
]
