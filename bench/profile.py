"""
Where an echo's time goes inside the server: py-spy samples daphne while the client drives one
endpoint, and the samples are sorted into the buckets that tell the consumer styles apart.

py-spy attaches to another process, which needs ptrace rights: root, or
`/proc/sys/kernel/yama/ptrace_scope` at 0. Without them the section says so and is skipped.
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Bucket name -> substrings of a sample's stack; a sample counts in every bucket it matches.
BUCKETS = {
    "thread crossings": ("asgiref/sync.py", "concurrent/futures/", "threading.py"),
    "database cleanup": ("close_old_connections",),
    "WebSocket framing": ("autobahn/",),
}
# Leaf frames of a thread that is blocked, not working: the loop in epoll, the worker waiting.
IDLE_LEAVES = ("EpollSelector.select", "Condition.wait", "_worker (concurrent/futures/thread.py")
WORKER_THREAD = "ThreadPoolExecutor"


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter, or on PATH."""
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, rate: int = 200) -> list[tuple[list[str], int]] | str:
    """Sample a process; return (frames, count) pairs, or why it could not be done."""
    binary = py_spy()
    if binary is None:
        return "py-spy is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "samples.txt"
        done = subprocess.run(
            [binary, "record", "--pid", str(pid), "--duration", str(round(seconds)),
             "--rate", str(rate), "--format", "raw", "--threads", "--output", str(output)],
            capture_output=True, text=True, timeout=seconds + 30,
        )  # fmt: skip
        if done.returncode != 0 or not output.exists():
            return (done.stderr.strip().splitlines() or ["py-spy failed"])[-1]
        samples = []
        for line in output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack:
                samples.append((stack.split(";"), int(count)))
        return samples


def shares(samples: list[tuple[list[str], int]]) -> dict[str, float]:
    """Percentage of the busy samples in each bucket and on the worker thread, and idle share."""
    total = sum(count for _, count in samples) or 1
    busy = [(";".join(frames), count) for frames, count in samples
            if not frames[-1].startswith(IDLE_LEAVES)]  # fmt: skip
    working = sum(count for _, count in busy) or 1
    result = {
        name: 100 * sum(c for stack, c in busy if any(n in stack for n in needles)) / working
        for name, needles in BUCKETS.items()
    }
    result["on the worker thread"] = (
        100 * sum(c for stack, c in busy if stack.startswith("thread") and WORKER_THREAD in
                  stack.split(";", 1)[0]) / working
    )  # fmt: skip
    result["idle"] = 100 * (1 - working / total)
    result["samples"] = total
    return result


def wait_then_record(pid: int, delay: float, seconds: float) -> list | str:
    """Let the load reach its pace, then sample (run in a thread beside the client)."""
    time.sleep(delay)
    return record(pid, seconds)
