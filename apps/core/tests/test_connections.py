"""
Long-lived sockets and a PostgreSQL that restarts (docs/styles.md, "Database connections").

A daphne of the test's own serves the JSON endpoints on the session's PostgreSQL (the alias
`postgresql`, apps/core/tests/databases.py), with the connection settings of each case. For each
style in turn (the sync ORM, the async ORM, `database_sync_to_async`) a socket reads the notes,
so its process holds a connection; PostgreSQL restarts (a fast shutdown cuts every
connection); the same socket reads again. It gets at most one `database_error` (one warning
line in the server's log, no traceback), and every answer after it is the notes again:
Channels closes a connection that failed before the next handler runs, as Django does after a
request. With health checks, a reused connection is tested first, so no answer fails at all.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from websockets.sync.client import ClientConnection, connect

from apps.core.tests.databases import POSTGRES_ALIAS, on
from tools.servers import Postgres, ServerProcess, running, server_env, start_daphne

pytestmark = on(POSTGRES_ALIAS, transaction=True)

# The three ways a consumer reaches the ORM: (endpoint, `via`).
STYLES = {
    "sync ORM": ("/ws/sc/json/", "orm"),
    "async ORM": ("/ws/ac/json/", "async_orm"),
    "database_sync_to_async": ("/ws/ac/json/", "database_sync_to_async"),
}
# DATABASE_URL options (config/database.py), and how many `database_error` answers a socket
# gets after the restart: the stale connection fails once, a health check spares even that.
CASES = {
    "persistent": ({"conn_max_age": "60"}, 1),
    "persistent-checked": ({"conn_max_age": "60", "conn_health_checks": "true"}, 0),
    "pool-checked": ({"pool": "true", "conn_health_checks": "true"}, 0),
}


def command(ws: ClientConnection, content: dict[str, Any]) -> dict[str, Any]:
    """Send one command, return its answer."""
    ws.send(json.dumps(content))
    return json.loads(ws.recv(timeout=30))


@pytest.fixture(scope="module", params=list(CASES))
def case(
    request: pytest.FixtureRequest, postgres_server: Postgres, django_db_setup: None
) -> Iterator[tuple[Any, ...]]:
    """A daphne on the session's PostgreSQL with this case's connection settings."""
    options, errors = CASES[request.param]
    url = postgres_server.url(settings.DATABASES[POSTGRES_ALIAS]["NAME"], **options)
    env = server_env(DATABASE_URL=url, FAST_PASSWORD_HASHER="1")
    with running(start_daphne(env, name=f"restart-{request.param}")) as server:
        yield server, errors


@pytest.mark.parametrize("style", list(STYLES))
def test_a_socket_outlives_a_postgres_restart_with_at_most_one_database_error(
    case: tuple[ServerProcess, int], style: str, postgres_server: Postgres
) -> None:
    server, expected_errors = case
    path, via = STYLES[style]
    origin = f"http://127.0.0.1:{server.port}"
    since = server.log_size()  # the case's server is shared by the three styles
    with connect(server.ws_url + path, origin=origin) as ws:
        assert command(ws, {"type": "info"})["database"] == "postgresql"
        assert command(ws, {"type": "note", "text": "before", "via": via})["type"] == "note"
        postgres_server.restart()
        # This process's own connection went too: the flush after the test needs a new one.
        connections.close_all()
        replies = [command(ws, {"type": "notes", "via": via}) for _ in range(3)]
    errors = [r for r in replies if r["type"] == "error"]
    assert [r["code"] for r in errors] == ["database_error"] * expected_errors, replies
    # Every answer after the error is the notes again, the note from before the restart first.
    assert all(r["type"] == "notes" for r in replies[expected_errors:]), replies
    assert replies[-1]["notes"][0]["text"] == "before"
    log = server.log_path.read_bytes()[since:].decode()
    assert log.count("database error: OperationalError") == expected_errors, log
    assert server.tracebacks(since=since) == []
