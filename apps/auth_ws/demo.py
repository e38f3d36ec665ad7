"""The demo accounts `make run` provides in DEBUG, so a visitor can try the lobby at once."""

from django.contrib.auth import get_user_model

# Known passwords on purpose, and only ever in DEBUG: the command that creates them and the
# login page that shows them both check settings.DEBUG, so a deployment has neither.
DEMO_ACCOUNTS = (("alice", "lobby-alice"), ("bob", "lobby-bob"))


def ensure_demo_accounts() -> None:
    """Create the demo accounts, or give them back their demo passwords."""
    users = get_user_model()
    for username, password in DEMO_ACCOUNTS:
        user, _ = users.objects.get_or_create(username=username)
        # Unchanged passwords keep their hash, so sessions from an earlier start stay valid.
        if not user.check_password(password):
            user.set_password(password)
            user.save()
