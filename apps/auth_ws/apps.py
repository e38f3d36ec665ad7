from django.apps import AppConfig


class AuthWsConfig(AppConfig):
    """Authenticated sockets: accounts, the lobby and presence (logout: apps/core/sessions.py)."""

    name = "apps.auth_ws"
    label = "auth_ws"
