"""
`make storm` in small, inside `make test`: 200 logged-in lobby sockets (10 users x 20 tabs)
through a cluster of its own, every one reset at once while a chatter talks. All must come back,
resume, and have every message once, in order; presence must be right after its TTL, the lobby
group in Redis exactly the open sockets (and empty once they close); no 502, no traceback
(bench/storm.py checks all of it and says what failed).

Its own cluster, not the session's: the storm lifts the per-user and per-address limits that
the other tests through nginx rely on.
"""

import subprocess
import sys

from tools.servers import BASE_DIR, SERVER_FLAGS


def test_a_small_storm_comes_back_whole() -> None:
    command = [
        sys.executable, "-m", "bench.storm",
        "--users", "10", "--tabs", "20", "--rounds", "reset",
        "--presence-ttl", "5", "--deadline", "60",
        "--daphne-args", " ".join(SERVER_FLAGS["daphne"]),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=BASE_DIR)
    report = done.stdout + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert "Result: PASSED" in done.stdout, report
    assert "handshakes refused (client side): none" in done.stdout, report
