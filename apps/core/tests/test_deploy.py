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
    debug_refusal,
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
    assert f"-e unix:{tmp_path}/daphne%(process_num)d.sock:lockfile=1" in command
    assert "--proxy-headers" in command
    assert command.endswith("--ping-interval 20 config.asgi:application")
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
