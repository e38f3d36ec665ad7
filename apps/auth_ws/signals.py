"""
Logging out over HTTP closes that user's open sockets, on every server process.

A socket's user was read from the session once, at the handshake (channels#1324): ending the
session later changes nothing for the socket by itself. So the logout tells the user's group,
which the channel layer (Redis, with several processes) delivers to each of their sockets.
"""

from typing import Any

from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from .consumers import user_group


@receiver(user_logged_out)
async def close_sockets_on_logout(
    sender: type, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    """Tell every socket of the user who just logged out to close with 4401."""
    if user is None:  # a logout without a login
        return
    await get_channel_layer().group_send(
        user_group(user.pk), {"type": "session.ended", "reason": "logged out"}
    )
