"""Fixtures shared by every test run: unit tests under apps/ and browser tests under e2e/."""

from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from apps.core.tests.databases import (
    SelectedDatabase,
    add_postgres_alias,
    database_params,
    wants_postgres_alias,
)
from tools.servers import (
    Postgres,
    RunningGroup,
    ServerProcess,
    start_postgres,
    start_redis,
    start_redis_group,
    take_ctrl_c,
)


def pytest_configure(config: pytest.Config) -> None:
    """The servers tests start take Ctrl-C even when this run was started ignoring it."""
    take_ctrl_c()


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """
    A throwaway PostgreSQL of our own on a free port, for the whole session, started the first
    time a test needs it (tests may restart it: `postgres_server.restart()`).
    """
    server = start_postgres(name="postgres-tests")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, request: pytest.FixtureRequest
) -> None:
    """
    pytest-django's last word before it creates the test databases: when a collected test asks
    for the alias `postgresql` (apps/core/tests/databases.py), it is the session's PostgreSQL.
    """
    if wants_postgres_alias(request.session.items):
        add_postgres_alias(request.getfixturevalue("postgres_server").url())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `database` runs once per database of the run (databases.py)."""
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", database_params(), indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest, settings: Settings) -> Iterator[str]:
    """
    The alias this test runs on (`default`, or `postgresql` when the default is SQLite): every
    model, in the test and in the consumers it talks to, is routed there.
    """
    SelectedDatabase.alias = request.param
    settings.DATABASE_ROUTERS = ["apps.core.tests.databases.SelectedDatabase"]
    yield request.param
    SelectedDatabase.alias = "default"
