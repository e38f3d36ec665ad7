"""The /http/ page, and the POST that sends lobby chat from a page without a socket."""

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from apps.core import lobby
from apps.core.outage import UNREACHABLE
from apps.core.views import ConsumerStyleView

from . import consumers, routing

logger = logging.getLogger(__name__)

index = ConsumerStyleView.as_view(
    template_name="sse/index.html",
    routing=routing,
    consumers=consumers,
    extra_context={"retry_ms": settings.SSE_RETRY_MS},
)


@require_POST
async def say(request: HttpRequest) -> JsonResponse:
    """Publish a chat message to the lobby: sockets and SSE streams all receive it."""
    user = await request.auser()
    if not user.is_authenticated:
        return error(403, "not_logged_in", "log in first")
    text = request.POST.get("text", "")
    if not text.strip():
        return error(400, "invalid_text", 'chat needs a non-empty "text"')
    if len(text) > consumers.MAX_CHAT_CHARS:
        return error(400, "text_too_long", f"at most {consumers.MAX_CHAT_CHARS} characters")
    try:
        message = await lobby.publish(user.get_username(), text)
    except lobby.NotSaved as not_saved:
        return error(503, not_saved.code, str(not_saved))
    except UNREACHABLE as unreachable:
        # Redis is failing over or down: the client may try again (one log line, no traceback).
        logger.info("lobby POST refused: Redis unreachable (%r)", unreachable)
        return error(503, "unavailable", "the lobby is unavailable right now; try again")
    return JsonResponse({"type": "chat", "id": message["id"]}, status=201)


def error(status: int, code: str, message: str) -> JsonResponse:
    """The JSON error envelope the sockets use, as an HTTP response."""
    return JsonResponse({"type": "error", "code": code, "message": message}, status=status)
