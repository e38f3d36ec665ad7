"""Logged-in clients for tests: real logins through the login view, and their cookies."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.urls import reverse

PASSWORD = "a long demo passphrase"


def create_users(*names: str) -> None:
    """Create these users with PASSWORD (the fast test hasher keeps it quick)."""
    for name in names:
        get_user_model().objects.create_user(name, password=PASSWORD)


async def log_in(username: str) -> AsyncClient:
    """A client logged in through the login view, as a browser would be."""
    client = AsyncClient()
    response = await client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def session_cookie(client: AsyncClient) -> bytes:
    """The `Cookie` header value a browser with this client's session would send."""
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()
