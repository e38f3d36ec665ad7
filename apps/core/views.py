"""Pages every demo shares: the index, the journal feed, the consumer-style page, the guide."""

import json
from types import ModuleType
from typing import Any, NamedTuple

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.generic import TemplateView

from . import docs, journal, source, stats
from .models import MAX_NOTE_CHARS


class Demo(NamedTuple):
    """A demo page: its URL name, title, consumer styles, lesson, and the doc that explains it."""

    url_name: str
    title: str
    styles: str
    lesson: str
    guide: str  # docs/<guide>.md, served at /docs/<guide>/


# The index lists these, in this order; each page links to its guide page.
DEMOS = [
    Demo(
        "echo_sync:index",
        "Sync consumers",
        "SyncConsumer · WebsocketConsumer · JsonWebsocketConsumer",
        "Handlers run in a worker thread: plain Django code, the ORM included.",
        "styles",
    ),
    Demo(
        "echo_async:index",
        "Async consumers",
        "AsyncConsumer · AsyncWebsocketConsumer · AsyncJsonWebsocketConsumer",
        "Handlers run on the event loop: no thread hop, nothing may block.",
        "styles",
    ),
    Demo(
        "auth_ws:index",
        "Authenticated sockets",
        "AuthMiddlewareStack · AsyncJsonWebsocketConsumer · groups",
        "Who is on the socket: anonymous gets 4401, a lobby with presence, logout closes tabs.",
        "auth",
    ),
    Demo(
        "sse:index",
        "HTTP consumers",
        "AsyncHttpConsumer · Server-Sent Events · groups",
        "A response that stays open: EventSource reads events, reconnects and resumes by itself.",
        "sse",
    ),
    Demo(
        "jobs:index",
        "Background worker",
        "ChannelNameRouter · SyncConsumer · runworker",
        "Blocking work on a named channel; progress pushed back to the socket that asked.",
        "worker",
    ),
]


class Guide(NamedTuple):
    """A link into the guide: the page's name (its URL) and its title."""

    name: str
    title: str


def guide_for(url_name: str) -> Guide | None:
    """The guide page that explains the demo with this URL name."""
    for demo in DEMOS:
        if demo.url_name == url_name and (path := docs.page_path(demo.guide)):
            return Guide(demo.guide, docs.title(path))
    return None


class HomeView(TemplateView):
    """Every demo, the consumer style it shows, and a link to it."""

    template_name = "core/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """The demos, and the ASGI wiring that routes to them."""
        context = super().get_context_data(**kwargs)
        context["demos"] = DEMOS
        context["asgi_source"] = source.file_source("config/asgi.py")
        return context


class Handler(NamedTuple):
    """A handler the side-by-side demo shows: its source and what its result teaches."""

    name: str
    title: str
    source: SafeString
    lesson: str


class ConsumerStyleView(TemplateView):
    """A demo page: the app's endpoints, their consumers' source, and the socket console."""

    routing: ModuleType | None = None
    consumers: ModuleType | None = None
    # The side-by-side demo (templates/core/_side_by_side.html), when the page has one: the
    # JSON consumer, its handlers as (method, title, lesson), the note buttons as (label,
    # extra fields) and the other command buttons as (label, command).
    demo_consumer: type | None = None
    demo_handlers: tuple[tuple[str, str, str], ...] = ()
    note_commands: tuple[tuple[str, dict[str, Any]], ...] = ()
    demo_commands: tuple[tuple[str, dict[str, Any]], ...] = ()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Read routes and source from the modules that really serve the sockets."""
        context = super().get_context_data(**kwargs)
        context["guide"] = guide_for(self.request.resolver_match.view_name)
        context["endpoints"] = source.endpoints(self.routing)
        context["module_source"] = source.module_source(self.consumers)
        context["module_path"] = self.consumers.__name__.replace(".", "/") + ".py"
        if self.demo_consumer is not None:
            context["demo_endpoint"] = next(
                e.path for e in context["endpoints"] if e.consumer == self.demo_consumer.__name__
            )
            context["handlers"] = [
                Handler(
                    name, title, source.function_source(getattr(self.demo_consumer, name)), lesson
                )
                for name, title, lesson in self.demo_handlers
            ]
            context["note_commands"] = [
                (label, json.dumps(extra)) for label, extra in self.note_commands
            ]
            context["demo_commands"] = [
                (label, json.dumps(cmd)) for label, cmd in self.demo_commands
            ]
            context["max_note_chars"] = MAX_NOTE_CHARS
        return context


@never_cache
async def journal_feed(request: HttpRequest, journal_id: str) -> JsonResponse:
    """The ASGI events journaled under this id (async: the journal is read on the event loop)."""
    return JsonResponse({"events": await journal.read(journal_id)})


@never_cache
async def stats_feed(request: HttpRequest) -> JsonResponse:
    """The server's insides for the chaos soak (stats.py); 404 unless SHOWCASE_STATS is on."""
    if not settings.SHOWCASE_STATS:
        raise Http404("stats are off")
    return JsonResponse(stats.snapshot())


def doc_page(request: HttpRequest, name: str = "") -> HttpResponse:
    """A page of the guide (README.md for /docs/), rendered inside the site's layout."""
    path = docs.page_path(name)
    if path is None:
        raise Http404("no such page in the guide")
    title, body = docs.render(path)
    return render(request, "core/doc.html", {"title": title, "body": SafeString(body)})


def doc_file(request: HttpRequest, path: str) -> FileResponse:
    """An image the guide shows (docs/screenshots/*.png, docs/benchmarks.png)."""
    found = docs.file_path(path)
    if found is None:
        raise Http404("no such file in the guide")
    return FileResponse(found.open("rb"))
