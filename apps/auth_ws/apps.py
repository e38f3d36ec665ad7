from django.apps import AppConfig


class AuthWsConfig(AppConfig):
    """Authenticated sockets: accounts, the lobby, presence, and logout closing sockets."""

    name = "apps.auth_ws"
    label = "auth_ws"

    def ready(self) -> None:
        """Connect the logout signal to the sockets it must close."""
        from . import signals  # noqa: F401
