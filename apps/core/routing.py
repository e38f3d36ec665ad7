"""The catch-all WebSocket route: whatever no app serves is refused cleanly."""

from django.urls import re_path

from .consumers import NoRouteConsumer

websocket_urlpatterns = [
    re_path(r"", NoRouteConsumer.as_asgi()),
]
