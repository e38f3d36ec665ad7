"""Fixtures shared by every test run: unit tests under apps/ and browser tests under e2e/."""

from collections.abc import Iterator

import pytest

from tools.servers import RunningGroup, ServerProcess, start_redis, start_redis_group


def pytest_report_header() -> str:
    """Say which Django and Channels ran: CI runs the unit tests on two Django lines."""
    import channels
    import daphne
    import django

    versions = (django.get_version(), channels.__version__, daphne.__version__)
    return "django {}, channels {}, daphne {}".format(*versions)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: pytest.FixtureRequest) -> None:
    # PBKDF2 dominates every login; the server processes get FAST_PASSWORD_HASHER=1 too.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerProcess]:
    """A redis-server of our own on a free port, for the whole session."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: ServerProcess) -> str:
    """The REDIS_URL of the session's own redis-server."""
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture(scope="session")
def redis_group() -> Iterator[RunningGroup]:
    """
    A Redis primary, one replica and three Sentinels of our own, for the whole session. Tests
    that fail it over leave a primary behind (RunningGroup.restart brings a killed one back
    as a replica), so each asks the group for the current primary.
    """
    group = start_redis_group()
    yield group
    group.stop()
