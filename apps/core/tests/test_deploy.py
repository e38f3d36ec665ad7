"""
The deployment's configuration (deploy/, `make cluster`): the templates fill in to files nginx
and supervisord accept, and the settings pass `manage.py check --deploy`.

The cluster itself runs in the browser suite (e2e/cluster/).
"""

import configparser
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from tools.cluster import listen_queues
from tools.servers import (
    BASE_DIR,
    DOWN_AFTER_MS,
    LISTEN_BACKLOG,
    PLACEHOLDER,
    Host,
    PostgresProgram,
    RedisGroup,
    debug_refusal,
    find_binary,
    free_port,
    postgres_os_user,
    wait_for_port,
    write_cluster_config,
)

# The HTTPS settings, which `HTTPS=1` turns on behind a TLS-terminating proxy.
HTTPS_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_templates_fill_in_to_a_configuration_nginx_accepts(tmp_path: Path) -> None:
    endpoints = write_cluster_config(
        tmp_path, workers=3, port=18080, daphne_args=("--ping-interval", "20")
    )
    assert endpoints == [f"unix:{tmp_path}/daphne{n}.sock" for n in range(3)]
    for name in ("nginx.conf", "nginx-site.conf", "supervisord.conf"):
        assert not PLACEHOLDER.search((tmp_path / name).read_text()), name
    site = (tmp_path / "nginx-site.conf").read_text()
    for endpoint in endpoints:
        assert f"server {endpoint} max_fails=0;" in site
    nginx = find_binary("nginx", "/usr/sbin/nginx")  # make system-deps installs it
    checked = subprocess.run(  # noqa: S603
        [nginx, "-t", "-p", f"{tmp_path}/", "-e", "stderr", "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def supervisord_config(run_dir: Path) -> configparser.RawConfigParser:
    """The filled-in supervisord.conf with the files it includes, as supervisord reads them."""
    config = configparser.RawConfigParser()
    config.read(run_dir / "supervisord.conf")
    pattern = config["include"]["files"]
    assert pattern == f"{run_dir}/programs/*.conf"
    config.read(sorted(run_dir.glob("programs/*.conf")))
    return config


def test_supervisord_runs_every_program_with_restarts(tmp_path: Path) -> None:
    postgres = PostgresProgram(tmp_path / "pg-data", password="not-in-any-file", port=15432)
    write_cluster_config(
        tmp_path, workers=2, port=18080, daphne_args=("--ping-interval", "20"), postgres=postgres
    )
    config = supervisord_config(tmp_path)
    daphne = config["program:daphne"]
    assert daphne["numprocs"] == "2"
    command = " ".join(daphne["command"].split())
    assert f"-e unix:{tmp_path}/daphne%(process_num)d.sock:lockfile=1:backlog=" in command
    assert "--proxy-headers" in command
    # make run's flags, then the cluster's own handshake clock (docs/deploying.md).
    assert command.endswith(
        "--ping-interval 20 --websocket_connect_timeout 30 config.asgi:application"
    )
    assert config["program:worker"]["command"].endswith("manage.py runworker jobs")
    for program in ("redis", "sentinel", "daphne", "worker", "postgres"):
        assert config[f"program:{program}"]["autorestart"] == "true"
    # Redis: two servers that ask the Sentinels what to be, three Sentinels; every program
    # finds the primary through them.
    assert config["program:redis"]["numprocs"] == "2"
    assert "-m tools.servers redis-node" in config["program:redis"]["command"]
    assert config["program:sentinel"]["numprocs"] == "3"
    assert "-m tools.servers sentinel-node" in config["program:sentinel"]["command"]
    cluster = json.loads((tmp_path / "cluster.json").read_text())
    sentinels = ",".join(f"127.0.0.1:{port}" for port in cluster["redis"]["sentinels"])
    assert f'REDIS_SENTINELS="{sentinels}"' in config["supervisord"]["environment"]
    assert "SHOWCASE_HOST" not in config["supervisord"]["environment"]  # the machine's name


def test_postgres_runs_unprivileged_starts_first_and_stops_fast_and_last(tmp_path: Path) -> None:
    postgres = PostgresProgram(tmp_path / "pg-data", password="not-in-any-file", port=15432)
    write_cluster_config(tmp_path, workers=2, port=18080, postgres=postgres)
    config = supervisord_config(tmp_path)
    program = config["program:postgres"]
    command = program["command"].split()
    assert command[0].endswith("/bin/postgres")
    assert command[1:7] == ["-D", str(tmp_path / "pg-data"), "-h", "127.0.0.1", "-p", "15432"]
    assert "unix_socket_directories=" in command  # TCP only: no socket file left behind
    # It refuses root: as root (CI) the system user postgres runs it, else the current user.
    assert program["user"] == postgres_os_user() != "root"
    assert program["directory"] == str(tmp_path / "pg-data")
    # SIGINT is the fast shutdown (SIGTERM would wait for every client); supervisord stops
    # programs in reverse priority order, so the database goes last.
    assert program["stopsignal"] == "INT"
    others = [
        int(config[f"program:{p}"]["priority"]) for p in ("redis", "sentinel", "daphne", "worker")
    ]
    assert int(program["priority"]) < min(others)
    # The password reaches the programs through the environment, never a file on disk.
    for path in tmp_path.rglob("*.conf"):
        assert "not-in-any-file" not in path.read_text(), path


def test_a_cluster_without_its_own_postgres_drops_an_earlier_runs_program(tmp_path: Path) -> None:
    postgres = PostgresProgram(tmp_path / "pg-data", password="pw", port=15432)
    write_cluster_config(tmp_path, workers=1, port=18080, postgres=postgres)
    assert "program:postgres" in supervisord_config(tmp_path)
    write_cluster_config(tmp_path, workers=1, port=18080)  # DATABASE_URL names a database
    assert "program:postgres" not in supervisord_config(tmp_path)


def test_three_hosts_each_get_their_own_programs_and_directory(tmp_path: Path) -> None:
    postgres = PostgresProgram(tmp_path / "pg-data", password="pw", host="10.9.9.3", port=5432)
    hosts = [
        Host(name, tmp_path / "hosts" / name, f"10.9.9.{n}", f"test-{name}")
        for n, name in enumerate("abc", start=1)
    ]
    for host in hosts:
        host.run_dir.mkdir(parents=True)
    group = RedisGroup("10.9.9.3", [6379, 6380], [26379, 26380, 26381], "secret")
    endpoints = write_cluster_config(
        tmp_path, workers=4, port=18080, hosts=hosts, redis=group, postgres=postgres
    )
    # daphne0 and daphne1 on a, daphne2 and daphne3 on b, each on its host's address.
    assert endpoints == [
        "tcp:10.9.9.1:8000", "tcp:10.9.9.1:8001", "tcp:10.9.9.2:8002", "tcp:10.9.9.2:8003"
    ]  # fmt: skip
    site = (tmp_path / "nginx-site.conf").read_text()
    assert "server 10.9.9.2:8003 max_fails=0;" in site
    programs = {}
    for host in hosts:
        config = supervisord_config(host.run_dir)
        programs[host.name] = sorted(s.split(":")[1] for s in config if s.startswith("program:"))
        environment = config["supervisord"]["environment"]
        assert f'SHOWCASE_HOST="{host.name}"' in environment
        assert 'REDIS_SENTINELS="10.9.9.3:26379,10.9.9.3:26380,10.9.9.3:26381"' in environment
        # Everything a host's processes read is in the host's own directory.
        assert str(tmp_path / "hosts" / host.name) in config["supervisord"]["logfile"]
    assert programs == {
        "a": ["daphne", "worker"],
        "b": ["daphne"],
        "c": ["postgres", "redis", "sentinel"],
    }
    daphne_b = supervisord_config(hosts[1].run_dir)["program:daphne"]
    assert (daphne_b["numprocs"], daphne_b["numprocs_start"]) == ("2", "2")
    assert "tcp:port=80%(process_num)02d:interface=10.9.9.2" in daphne_b["command"]
    assert (tmp_path / "hosts" / "c" / "sentinel2" / "sentinel.conf").exists()


def check_deploy(**env: str) -> set[str]:
    """The ids of the warnings `manage.py check --deploy` reports with this environment."""
    environment = {k: v for k, v in os.environ.items() if k not in {"HTTPS", "DEBUG"}}
    environment.update(SECRET_KEY=secrets.token_urlsafe(50), DEBUG="0", **env)
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL"],
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    return {word.strip("():") for word in done.stderr.split() if word.startswith("(security.")}


def test_check_deploy_reports_only_https_settings_until_https_is_on() -> None:
    assert check_deploy(STATIC_MANIFEST="1") == HTTPS_WARNINGS
    assert check_deploy(STATIC_MANIFEST="1", HTTPS="1") == set()


def check_host(host: str, **env: str) -> subprocess.CompletedProcess:
    """`make run`'s first step: may DEBUG be served on this host with this environment?"""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DEBUG", "ALLOW_DEBUG_ON_PUBLIC_HOST")
    }
    command = [sys.executable, "-m", "tools.servers", "check", "daphne", "--host", host]
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        command, cwd=BASE_DIR, env={**environment, **env}, capture_output=True, text=True
    )


