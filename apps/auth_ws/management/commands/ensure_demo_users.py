"""`manage.py ensure_demo_users`: two accounts to try the lobby with, in DEBUG only."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.auth_ws.demo import DEMO_ACCOUNTS, ensure_demo_accounts


class Command(BaseCommand):
    """Make sure the demo accounts exist with their demo passwords, and print them once."""

    help = "In DEBUG: create the demo accounts alice and bob (or reset their passwords)."

    def handle(self, *args: Any, **options: Any) -> None:
        """Do nothing outside DEBUG: a deployment must never get accounts with known passwords."""
        if not settings.DEBUG:
            self.stdout.write("ensure_demo_users: DEBUG is off, no demo accounts.")
            return
        ensure_demo_accounts()
        self.stdout.write(self.style.SUCCESS("Demo accounts (DEBUG only), username and password:"))
        self.stdout.write("\n".join(f"  {name:<8} {password}" for name, password in DEMO_ACCOUNTS))
