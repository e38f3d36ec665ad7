"""A real daphne stopped in the middle of an in-process job exits at once, cleanly."""

import json
import time
from pathlib import Path

import websockets
from django.conf import settings

from tools.servers import server_env, start_daphne


async def test_daphne_stopped_mid_job_abandons_it_and_exits(tmp_path: Path) -> None:
    # Nothing here touches the database: a path of its own keeps the server off the real one.
    env = server_env(DATABASE_PATH=str(tmp_path / "db.sqlite3"))
    server = start_daphne(env, name="daphne-jobs-shutdown")
    try:
        async with websockets.connect(
            server.ws_url + "/ws/jobs/", origin=server.http_url
        ) as socket:
            assert json.loads(await socket.recv())["worker"] == "in-process"
            await socket.send(json.dumps({"type": "job", "n": settings.JOBS_MAX_N}))
            assert json.loads(await socket.recv())["type"] == "queued"
            assert json.loads(await socket.recv())["type"] == "progress"  # the job is running
    finally:
        started = time.monotonic()
        server.stop(timeout=20)
    # Without the check, the worker thread blocks for good on a reply through the stopped
    # loop, the process never exits, and stop() falls back to SIGKILL (returncode -9).
    assert server.process.returncode == 0
    assert time.monotonic() - started < 15
    assert "abandoned" in server.log()
    assert "Traceback" not in server.log()