# Checked only, never bound: `check` exits before any server starts.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def test_make_run_refuses_debug_on_a_host_others_can_reach() -> None:
    refused = check_host(ALL_INTERFACES, DEBUG="1")  # the command `make run` runs first
    assert refused.returncode == 1
    assert "list every URL pattern" in refused.stderr
    assert "demo accounts' passwords" in refused.stderr
    for host in (ALL_INTERFACES, "192.0.2.10", "::", "showcase.example"):
        assert debug_refusal(host, {"DEBUG": "true"}) is not None, host
    # Loopback, DEBUG off, or said explicitly: served.
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert debug_refusal(host, {"DEBUG": "1"}) is None, host
    assert debug_refusal(ALL_INTERFACES, {"DEBUG": "0"}) is None
    allowed = {"DEBUG": "1", "ALLOW_DEBUG_ON_PUBLIC_HOST": "1"}
    assert debug_refusal(ALL_INTERFACES, allowed) is None
    assert check_host(ALL_INTERFACES, **allowed).returncode == 0


def test_make_run_checks_the_host_before_anything_else() -> None:
    # Before migrate and before the demo accounts are made: a refused run leaves nothing.
    planned = subprocess.run(
        ["make", "-n", "run", "HOST=0.0.0.0"],  # noqa: S607 (make, from PATH, as a developer runs it)
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    steps = [line for line in planned if "tools.servers" in line or "manage.py" in line]
    assert "tools.servers check daphne --host 0.0.0.0" in steps[0]


def test_nginx_bounds_the_time_to_send_the_request_headers(tmp_path: Path) -> None:
    write_cluster_config(tmp_path, workers=1, port=18080)
    site = (tmp_path / "nginx-site.conf").read_text()
    assert "client_header_timeout 5s;" in site


def test_listen_queues_take_a_herd_and_say_what_the_kernel_allows(tmp_path: Path) -> None:
    """Twisted's default of 50 (nginx's: 511) turned a herd of reconnecting browsers into 502s."""
    write_cluster_config(tmp_path, workers=2, port=18080)
    asked = f"backlog={LISTEN_BACKLOG}"
    assert f"listen 127.0.0.1:18080 {asked};" in (tmp_path / "nginx-site.conf").read_text()
    daphne = supervisord_config(tmp_path)["program:daphne"]["command"]
    assert f"sock:lockfile=1:{asked}" in daphne
    # With HOSTS=3 each daphne listens on TCP, with the same queue.
    hosts = [Host("a", tmp_path / "a", "10.0.0.1", "netns-a")]
    write_cluster_config(tmp_path / "three", workers=2, port=18080, hosts=hosts)
    three = supervisord_config(tmp_path / "a")["program:daphne"]["command"]
    assert f"interface=10.0.0.1:{asked}" in three
    assert LISTEN_BACKLOG >= 1000
    assert "the kernel allows up to 4,096" in listen_queues(cap=4096)
    lower = listen_queues(cap=128)
    assert "caps them at 128" in lower
    assert f"sysctl -w net.core.somaxconn={LISTEN_BACKLOG}" in lower


def test_a_sentinel_first_starts_once_the_first_primary_listens(tmp_path: Path) -> None:
    """A Sentinel started before its primary would judge it down and fail over at boot."""
    primary, port = free_port(), free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"bind 127.0.0.1\nport {port}\ndir {tmp_path}\n"
        f"sentinel monitor showcase 127.0.0.1 {primary} 2\n"
    )
    command = [sys.executable, "-m", "tools.servers", "sentinel-node", str(config)]
    sentinel = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [*command, "--first-primary", f"127.0.0.1:{primary}"], cwd=BASE_DIR
    )
    try:
        # Longer than a Sentinel needs to call a silent primary down: still waiting.
        with contextlib.suppress(subprocess.TimeoutExpired):
            sentinel.wait(2 * DOWN_AFTER_MS / 1000)
        assert sentinel.poll() is None
        assert b"sentinel-node" in Path(f"/proc/{sentinel.pid}/cmdline").read_bytes()
        with socket.create_server(("127.0.0.1", primary)):
            wait_for_port(port, sentinel)  # the same process, now redis-server --sentinel
        assert b"sentinel-node" not in Path(f"/proc/{sentinel.pid}/cmdline").read_bytes()
    finally:
        sentinel.terminate()
        sentinel.wait(10)
