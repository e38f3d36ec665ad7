"""
How tools/servers.py waits for a server it started to listen: as long as the process works
towards it (a busy machine makes a Python server's start slow, not stuck), and no longer than
its deadline once the process does nothing.
"""

import subprocess
import sys

import pytest

from tools.servers import free_port, wait_for_port

# Spends `argv[2]` seconds of CPU (a slow start: imports on a busy machine), then listens on
# port `argv[1]` until killed.
SLOW_START = """
import socket, sys, time
end = time.process_time() + float(sys.argv[2])
while time.process_time() < end:
    pass
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
time.sleep(60)
"""


def run(code: str, *args: object) -> subprocess.Popen:
    """Our own interpreter on a script of this module."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)])  # noqa: S603


def test_a_start_slower_than_the_deadline_is_waited_for_while_it_works() -> None:
    port = free_port()
    process = run(SLOW_START, port, 2.0)
    try:
        wait_for_port(port, process, timeout=1.0)
    finally:
        process.kill()
        process.wait()


def test_a_start_that_does_nothing_fails_once_the_deadline_has_passed() -> None:
    process = run("import time; time.sleep(60)")
    try:
        with pytest.raises(TimeoutError, match=r"no progress for 1\.0 s"):
            wait_for_port(free_port(), process, timeout=1.0)
    finally:
        process.kill()
        process.wait()
