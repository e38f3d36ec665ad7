"""
The cluster for the browser tests: `make cluster`'s nginx, supervisord, two daphne processes
and redis-server (deploy/, started by tools/servers.py), on a free port, for the whole session,
on PostgreSQL as deployed: a test database on the session's own PostgreSQL (the alias
`postgresql`, apps/core/tests/databases.py; the default itself when that is PostgreSQL), which
every test in this folder marks with `on(postgres_alias())`. Every page in this folder talks to
it through nginx: `page.goto("/")` goes to nginx, not to a daphne.
"""

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.core.tests.databases import postgres_alias
from e2e import artifacts
from tools.servers import BASE_DIR, Cluster, database_env, start_cluster

# Short, so a process killed outright takes its users offline within seconds (test_faults).
PRESENCE_TTL = 3.0
# Anything in the logs that looks like a crash fails the session...
CRASH = re.compile(r"Traceback|\[emerg\]|\[crit\]|\[alert\]|exited: .* \(exit status [1-9]")
# ...except nginx finding a daphne down (killed, or restarting): it passes the request on to
# the next process, which is the design (deploy/nginx-site.conf). ENOENT is logged as [crit].
EXPECTED = re.compile(
    r"connect\(\) to unix:\S+ failed \((2|111): [^)]*\) while connecting to upstream"
)


@pytest.fixture
def database_alias() -> str:
    """The cluster's processes use PostgreSQL: the suite's users are made there."""
    return postgres_alias()


@pytest.fixture(scope="session")
def cluster(
    daphne_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The cluster, started once (collectstatic first, as a deployment does) and stopped last."""
    static_root = tmp_path_factory.mktemp("cluster-static")
    env = {
        **{k: v for k, v in daphne_env.items() if k != "DATABASE_PATH"},
        **database_env(settings.DATABASES[postgres_alias()]),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "STATIC_MANIFEST": "1",
        "STATIC_ROOT": str(static_root),
        "PRESENCE_TTL": str(PRESENCE_TTL),
    }
    # collectstatic runs while the processes start: only nginx needs its output, and only
    # pages (not the start) need its manifest.
    command = [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"]
    collecting = subprocess.Popen(command, env=env, cwd=BASE_DIR)
    running = start_cluster(workers=2, env=env, static_root=static_root)
    assert collecting.wait(timeout=120) == 0, "collectstatic failed"
    artifacts.register(running.nginx)
    artifacts.register(running.supervisor)
    yield running
    running.stop()
    artifacts.unregister(running.nginx)
    artifacts.unregister(running.supervisor)
    crashes = {
        name: [
            line for line in text.splitlines() if CRASH.search(line) and not EXPECTED.search(line)
        ]
        for name, text in running.logs().items()
    }
    crashes = {name: lines for name, lines in crashes.items() if lines}
    assert not crashes, f"the cluster's logs ({running.run_dir}) show crashes: {crashes}"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    """
    pytest-playwright's context options with the cluster's URL, so `page.goto("/sync/")` goes
    to nginx. Its own fixture is computed once per session, with the single-daphne `base_url`
    the rest of the suite uses: `base_url` itself is not overridden here, or whichever folder
    ran first would decide it for every test.
    """
    return {**browser_context_args, "base_url": cluster.http_url}


def access_log(cluster: Cluster) -> list[dict[str, str]]:
    """nginx's access log, one dict per request (deploy/nginx-site.conf's `showcase` format)."""
    entries = []
    pattern = re.compile(
        r'(?P<addr>\S+):(?P<port>\d+) \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) [^"]*" '
        r"(?P<status>\d+) \d+ upstream=(?P<upstream>\S+) rt=\S+ "
        r'client_xff="(?P<xff>[^"]*)"'
    )
    for line in Path(cluster.run_dir / "nginx-access.log").read_text().splitlines():
        if found := pattern.match(line):
            entries.append(found.groupdict())
    return entries


def logged_request(
    cluster: Cluster, port: int, since: int = 0, timeout: float = 10.0
) -> dict[str, str]:
    """
    The access log's entry for the request from the client's `port`, among the entries after
    the first `since` (the log's length before the request: the kernel reuses ephemeral ports,
    and an earlier connection from the same port has an entry of its own). nginx writes a
    WebSocket's entry when the socket ends: close it first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in access_log(cluster)[since:]:
            if entry["port"] == str(port):
                return entry
        time.sleep(0.05)
    raise AssertionError(f"nginx logged no request from port {port} within {timeout} s")
