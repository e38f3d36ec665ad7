"""The harness keeps its promises: what the server processes run on, and what they inherit."""

from pathlib import Path

import pytest
import urllib3
from django.conf import settings
from selenium.webdriver.remote.webdriver import WebDriver

from e2e.engines import WebKitPage
from tools.servers import ServerProcess, database_env


def environment(server: ServerProcess) -> dict[str, str]:
    """The environment a running server process was started with (Linux /proc)."""
    raw = Path(f"/proc/{server.process.pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_server_runs_on_the_test_database_without_test_only_variables(
    daphne_server: ServerProcess,
) -> None:
    env = environment(daphne_server)
    database = settings.DATABASES["default"]
    assert str(database["NAME"]) == str(database["TEST"]["NAME"])
    assert {k: env.get(k) for k in database_env(database)} == database_env(database)
    if database["ENGINE"].endswith("sqlite3"):
        assert Path(database["NAME"]).exists()
    assert (env["DEBUG"], env["FAST_PASSWORD_HASHER"]) == ("0", "1")
    # Set for this process (sync Playwright's loop), never for a server: it hides bugs there.
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in env
    assert "REDIS_URL" not in env  # the session's server uses the in-memory layer


def test_pair_shares_one_redis_and_one_database(
    daphne_pair: list[ServerProcess], redis_url: str
) -> None:
    first, second = (environment(server) for server in daphne_pair)
    assert first["REDIS_URL"] == second["REDIS_URL"] == redis_url
    assert first.get("DATABASE_PATH") == second.get("DATABASE_PATH")
    assert first.get("DATABASE_URL") == second.get("DATABASE_URL")
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in first | second


class Unanswering(WebDriver):
    """A WebDriver whose browser has stopped answering: every command times out."""

    def __init__(self) -> None:  # no session: nothing to connect to
        self.caps = {"browserVersion": "test"}

    def execute(self, command: str, params: dict | None = None) -> None:
        raise urllib3.exceptions.ReadTimeoutError(None, "/session", "read timed out")


def test_a_webkit_page_whose_browser_stops_answering_says_it_is_stuck() -> None:
    # The session's `engines` launches such a browser afresh for the next test, instead of
    # every later test waiting on it (one hung MiniBrowser once held a whole run).
    page = WebKitPage(Unanswering())
    assert not page.stuck
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        page.evaluate("() => 1")
    assert page.stuck
