"""
Same-origin for sockets and event streams, as strict as Django's CSRF check on forms.

A browser sends the session cookie with every request to this host, whichever page started
it: a page on another port of the same host, or on another scheme, is "same site" for cookies
but not the same origin. Forms are safe because Django's CSRF middleware compares the POST's
`Origin` with the request's own origin (scheme, host and port, from the Host header and
SECURE_PROXY_SSL_HEADER) or one of CSRF_TRUSTED_ORIGINS. A WebSocket handshake carries no CSRF
token, so its `Origin` is the only thing that tells the page apart.

Channels' `AllowedHostsOriginValidator` is not that check: it matches the Origin's *host name*
against ALLOWED_HOSTS, and a pattern without a scheme or port (every ALLOWED_HOSTS entry) lets
any scheme and any port through. So `http://127.0.0.1:9999` passed for a site on
`127.0.0.1:8000`, with the visitor's cookie. `SameOriginValidator` keeps Channels'
`OriginValidator` for what it does well (matching full origins: scheme, host, port, with
`.example.com` for subdomains), gives it CSRF_TRUSTED_ORIGINS as its list, and adds what a
static list cannot hold: the handshake's own origin, derived per request the way Django
derives it for CSRF (`HttpRequest.get_host()`, which validates the Host header against
ALLOWED_HOSTS, and `is_secure()`, which honours SECURE_PROXY_SSL_HEADER behind a proxy).

Event streams (`EventSource`) are plain GETs: a browser sends `Origin` only when another origin
asks (a CORS request), so a missing `Origin` is the page's own request. `stream_allowed`
refuses a foreign `Origin`, and a `Sec-Fetch-Site` that says another site or origin started it.
"""

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest

logger = logging.getLogger(__name__)

# What a browser's `Sec-Fetch-Site` says about a request this site's own pages started (or the
# visitor typed in); "same-site" is another port or scheme of this host, or a sibling subdomain.
OWN_FETCH_SITES = {"same-origin", "none"}


class Handshake(HttpRequest):
    """
    The parts of a Django request that CSRF's origin check reads, built from an ASGI scope
    (websocket or http): headers as META, the server's address, and the scheme.
    """

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
        self.plain_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        for name, value in scope.get("headers", ()):
            key = name.decode("latin-1").upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
            text = value.decode("latin-1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text
        if server := scope.get("server"):
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = server[0], str(server[1] or "")
        else:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = "unknown", "80"

    def _get_scheme(self) -> str:
        return self.plain_scheme


def own_origin(scope: dict[str, Any]) -> str | None:
    """
    This request's own origin, as Django's CSRF check derives it: `http[s]://` plus the Host
    header (validated against ALLOWED_HOSTS); None if the host is not one of ours.
    """
    request = Handshake(scope)
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{'https' if request.is_secure() else 'http'}://{host}"


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The last value of one request header, decoded, or None."""
    found = None
    for key, value in scope.get("headers", ()):
        if key == name:
            found = value.decode("latin-1")
    return found


def channels_patterns(trusted: Iterable[str]) -> list[str]:
    """CSRF_TRUSTED_ORIGINS in Channels' pattern syntax (`https://*.a.b` is `https://.a.b`)."""
    return [origin.replace("://*.", "://.", 1) for origin in trusted]


class SameOriginValidator(OriginValidator):
    """
    ASGI middleware for sockets: the handshake's `Origin` must be the request's own origin or
    one in CSRF_TRUSTED_ORIGINS, matched on scheme, host and port. Anything else (another
    port, another scheme, a look-alike host, `null`, no Origin at all) is refused before
    accept: the client gets HTTP 403, and the server logs one line.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, ())

    @property
    def allowed_origins(self) -> list[str]:
        """CSRF_TRUSTED_ORIGINS, read when a handshake comes (tests change settings)."""
        return channels_patterns(settings.CSRF_TRUSTED_ORIGINS)

    @allowed_origins.setter
    def allowed_origins(self, value: Any) -> None:
        """OriginValidator sets a fixed list; ours always comes from the settings."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Pass the socket on if its origin is allowed; refuse it (403) otherwise."""
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator checks WebSocket handshakes only")
        origin = header(scope, b"origin")
        if origin is not None and self.allows(scope, origin):
            return await self.application(scope, receive, send)
        logger.info(
            "refused a socket to %s from origin %r: not this site's origin (%s) nor a trusted one",
            scope.get("path"),
            origin,
            own_origin(scope),
        )
        return await WebsocketDenier()(scope, receive, send)

    def allows(self, scope: dict[str, Any], origin: str) -> bool:
        """Whether `origin` is this request's own origin or a trusted one."""
        if origin == own_origin(scope):  # exact, as Django's CSRF compares it
            return True
        try:
            parsed = urlparse(origin)
            # A malformed port raises here (inside OriginValidator it would be a traceback).
            parsed.port  # noqa: B018
        except ValueError:
            return False
        return self.valid_origin(parsed)


# For checks outside the socket stack (event streams): the same rules, no application.
_CHECK = SameOriginValidator(None)


def stream_allowed(scope: dict[str, Any]) -> bool:
    """
    Whether a plain GET (an event stream) may be served: a foreign `Origin` or a
    `Sec-Fetch-Site` of another origin is refused; no Origin is the page's own request.
    """
    origin = header(scope, b"origin")
    if origin is not None:
        return _CHECK.allows(scope, origin)
    return header(scope, b"sec-fetch-site") in (None, *OWN_FETCH_SITES)
