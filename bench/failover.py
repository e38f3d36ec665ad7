"""
Redis failovers during lobby chat: how many chat messages were acknowledged, and how many of
those were lost (docs/deploying.md, "Redis failover").

    python -m bench.failover --run-dir .cluster --failovers 20    # against a running cluster

Two new users on lobby sockets through nginx: one says something, waits for its answer (or
15 s), then says the next 250 ms later (under the lobby's rate limit of 5 a second), as a
person does; the other listens. A message is acknowledged when its `chat`
envelope, with its id, comes back to the sender. Meanwhile the cluster's Redis primary is
killed (SIGKILL) again and again, each time once the killed server has rejoined as a replica.
A socket that closes reconnects at once with `?after=<last id>`, as the page does. At the end,
every acknowledged message must have reached the listener once, and the ids only increased.
Bounded: `--failovers` kills, then it stops by itself.
"""

import argparse
import asyncio
import contextlib
import http.cookiejar
import json
import re
import secrets
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tools.servers import Cluster

PASSWORD = "a long benchmark passphrase"  # noqa: S105 (new throwaway accounts)


def sign_up(base: str) -> str:
    """A new account through the sign-up form (CSRF included); its session's Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/signup/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {
        "username": f"failover-{secrets.token_hex(4)}",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "csrfmiddlewaretoken": token,
    }
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1: the cluster's nginx)
        f"{base}/accounts/signup/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": f"{base}/accounts/signup/"},
    )
    opener.open(request, timeout=30)
    return "; ".join(f"{c.name}={c.value}" for c in jar)


class Lobby:
    """One user's lobby socket that reconnects (with `?after=`) whenever it closes."""

    def __init__(self, ws_url: str, origin: str, cookie: str) -> None:
        self.url, self.origin, self.cookie = ws_url + "/ws/auth/", origin, cookie
        self.chats: dict[int, str] = {}  # id -> text, each once
        self.arrived: dict[int, float] = {}  # id -> when it first arrived (time.monotonic())
        self.arrivals: list[int] = []  # ids in arrival order, duplicates included
        self.errors: list[str] = []
        self.closes: list[int | None] = []
        self.last = 0
        self.socket: Any = None
        self.ready = asyncio.Event()
        self.the_end = asyncio.Event()  # "the end" arrived
        self.pending: str | None = None  # the message said last, until it is answered
        self.answered = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop`; record every chat envelope."""
        while not stop.is_set():
            url = self.url + (f"?after={self.last}" if self.last else "")
            try:
                async with connect(
                    url, origin=self.origin, additional_headers={"Cookie": self.cookie}
                ) as socket:
                    self.socket = socket
                    self.ready.set()
                    async for text in socket:
                        envelope = json.loads(text)
                        if envelope["type"] == "chat":
                            self.arrivals.append(envelope["id"])
                            self.chats.setdefault(envelope["id"], envelope["text"])
                            self.arrived.setdefault(envelope["id"], time.monotonic())
                            self.last = max(self.last, envelope["id"])
                            if envelope["text"] == "the end":
                                self.the_end.set()
                            if envelope["text"] == self.pending:
                                self.answered.set()
                        elif envelope["type"] == "error":
                            self.errors.append(envelope["code"])
                            self.answered.set()
                    self.closes.append(socket.close_code)
            except (OSError, ConnectionClosed) as error:
                self.closes.append(getattr(error, "code", None))
            self.ready.clear()
            self.socket = None
            await asyncio.sleep(0.1)

    async def say(self, text: str, wait: float = 15.0) -> bool:
        """
        Send a chat message if the socket is open, and wait (up to `wait` s) for its answer,
        as a person waits to see their message: its `chat` envelope or an error. Whether it
        went out.
        """
        self.pending = text
        self.answered.clear()
        try:
            await self.socket.send(json.dumps({"type": "chat", "text": text}))
        except (AttributeError, ConnectionClosed):
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.answered.wait(), wait)
        return True


async def chat_through_failovers(cluster: Cluster, failovers: int) -> dict[str, Any]:
    """The measurement; see the module's docstring."""
    base = cluster.http_url
    origin = base
    speaker = Lobby(cluster.ws_url, origin, await asyncio.to_thread(sign_up, base))
    listener = Lobby(cluster.ws_url, origin, await asyncio.to_thread(sign_up, base))
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(lobby.run(stop)) for lobby in (speaker, listener)]
    await asyncio.wait_for(asyncio.gather(speaker.ready.wait(), listener.ready.wait()), 30)
    results: list[dict[str, Any]] = []
    done = threading.Event()

    def fail_over_again_and_again() -> None:
        for _ in range(failovers):
            results.append(cluster.fail_over())
            time.sleep(1.0)
        done.set()

    sent: list[tuple[float, str]] = []
    thread = threading.Thread(target=fail_over_again_and_again, daemon=True)
    thread.start()
    while not done.is_set():
        text = f"m{len(sent)}"
        if await speaker.say(text):
            sent.append((time.monotonic(), text))
        await asyncio.sleep(0.25)
    await speaker.say("the end")
    # Whatever has not arrived within a minute is counted lost below.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.the_end.wait(), 60)
    stop.set()
    for lobby in (speaker, listener):
        if lobby.socket is not None:
            await lobby.socket.close()
    await asyncio.gather(*tasks, return_exceptions=True)

    acknowledged = dict(speaker.chats)  # the sender's own envelopes: id -> text
    heard = set(listener.chats.values())
    lost = sorted(text for text in acknowledged.values() if text not in heard)
    # The lobby flows again: the first acknowledgement of a message sent after each kill.
    sent_at = {text: at for at, text in sent}
    flowing = []
    for result in results:
        killed = result["killed_at"]
        acks = [
            speaker.arrived[i] - killed
            for i, text in acknowledged.items()
            if sent_at.get(text, 0) > killed
        ]
        flowing.append(min(acks, default=float("nan")))
    return {
        "failovers": len(results),
        "promoted_s": [r["promoted"] for r in results],
        "rejoined_s": [r["rejoined"] for r in results],
        "lobby_flows_again_s": flowing,
        "sent": len(sent) + 1,
        "acknowledged": len(acknowledged),
        "refused": speaker.errors.count("chat_not_saved"),
        "unanswered": len(sent) + 1 - len(acknowledged) - speaker.errors.count("chat_not_saved"),
        "lost": lost,
        "ids_increase": listener.arrivals == sorted(listener.arrivals)
        or sorted(set(listener.arrivals)) == sorted(listener.chats),
        "closes": sorted({str(c) for lobby in (speaker, listener) for c in lobby.closes}),
    }


def summary(result: dict[str, Any]) -> str:
    """One paragraph of the figures."""

    def spread(values: list[float]) -> str:
        values = [v for v in values if v == v]
        if not values:
            return "n/a"
        return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"

    return (
        f"{result['failovers']} failovers: replica promoted {spread(result['promoted_s'])}; "
        f"killed server a replica again {spread(result['rejoined_s'])}; lobby flowing again "
        f"{spread(result['lobby_flows_again_s'])}. {result['sent']} chat messages sent, "
        f"{result['acknowledged']} acknowledged, {result['refused']} refused (chat_not_saved), "
        f"{result['unanswered']} unanswered (their socket closed first), "
        f"{len(result['lost'])} acknowledged and lost; socket closes seen: "
        f"{', '.join(result['closes']) or 'none'}."
    )


def main() -> None:
    """`python -m bench.failover --run-dir .cluster [--failovers 20]`"""
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path(".cluster"))
    parser.add_argument("--failovers", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    cluster = Cluster.load(args.run_dir.resolve())
    port = json.loads((args.run_dir / "cluster.json").read_text()).get("port")
    if port is None:
        sys.exit("this cluster's cluster.json names no port; restart it with this version")
    cluster_port_url(cluster, port)
    result = asyncio.run(chat_through_failovers(cluster, args.failovers))
    print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if result["lost"]:
        sys.exit(f"acknowledged and lost: {result['lost']}")


def cluster_port_url(cluster: Cluster, port: int) -> None:
    """Point a loaded cluster's URLs at nginx's port (cluster.json records it)."""
    from tools.servers import ServerProcess

    cluster.nginx = ServerProcess("nginx", port, None, cluster.run_dir / "nginx.log")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
