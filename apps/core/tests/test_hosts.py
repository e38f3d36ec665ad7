"""
The hosts of `make cluster HOSTS=3` (tools/servers.py Network, tools/wire.py): network
namespaces joined by veth links on a private subnet, removed without a trace, swept when their
maker died, and the latency NETEM_DELAY puts between them. They need root.
"""

import os
import socket
import subprocess
import sys
import time

import pytest

from tools import servers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

ECHO = (
    "import socket, sys\n"
    "server = socket.create_server((sys.argv[1], 9000))\n"
    "print('listening', flush=True)\n"
    "while True:\n"
    "    connection, _ = server.accept()\n"
    "    while data := connection.recv(100):\n"
    "        connection.sendall(data)\n"
    "    connection.close()\n"
)


def namespaces() -> set[str]:
    return {line.split()[0] for line in servers.ip("netns", "list").splitlines()}


def round_trips(network: servers.Network, host: str, count: int = 5) -> list[float]:
    """Seconds for a TCP connect plus a 100-byte echo to `host`, from this machine."""
    command = ["ip", "netns", "exec", network.netns(host), sys.executable, "-c", ECHO]
    address = network.address(host)
    server = subprocess.Popen([*command, address], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        times = []
        for _ in range(count):
            started = time.monotonic()
            with socket.create_connection((network.address(host), 9000), 5) as connection:
                connection.sendall(b"x" * 100)
                received = 0
                while received < 100:
                    received += len(connection.recv(100))
            times.append(time.monotonic() - started)
        return times
    finally:
        server.kill()
        server.wait()


def test_hosts_are_namespaces_on_a_private_subnet_and_leave_nothing() -> None:
    network = servers.create_network()
    try:
        assert set(network.namespaces()) <= namespaces()
        assert network.subnet.is_private and str(network.subnet).startswith("10.213.")
        addresses = servers.ip("-n", network.netns("c"), "-4", "-o", "addr")
        assert f"{network.address('c')}/24" in addresses
        # Nothing leads off the subnet: no default route inside a host.
        assert "default" not in servers.ip("-n", network.netns("a"), "route")
        assert min(round_trips(network, "c", 2)) < 1.0
    finally:
        network.remove()
    assert not set(network.namespaces()) & namespaces()
    assert network.front not in servers.ip("-o", "link")


def test_a_dead_runs_namespaces_are_swept() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names the namespace, and it is gone
    stale = f"{servers.NETNS_PREFIX}{dead.pid}-a"
    servers.ip("netns", "add", stale)
    try:
        assert stale in servers.sweep_stale_networks()
        assert stale not in namespaces()
    finally:
        servers.ip("netns", "del", stale, check=False)


def test_netem_delay_puts_latency_between_hosts() -> None:
    network = servers.create_network(delay_ms=20)
    try:
        # A connect and one echo: two round trips, four one-way trips of 20 ms.
        assert min(round_trips(network, "c")) >= 0.08
    finally:
        network.remove()
    assert not set(network.namespaces()) & namespaces()
