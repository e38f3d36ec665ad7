"""WebSocket routes of auth_ws: the lobby, and its strict twin that refuses anonymous handshakes."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/auth/", consumers.LobbyConsumer.as_asgi()),
    path("ws/auth/strict/", consumers.StrictLobbyConsumer.as_asgi()),
]
