"""
`make cluster HOSTS=3` for the browser tests: daphne on hosts "a" and "b", PostgreSQL, Redis and
its Sentinels on "c" (network namespaces), nginx in front on a free port of 127.0.0.1. It is
the command itself (`python -m tools.cluster --hosts 3`), started once per session and stopped
the way a person stops it, with Ctrl-C (SIGINT); then nothing of it may be left: no namespace,
no process, no traceback or crash in any host's log.

It needs root (namespaces): elsewhere these tests are skipped, saying so.
"""

import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.conftest import CRASH, EXPECTED
from tools.servers import Cluster, leftovers, run_cluster_command, server_env

# Short, so users of a killed host's processes drop out of presence within seconds.
PRESENCE_TTL = 3.0
# nginx finding daphne on a host down (killed, restarting) passes the request on: the design.
EXPECTED_ON_HOSTS = re.compile(
    r"connect\(\) (to \S+ )?failed \(111: Connection refused\) while connecting to upstream"
)


@pytest.fixture(scope="session")
def hosts_cluster() -> Iterator[Cluster]:
    """The three-host cluster, for the whole session; stopped with Ctrl-C, then checked."""
    if os.geteuid() != 0:
        pytest.skip("make cluster HOSTS=3 makes network namespaces: it needs root")
    # Not under pytest's tmp_path (private to root): PostgreSQL runs as its own user.
    run_dir = Path(tempfile.mkdtemp(prefix="showcase-hosts-"))
    run_dir.chmod(0o755)
    env = server_env(
        FAST_PASSWORD_HASHER="1",
        PRESENCE_TTL=str(PRESENCE_TTL),
        STATIC_ROOT=str(run_dir / "collected-static"),
        # Every test signs its users up, all from this one address: more than the 3 sign-ups
        # an address may make at once (apps/core/throttle.py; its own tests cover it).
        WS_LIMITS=json.dumps({"signups_per_address": {"per_hour": 0}}),
    )
    runner, cluster = run_cluster_command(run_dir, hosts=3, env=env)
    yield cluster
    runner.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert runner.process.wait(timeout=120) in (0, 130)  # 130: stopped while starting
    left = leftovers(runner.process.pid, run_dir)
    assert not left, f"make cluster HOSTS=3 left behind: {left}"
    crashes = {
        name: [
            line
            for line in text.splitlines()
            if CRASH.search(line) and not (EXPECTED.search(line) or EXPECTED_ON_HOSTS.search(line))
        ]
        for name, text in cluster.logs().items()
    }
    crashes = {name: lines for name, lines in crashes.items() if lines}
    assert not crashes, f"the cluster's logs ({run_dir}) show crashes: {crashes}"
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser_context_args(
    browser_context_args: dict[str, Any], hosts_cluster: Cluster
) -> dict[str, Any]:
    """pytest-playwright's context options with the three-host cluster's URL (nginx)."""
    return {**browser_context_args, "base_url": hosts_cluster.http_url}
