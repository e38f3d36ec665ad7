"""
`make cluster`: the showcase as it is deployed, in the foreground, until Ctrl-C.

    python -m tools.cluster [--workers 2] [--port 8080]    # migrate, collectstatic, run
    python -m tools.cluster --hosts 3 [--delay 2ms]        # the same on three hosts
    python -m tools.cluster restart                        # rolling restart of every daphne
    python -m tools.cluster failover                       # SIGKILL the Redis primary

nginx on 127.0.0.1:PORT in front of WORKERS daphne processes, a Channels worker, PostgreSQL,
and Redis as a primary, a replica and three Sentinels, under supervisord (deploy/ holds their
configuration; tools/servers.py starts them). With `--hosts 3`, daphne runs on hosts "a" and
"b", PostgreSQL and Redis on "c": network namespaces this command makes and removes
(docs/deploying.md). Everything the cluster writes (filled-in configuration, sockets, logs, the
generated SECRET_KEY and database password, PostgreSQL's data directory, each host's own
directory) lives in the run directory, `.cluster/` by default (gitignored). With DATABASE_URL
set, the cluster uses that database instead and runs no PostgreSQL of its own.
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
# Where `collectstatic` writes (settings.STATIC_ROOT): the build that the deploy step then
# copies to each host.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or servers.BASE_DIR / "staticfiles")
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


def cluster_postgres(run_dir: Path, hosts: int = 1) -> servers.PostgresProgram:
    """
    The cluster's own PostgreSQL: its data directory under the run directory (with HOSTS=3,
    host c's), initialised the first time (as the user who will run it), its password
    generated then, a free port (with HOSTS=3, start_cluster puts it on host c).
    """
    data_dir = run_dir / "postgres" if hosts == 1 else servers.data_host_dir(run_dir) / "postgres"
    postgres = servers.PostgresProgram(
        data_dir=data_dir, password=generated(run_dir, "postgres_password")
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
    # A database named by the operator wins; otherwise the cluster runs its own PostgreSQL.
    database_url = os.environ.get("DATABASE_URL", "")
    postgres = None if database_url else cluster_postgres(run_dir, args.hosts)
    env = cluster_env(run_dir, DATABASE_URL=database_url or postgres.url(**CONNECTIONS))
    manage(env, "collectstatic", "--no-input", "-v", "0")
    cluster = servers.start_cluster(
        args.workers,
        args.port,
        run_dir,
        env,
        tuple(shlex.split(args.daphne_args)),
        static_root=STATIC_ROOT,
        hosts=args.hosts,
        delay_ms=delay_ms(args.delay),
        postgres=postgres,
        prepare=lambda env: migrate(env, postgres),
    )
    try:
        print(f"\nThe showcase: {cluster.http_url}/  (Ctrl-C stops everything)")
        if postgres is not None:
            print(f"PostgreSQL on {postgres.host}:{postgres.port} (password in {run_dir})")
        print(f"nginx -> {args.workers} daphne processes; in {run_dir}:")
        for host in cluster.hosts:
            where = f"host {host.name} ({host.address}, namespace {host.netns})"
            print(f"supervisord on {where if host.netns else 'this machine'}:")
            print(cluster.ctl("status", host=host.name), end="", flush=True)
        if cluster.network is not None and cluster.network.delay_ms:
            print(f"{cluster.network.delay_ms:g} ms between hosts, each way")
        print(listen_queues())
        print("Rolling restart of the daphne processes: make cluster-restart")
        print("Kill the Redis primary, watch Sentinel promote the replica: make cluster-failover")
        while all(s.process.poll() is None for s in [*cluster.supervisors, cluster.nginx]):
            time.sleep(0.5)
        print("a supervising process exited; stopping the cluster", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping the cluster…", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a signal after the loop ended, too
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()


def running_cluster(args: argparse.Namespace) -> servers.Cluster:
    """The cluster that runs from the run directory, or exit saying there is none."""
    run_dir = args.run_dir.resolve()
    try:
        cluster = servers.Cluster.load(run_dir)
        cluster.status()
    except (OSError, ValueError):
        sys.exit(f"no cluster runs in {args.run_dir} (start one with `make cluster`)")
    return cluster


def restart(args: argparse.Namespace) -> None:
    """Restart the running cluster's daphne processes one at a time."""
    cluster = running_cluster(args)
    servers.restart_one_at_a_time(cluster.run_dir, cluster.daphnes)
    print(f"restarted {', '.join(cluster.daphnes)}, one at a time")


def failover(args: argparse.Namespace) -> None:
    """Kill the running cluster's Redis primary (SIGKILL); say what Sentinel and supervisord do."""
    cluster = running_cluster(args)
    cluster.fail_over(report=lambda text: print(text, flush=True))


def delay_ms(text: str) -> float:
    """NETEM_DELAY's value ("2ms", "0.5ms", "2") in milliseconds."""
    value = text.strip().removesuffix("ms") or "0"
    try:
        return float(value)
    except ValueError:
        sys.exit(f"NETEM_DELAY={text!r}: give milliseconds, e.g. 2ms")


def arguments() -> argparse.Namespace:
    """Command-line options: `run` (the default) or `restart`."""
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__)
    parser.add_argument("action", nargs="?", choices=("run", "restart", "failover"), default="run")
    parser.add_argument("--workers", type=int, default=2, help="daphne processes")
    parser.add_argument("--hosts", type=int, choices=(1, 3), default=1, help="1, or 3 hosts")
    parser.add_argument("--delay", default="", help="latency between hosts, e.g. 2ms")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--daphne-args", default="", help="daphne's flags, as one string")
    return parser.parse_args()


if __name__ == "__main__":
    options = arguments()
    try:
        {"run": run, "restart": restart, "failover": failover}[options.action](options)
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C while starting: what had started is stopped (start_cluster)
    except RuntimeError as error:
        # Nothing runs any more (start_cluster stops what it started): say why, no traceback.
        sys.exit(f"make cluster: {error}")
