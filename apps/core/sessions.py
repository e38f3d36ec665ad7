"""
Logging out reaches every socket and stream of that user, on every server process.

`AuthMiddlewareStack` reads the session once, at the handshake, and puts the user in
`scope["user"]` (channels#1324): ending the session later changes nothing for a connection by
itself, and a socket opened while logged in would go on saving notes as that user. So every
connection of a logged-in user joins the user's group (`user_group`), and the
`user_logged_out` signal, on whichever process served the logout, sends that group a
`session.ended` message, which the channel layer (Redis, with several processes) delivers to
each of them. A socket then closes with 4401; an event stream says `bye` and ends.

`SessionEndedMixin` (async consumers) and `SyncSessionEndedMixin` (sync ones) are that, for
Channels' generic WebSocket consumers: they put the user's group in the consumer's `groups`
(which Channels joins before `connect()` and leaves at disconnect), close 4401 on
`session.ended`, and drop whatever the client still sends after that.
"""

from typing import Any

from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

# Not logged in, or the session ended (logout in another tab, on any process).
CLOSE_UNAUTHENTICATED = 4401
SESSION_ENDED = "session.ended"


def user_group(user_id: Any) -> str:
    """The group holding every socket and stream of one user, on every server process."""
    return f"user.{user_id}"


def signed_in(scope: dict[str, Any]) -> Any:
    """The logged-in user of a connection (as AuthMiddlewareStack found it), or None."""
    user = scope.get("user")
    return user if user is not None and user.is_authenticated else None


def groups_with_user(scope: dict[str, Any], groups: list[str]) -> list[str]:
    """A consumer's groups, plus its user's group when the connection is logged in."""
    user = signed_in(scope)
    return [*groups, user_group(user.pk)] if user is not None else list(groups)


@receiver(user_logged_out)
async def end_connections_on_logout(
    sender: type, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    """Tell every socket and stream of the user who just logged out that the session ended."""
    if user is None:  # a logout without a login
        return
    await get_channel_layer().group_send(
        user_group(user.pk), {"type": SESSION_ENDED, "reason": "logged out"}
    )


class SessionEndedMixin:
    """
    For async generic WebSocket consumers: a logged-in socket closes with 4401 when its
    user logs out anywhere. Put it before the consumer class among the bases.
    """

    session_over = False

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Join the user's group (Channels joins `groups` before `connect()`)."""
        self.groups = groups_with_user(self.scope, self.groups)
        await super().websocket_connect(message)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Handle a message, unless the session already ended: nothing acts as the user then."""
        if not self.session_over:
            await super().websocket_receive(message)

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out somewhere: this socket's user is gone."""
        self.session_over = True
        await self.close(CLOSE_UNAUTHENTICATED, event.get("reason", "session ended"))


class SyncSessionEndedMixin:
    """`SessionEndedMixin` for sync generic WebSocket consumers (handlers in the sync thread)."""

    session_over = False

    def websocket_connect(self, message: dict[str, Any]) -> None:
        """Join the user's group (Channels joins `groups` before `connect()`)."""
        self.groups = groups_with_user(self.scope, self.groups)
        super().websocket_connect(message)

    def websocket_receive(self, message: dict[str, Any]) -> None:
        """Handle a message, unless the session already ended: nothing acts as the user then."""
        if not self.session_over:
            super().websocket_receive(message)

    def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out somewhere: this socket's user is gone."""
        self.session_over = True
        self.close(CLOSE_UNAUTHENTICATED, event.get("reason", "session ended"))
