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

from tools.cluster import listen_queues
from tools.servers import (
    BASE_DIR,
    LISTEN_BACKLOG,
    PLACEHOLDER,
    find_binary,
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


def test_supervisord_runs_every_program_with_restarts(tmp_path: Path) -> None:
    write_cluster_config(tmp_path, workers=2, port=18080, daphne_args=("--ping-interval", "20"))
    config = configparser.RawConfigParser()
    config.read(tmp_path / "supervisord.conf")
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
    for program in ("redis", "daphne", "worker"):
        assert config[f"program:{program}"]["autorestart"] == "true"
    assert f'REDIS_URL="unix://{tmp_path}/redis.sock"' in config["supervisord"]["environment"]


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


def test_listen_queues_take_a_herd_and_say_what_the_kernel_allows(tmp_path: Path) -> None:
    """Twisted's default of 50 (nginx's: 511) turned a herd of reconnecting browsers into 502s."""
    write_cluster_config(tmp_path, workers=2, port=18080)
    asked = f"backlog={LISTEN_BACKLOG}"
    assert f"listen 127.0.0.1:18080 {asked};" in (tmp_path / "nginx-site.conf").read_text()
    command = configparser.RawConfigParser()
    command.read(tmp_path / "supervisord.conf")
    assert f"sock:lockfile=1:{asked}" in command["program:daphne"]["command"]
    assert LISTEN_BACKLOG >= 1000
    assert "the kernel allows up to 4,096" in listen_queues(cap=4096)
    lower = listen_queues(cap=128)
    assert "caps them at 128" in lower
    assert f"sysctl -w net.core.somaxconn={LISTEN_BACKLOG}" in lower
