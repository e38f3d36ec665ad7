"""
`make cluster`: the showcase as it is deployed, in the foreground, until Ctrl-C.

    python -m tools.cluster [--workers 2] [--port 8080]    # migrate, collectstatic, run
    python -m tools.cluster restart                        # rolling restart of every daphne

nginx on 127.0.0.1:PORT in front of WORKERS daphne processes, a Channels worker and a
redis-server under supervisord (deploy/ holds their configuration; tools/servers.py starts
them). Everything the cluster writes (filled-in configuration, sockets, logs, the generated
SECRET_KEY) lives in the run directory, `.cluster/` by default (gitignored).
"""

import argparse
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from tools import servers

RUN_DIR = servers.BASE_DIR / ".cluster"


def secret_key(run_dir: Path) -> str:
    """SECRET_KEY from the environment, else the one generated into the run directory once."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = run_dir / "secret_key"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


def manage(env: dict[str, str], *args: str) -> None:
    """Run one manage.py command with the cluster's environment; stop if it fails."""
    command = [sys.executable, "manage.py", *args]
    subprocess.run(command, env=env, cwd=servers.BASE_DIR, check=True)


def prepare(env: dict[str, str]) -> None:
    """What a deployment does before starting its processes: migrate, collect static files."""
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "collectstatic", "--no-input", "-v", "0")


def cluster_env(run_dir: Path, **overrides: str) -> dict[str, str]:
    """The processes' environment: production-shaped (deploy/supervisord.conf adds the rest)."""
    return servers.server_env(
        SECRET_KEY=secret_key(run_dir), DEBUG="0", STATIC_MANIFEST="1", **overrides
    )


def listen_queues(cap: int | None = None) -> str:
    """What the listen queues are, and whether the kernel (`cap`: read it) lets them be so long."""
    asked, cap = servers.LISTEN_BACKLOG, cap or servers.listen_queue_cap()
    said = f"Listen queues: nginx and each daphne ask for {asked:,}"
    if cap is None:
        return f"{said} (the kernel's cap, net.core.somaxconn, could not be read)."
    if cap >= asked:
        return f"{said}; the kernel allows up to {cap:,} (net.core.somaxconn)."
    return (
        f"{said}, but the kernel caps them at {cap:,} (net.core.somaxconn): a herd of more "
        f"reconnecting browsers than that can find them full (a 502). To raise it, as root: "
        f"sysctl -w net.core.somaxconn={asked} (this command changes nothing by itself)."
    )


def run(args: argparse.Namespace) -> None:
    """Start the cluster and keep it up until Ctrl-C (or SIGTERM); then stop all of it."""
    run_dir = args.run_dir.resolve()

    def stop(signum: int, frame: FrameType | None) -> None:
        # Once: a second Ctrl-C (make passes its own on, impatient hands press twice) must
        # not cut the stop short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Installed explicitly, before anything starts (a Ctrl-C while starting stops what had
    # started: start_cluster): a shell that starts us in the background makes us ignore SIGINT.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    env = cluster_env(run_dir)
    prepare(env)
    cluster = servers.start_cluster(
        args.workers, args.port, run_dir, env, tuple(shlex.split(args.daphne_args))
    )
    try:
        print(f"\nThe showcase: {cluster.http_url}/  (Ctrl-C stops everything)")
        print(f"nginx -> {args.workers} daphne processes; supervisord runs, in {run_dir}:")
        print(cluster.ctl("status"), end="", flush=True)
        print(listen_queues())
        print("Rolling restart of the daphne processes: make cluster-restart")
        while cluster.supervisor.process.poll() is None and cluster.nginx.process.poll() is None:
            time.sleep(0.5)
        print("a supervising process exited; stopping the cluster", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping the cluster…", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a signal after the loop ended, too
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()


def restart(args: argparse.Namespace) -> None:
    """Restart the running cluster's daphne processes one at a time."""
    run_dir = args.run_dir.resolve()
    if not (run_dir / "supervisor.sock").exists():
        sys.exit(f"no cluster runs in {args.run_dir} (start one with `make cluster`)")
    processes = servers.supervisor_rpc(run_dir).getAllProcessInfo()
    names = [f"{p['group']}:{p['name']}" for p in processes if p["group"] == "daphne"]
    servers.restart_one_at_a_time(run_dir, names)
    print(f"restarted {', '.join(names)}, one at a time")


def arguments() -> argparse.Namespace:
    """Command-line options: `run` (the default) or `restart`."""
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__)
    parser.add_argument("action", nargs="?", choices=("run", "restart"), default="run")
    parser.add_argument("--workers", type=int, default=2, help="daphne processes")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--daphne-args", default="", help="daphne's flags, as one string")
    return parser.parse_args()


if __name__ == "__main__":
    options = arguments()
    try:
        restart(options) if options.action == "restart" else run(options)
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C while starting: what had started is stopped (start_cluster)
