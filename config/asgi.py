"""
The ASGI entry point: one ProtocolTypeRouter, composed from every app's routes.

`python manage.py runserver` (daphne's), `daphne config.asgi:application` and
`uvicorn config.asgi:application` all load this module.
"""

import os

from apps.core.handlers import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before any consumer (and so any model) is imported. Django's handler,
# less a shutdown fault of Django 5.2 (apps/core/handlers.py).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from apps.auth_ws.routing import websocket_urlpatterns as auth_ws_routes  # noqa: E402
from apps.core.connections import ConnectionLimitMiddleware  # noqa: E402
from apps.core.disconnects import QuietDisconnectMiddleware  # noqa: E402
from apps.core.journal import JournalMiddleware  # noqa: E402
from apps.core.origins import SameOriginValidator  # noqa: E402
from apps.core.routing import websocket_urlpatterns as no_route  # noqa: E402
from apps.echo_async.routing import websocket_urlpatterns as echo_async_routes  # noqa: E402
from apps.echo_sync.routing import websocket_urlpatterns as echo_sync_routes  # noqa: E402
from apps.jobs.routing import channel_routes as jobs_channels  # noqa: E402
from apps.jobs.routing import websocket_urlpatterns as jobs_routes  # noqa: E402
from apps.sse.routing import http_urlpatterns as sse_routes  # noqa: E402

# Nested URLRouters with include() are unsupported (channels#1428): concatenate the lists.
# `no_route` matches anything, so it comes last.
websocket_urlpatterns = (
    echo_sync_routes + echo_async_routes + auth_ws_routes + jobs_routes + no_route
)
# HTTP consumers first; every other path goes on to Django's views.
http_urlpatterns = [*sse_routes, re_path(r"^", django_asgi_app)]

# QuietDisconnectMiddleware, outermost: a client that vanishes mid-send ends its consumer
# quietly instead of raising inside it (channels#1820; apps/core/disconnects.py).
application = ProtocolTypeRouter(
    {
        # The `daphne` command serves no static files; this handler does, for every server.
        "http": QuietDisconnectMiddleware(
            ASGIStaticFilesHandler(AuthMiddlewareStack(URLRouter(http_urlpatterns)))
        ),
        # A handshake's Origin must be the page's own (scheme, host and port) or a trusted one,
        # as Django's CSRF check demands of forms (apps/core/origins.py).
        "websocket": QuietDisconnectMiddleware(
            SameOriginValidator(
                AuthMiddlewareStack(
                    # Open sockets per user and per address (apps/core/connections.py).
                    ConnectionLimitMiddleware(JournalMiddleware(URLRouter(websocket_urlpatterns)))
                )
            )
        ),
        # Named channels, read by `manage.py runworker jobs` (or in-process: apps/jobs/worker.py).
        "channel": ChannelNameRouter(jobs_channels),
    }
)
