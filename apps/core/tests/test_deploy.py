"""
The deployment's configuration (deploy/, `make cluster`): the templates fill in to files nginx
and supervisord accept, and the settings pass `manage.py check --deploy`.

The cluster itself runs in the browser suite (e2e/cluster/).
"""

import configparser
import os
import secrets
import subprocess
import sys
from pathlib import Path

from tools.servers import (
    BASE_DIR,
    PLACEHOLDER,
    PostgresProgram,
    find_binary,
    postgres_os_user,
    write_cluster_config,
)

# The HTTPS settings, which `HTTPS=1` turns on behind a TLS-terminating proxy.
HTTPS_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_templates_fill_in_to_a_configuration_nginx_accepts(tmp_path: Path) -> None:
    sockets = write_cluster_config(
        tmp_path, workers=3, port=18080, daphne_args=("--ping-interval", "20")
    )
    assert sockets == [tmp_path / f"daphne{n}.sock" for n in range(3)]
    for name in ("nginx.conf", "nginx-site.conf", "supervisord.conf"):
        assert not PLACEHOLDER.search((tmp_path / name).read_text()), name
    site = (tmp_path / "nginx-site.conf").read_text()
    for socket in sockets:
        assert f"server unix:{socket} max_fails=0;" in site
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
    assert f"-e unix:{tmp_path}/daphne%(process_num)d.sock:lockfile=1" in command
    assert "--proxy-headers" in command
    assert command.endswith("--ping-interval 20 config.asgi:application")
    assert config["program:worker"]["command"].endswith("manage.py runworker jobs")
    for program in ("redis", "daphne", "worker", "postgres"):
        assert config[f"program:{program}"]["autorestart"] == "true"
    assert f'REDIS_URL="unix://{tmp_path}/redis.sock"' in config["supervisord"]["environment"]


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
    others = [int(config[f"program:{p}"]["priority"]) for p in ("redis", "daphne", "worker")]
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
