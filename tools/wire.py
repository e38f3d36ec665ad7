"""
A switch with latency, for `make cluster HOSTS=3 NETEM_DELAY=...`.

The usual tool is `tc qdisc add ... netem delay`: this machine's kernel has no netem
(CONFIG_NET_SCH_NETEM is not set; `tc` answers "Specified qdisc kind is unknown"). So instead of
a bridge, the switch's namespace runs this process: it reads every frame that arrives on one of
its ports (the switch ends of the hosts' veth links), holds it for the delay, and writes it to
the port where its destination lives (learnt from the frames' source addresses; unknown ones
and broadcasts go to every other port). One way, host to host, a frame waits `--delay-ms`.

    ip netns exec shw<pid>-net python -m tools.wire --delay-ms 2 port-a port-b port-c port-front

Frames keep the kernel's offload metadata (PACKET_VNET_HDR: the virtio-net header before each
frame), so TCP's large segments and unfinished checksums cross unchanged. tools/servers.py
starts and stops it; it runs until SIGTERM.
"""

import argparse
import asyncio
import collections
import contextlib
import signal
import socket
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263  # linux/socket.h
PACKET_VNET_HDR = 15  # linux/if_packet.h
PACKET_OUTGOING = 4  # a frame this socket (or the kernel) sent on the port: not ours to forward
FRAME_MAX = 65536 + 64
BROADCAST = b"\xff" * 6


class Wire:
    """Frames in from any port, out after `delay` seconds to the port of their destination."""

    def __init__(self, ports: list[str], delay: float) -> None:
        self.delay = delay
        self.sockets: dict[str, socket.socket] = {}
        for port in ports:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            sock.bind((port, 0))
            sock.setblocking(False)
            self.sockets[port] = sock
        self.where: dict[bytes, str] = {}  # MAC address -> port
        # One delay for every frame: the queue is in the order frames are due.
        self.queue: collections.deque[tuple[float, str, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Read every port."""
        for port, sock in self.sockets.items():
            self.loop.add_reader(sock, self.receive, port, sock)

    def receive(self, port: str, sock: socket.socket) -> None:
        """Take every frame waiting on a port."""
        while True:
            try:
                data, address = sock.recvfrom(FRAME_MAX)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            frame = data[10:]  # after the virtio-net header
            if len(frame) < 14:
                continue
            self.where[frame[6:12]] = port
            destination = frame[0:6]
            known = self.where.get(destination) if destination != BROADCAST else None
            targets = [known] if known else [p for p in self.sockets if p != port]
            due = time.monotonic() + self.delay
            for target in targets:
                if target != port:
                    self.queue.append((due, target, data))
            if self.timer is None:
                self.schedule()

    def schedule(self) -> None:
        """Wake when the oldest frame is due."""
        if self.queue:
            self.timer = self.loop.call_at(self._loop_time(self.queue[0][0]), self.send)
        else:
            self.timer = None

    def _loop_time(self, monotonic: float) -> float:
        return self.loop.time() + (monotonic - time.monotonic())

    def send(self) -> None:
        """Send every frame that is due."""
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            _, target, data = self.queue.popleft()
            # A full queue or a port going away drops the frame, as a switch would.
            with contextlib.suppress(OSError):
                self.sockets[target].send(data)
        self.schedule()


async def run(ports: list[str], delay: float) -> None:
    """Forward until SIGTERM or SIGINT."""
    wire = Wire(ports, delay)
    wire.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"forwarding between {', '.join(ports)} with {delay * 1000:g} ms", flush=True)
    await stop.wait()


def main() -> None:
    """`python -m tools.wire --delay-ms MS PORT...`"""
    parser = argparse.ArgumentParser(prog="python -m tools.wire", description=__doc__)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("ports", nargs="+")
    args = parser.parse_args()
    asyncio.run(run(args.ports, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
