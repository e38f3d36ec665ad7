"""Pages every demo shares: the index, the journal feed, and the consumer-style page."""

from types import ModuleType
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.generic import TemplateView

from . import journal, source

# The index lists these, in this order: (url name, title, consumer styles, what it teaches).
DEMOS = [
    (
        "echo_sync:index",
        "Sync consumers",
        "SyncConsumer · WebsocketConsumer · JsonWebsocketConsumer",
        "Handlers run in a worker thread: plain Django code, the ORM included.",
    ),
    (
        "echo_async:index",
        "Async consumers",
        "AsyncConsumer · AsyncWebsocketConsumer · AsyncJsonWebsocketConsumer",
        "Handlers run on the event loop: no thread hop, nothing may block.",
    ),
    (
        "auth_ws:index",
        "Authenticated sockets",
        "AuthMiddlewareStack · AsyncJsonWebsocketConsumer · groups",
        "Who is on the socket: anonymous gets 4401, a lobby with presence, logout closes tabs.",
    ),
]


class HomeView(TemplateView):
    """Every demo, the consumer style it shows, and a link to it."""

    template_name = "core/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """The demos, and the ASGI wiring that routes to them."""
        context = super().get_context_data(**kwargs)
        context["demos"] = DEMOS
        context["asgi_source"] = source.file_source("config/asgi.py")
        return context


class ConsumerStyleView(TemplateView):
    """A demo page: the app's endpoints, their consumers' source, and the socket console."""

    routing: ModuleType | None = None
    consumers: ModuleType | None = None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Read routes and source from the modules that really serve the sockets."""
        context = super().get_context_data(**kwargs)
        context["endpoints"] = source.endpoints(self.routing)
        context["module_source"] = source.module_source(self.consumers)
        context["module_path"] = self.consumers.__name__.replace(".", "/") + ".py"
        return context


@never_cache
async def journal_feed(request: HttpRequest, journal_id: str) -> JsonResponse:
    """The ASGI events journaled under this id (async: the journal is read on the event loop)."""
    return JsonResponse({"events": await journal.read(journal_id)})
