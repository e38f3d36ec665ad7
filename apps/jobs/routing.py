"""
Routes of jobs: a socket, and a named channel for the worker.

`channel_routes` maps channel names to consumers for `ChannelNameRouter` (config/asgi.py):
`python manage.py runworker jobs` reads the channel "jobs" and hands each message to it.
"""

from django.urls import path

from . import consumers
from .queue import JOBS_CHANNEL

websocket_urlpatterns = [
    path("ws/jobs/", consumers.JobsConsumer.as_asgi()),
]

channel_routes = {
    JOBS_CHANNEL: consumers.PrimeCounter.as_asgi(),
}
