"""
`make cluster HOSTS=3` that fails to start stops what it had started and removes its hosts: no
namespace, no process. Here nginx refuses its configuration once everything else runs (with no
daphne process, its upstream is empty). Ctrl-C after a start is e2e/hosts/conftest.py's
business.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tools import servers


@pytest.mark.skipif(os.geteuid() != 0, reason="make cluster HOSTS=3 needs root")
def test_a_failed_start_leaves_no_namespace_and_no_process() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="showcase-hosts-failing-"))
    run_dir.chmod(0o755)  # PostgreSQL runs as its own user
    env = servers.server_env(STATIC_ROOT=str(run_dir / "collected-static"))
    with pytest.raises(RuntimeError, match="did not start"):
        servers.run_cluster_command(run_dir, hosts=3, workers=0, env=env)
    runner = servers.STARTED[-1]
    assert runner.process.returncode == 1
    assert "make cluster: the cluster failed to start" in runner.log()
    assert "Traceback" not in runner.log()
    assert servers.leftovers(runner.process.pid, run_dir) == []
    shutil.rmtree(run_dir, ignore_errors=True)
