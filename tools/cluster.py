"""
`make cluster`: the showcase as it is deployed, in the foreground, until Ctrl-C.

    python -m tools.cluster [--workers 2] [--port 8080]    # migrate, collectstatic, run
    python -m tools.cluster restart                        # rolling restart of every daphne

nginx on 127.0.0.1:PORT in front of WORKERS daphne processes, a Channels worker, a
redis-server and PostgreSQL under supervisord (deploy/ holds their configuration;
tools/servers.py starts them). Everything the cluster writes (filled-in configuration, sockets,
logs, the generated SECRET_KEY and database password, PostgreSQL's data directory) lives in the
run directory, `.cluster/` by default (gitignored). With DATABASE_URL set, the cluster uses that
database instead and runs no PostgreSQL of its own.
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
# How the processes keep their database connections (docs/styles.md, "Database connections"):
# one per process, reused, tested before reuse, so a restarted PostgreSQL costs no socket an
# error and no message pays for a new connection.
CONNECTIONS = {"conn_max_age": "60", "conn_health_checks": "true"}


def generated(run_dir: Path, name: str) -> str:
    """A secret generated into the run directory the first time, and read from there after."""
    path = run_dir / name
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


def secret_key(run_dir: Path) -> str:
    """SECRET_KEY from the environment, else the one generated into the run directory once."""
    return os.environ.get("SECRET_KEY") or generated(run_dir, "secret_key")


def cluster_postgres(run_dir: Path, host: str = "127.0.0.1") -> servers.PostgresProgram:
    """
    The cluster's own PostgreSQL: its data directory under the run directory, initialised the
    first time (as the user who will run it), its password generated then, listening on
    `host` (another network namespace's address, say) on a free port.
    """
    postgres = servers.PostgresProgram(
        data_dir=run_dir / "postgres", password=generated(run_dir, "postgres_password"), host=host
    )
    if postgres.init():
        print(f"PostgreSQL: a new data directory in {postgres.data_dir}", flush=True)
    return postgres


def manage(env: dict[str, str], *args: str) -> None:
    """Run one manage.py command with the cluster's environment; stop if it fails."""
    command = [sys.executable, "manage.py", *args]
    subprocess.run(command, env=env, cwd=servers.BASE_DIR, check=True)


def migrate(env: dict[str, str], postgres: servers.PostgresProgram | None) -> None:
    """Create the cluster's database the first time, then bring its tables up to date."""
    if postgres is not None:
        servers.create_database(postgres.url())
    manage(env, "migrate", "--no-input", "-v", "0")


def cluster_env(run_dir: Path, **overrides: str) -> dict[str, str]:
    """The processes' environment: production-shaped (deploy/supervisord.conf adds the rest)."""
    return servers.server_env(
        SECRET_KEY=secret_key(run_dir), DEBUG="0", STATIC_MANIFEST="1", **overrides
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
    # A database named by the operator wins; otherwise the cluster runs its own PostgreSQL.
    database_url = os.environ.get("DATABASE_URL", "")
    postgres = None if database_url else cluster_postgres(run_dir)
    env = cluster_env(run_dir, DATABASE_URL=database_url or postgres.url(**CONNECTIONS))
    manage(env, "collectstatic", "--no-input", "-v", "0")
    cluster = servers.start_cluster(
        args.workers,
        args.port,
        run_dir,
        env,
        tuple(shlex.split(args.daphne_args)),
        postgres=postgres,
        prepare=lambda: migrate(env, postgres),
    )
    try:
        print(f"\nThe showcase: {cluster.http_url}/  (Ctrl-C stops everything)")
        if postgres is not None:
            print(f"PostgreSQL on {postgres.host}:{postgres.port} (password in {run_dir})")
        print(f"nginx -> {args.workers} daphne processes; supervisord runs, in {run_dir}:")
        print(cluster.ctl("status"), end="", flush=True)
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
    except RuntimeError as error:
        # Nothing runs any more (start_cluster stops what it started): say why, no traceback.
        sys.exit(f"make cluster: {error}")
