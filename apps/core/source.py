"""Read consumers' real source code so pages show exactly what runs."""

import inspect
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer


@dataclass(frozen=True)
class Endpoint:
    """One route (WebSocket or HTTP) and the consumer behind it."""

    path: str
    consumer: str
    base: str
    summary: str
    source: SafeString
    lines: int
    protocol: str = "websocket"


def _highlighted(code: str) -> SafeString:
    # Pygments escapes the code; the markup it adds is its own.
    return mark_safe(highlight(code, PythonLexer(), HtmlFormatter(nowrap=True)))  # noqa: S308


def _channels_base(consumer: type) -> str:
    # The consumer style is the first Channels class it derives from, not a mixin of ours.
    return next(c for c in consumer.__mro__[1:] if c.__module__.startswith("channels.")).__name__


@cache
def endpoints(routing: ModuleType) -> tuple[Endpoint, ...]:
    """Every route of a routing module (sockets, then HTTP), with its consumer's source."""
    found = []
    routes = [("websocket", p) for p in getattr(routing, "websocket_urlpatterns", ())]
    routes += [("http", p) for p in getattr(routing, "http_urlpatterns", ())]
    for protocol, pattern in routes:
        consumer: Any = pattern.callback.consumer_class
        code = inspect.getsource(consumer)
        found.append(
            Endpoint(
                path="/" + str(pattern.pattern),
                consumer=consumer.__name__,
                base=_channels_base(consumer),
                summary=inspect.getdoc(consumer).splitlines()[0],
                source=_highlighted(code),
                lines=code.count("\n"),
                protocol=protocol,
            )
        )
    return tuple(found)


@cache
def function_source(function: Any) -> SafeString:
    """One function or method, highlighted (decorators included)."""
    return _highlighted(inspect.cleandoc("\n" + inspect.getsource(function)))


@cache
def module_source(module: ModuleType) -> SafeString:
    """A whole module, highlighted."""
    return _highlighted(inspect.getsource(module))


@cache
def file_source(relative_path: str) -> SafeString:
    """A project file, highlighted (for modules a page should not import, like config.asgi)."""
    return _highlighted((settings.BASE_DIR / relative_path).read_text())
