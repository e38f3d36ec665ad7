"""
HTTP routes of sse: served by consumers, before Django's own views (config/asgi.py).

`http_urlpatterns` rather than `websocket_urlpatterns`: these answer plain HTTP requests.
"""

from django.urls import path

from . import consumers

http_urlpatterns = [
    path("sse/ticks/", consumers.TicksConsumer.as_asgi()),
    path("sse/lobby/", consumers.LobbyStreamConsumer.as_asgi()),
]
