"""
The pure-echo consumers, routed for the Autobahn testsuite only.

Autobahn's fuzzing client sends no `Origin` header, which `config.asgi` rightly refuses. This
module routes the very same consumer instances (taken from each app's `websocket_urlpatterns`)
without the origin validator, auth or journal around them, but inside the same
`QuietDisconnectMiddleware`. It exists for `make conformance` and its tests; never serve it to
a browser.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.disconnects import QuietDisconnectMiddleware  # noqa: E402
from apps.echo_async.routing import websocket_urlpatterns as echo_async_routes  # noqa: E402
from apps.echo_sync.routing import websocket_urlpatterns as echo_sync_routes  # noqa: E402

# design.md: these send nothing unsolicited, so the suite can drive them.
PURE_ECHO_PATHS = ("/ws/sc/", "/ws/sc/generic/", "/ws/ac/", "/ws/ac/generic/")

websocket_urlpatterns = [
    route
    for route in echo_sync_routes + echo_async_routes
    if "/" + str(route.pattern) in PURE_ECHO_PATHS
]

# The same guard as config/asgi.py: the suite fails connections while echoes are in flight,
# which without it logs a traceback per case (channels#1820).
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": QuietDisconnectMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
