"""
`make storm`: a thousand logged-in lobby sockets through `make cluster`, cut at once, and back.

    python -m bench.storm                                  # 50 users x 20 tabs, both rounds
    python -m bench.storm --users 10 --tabs 20 --rounds reset --deadline 60   # the small form

A cluster of its own (tools/servers.py start_cluster: nginx, WORKERS daphne processes, the
worker, Redis) on a throwaway database. Each user logs in over HTTP as a browser does (the
login form's CSRF token, the site's Origin), and each of their tabs is a lobby socket through
nginx that behaves as the page's console does (static/js/console.js and lobby.js): the same
reconnect schedule and jitter (read from console.js itself), `?after=<last id>` once it has
seen the lobby, each message shown once by id. A chatter keeps saying things over HTTP
(POST /http/lobby/say/) all along. Then, round by round:

- reset: every socket is reset at once from the client side (a TCP reset, as a network blip or
  a phone changing networks does);
- proxy: nginx is stopped the fast way (SIGTERM: every connection cut, as a crash or a
  restart of the host's proxy does) and started again. Not a reload: `nginx -s reload` lets
  the old workers keep their sockets until those close, so nobody would reconnect.

Each time, every tab must come back, resume, and have every message the chatter got an id for,
once each and in order. Once the chatter stops and presence has had its TTL, every tab must
see every user online, and the lobby group in Redis must hold exactly the sockets' channels.
The run fails on any of that, on any traceback in any process's log, or on any 502 in nginx's
access log; it prints how long until all were back, each process's peak Redis connections,
the reconnects per second the servers saw, the handshakes refused, and the spread of the
reconnect attempts per 100 ms. Everything it starts, it stops; it gives up after --deadline
seconds per round.
"""

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

import redis.asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tools import servers

CONSOLE_JS = servers.BASE_DIR / "static" / "js" / "console.js"
PASSWORD = "a storm of passphrases"  # noqa: S105 - throwaway accounts of a throwaway database
GROUP_KEY = "asgi:group:lobby"  # channels-redis: one sorted set of channel names per group
PRESENCE_KEY = "auth_ws:presence"  # apps/auth_ws/presence.py: "channel|username" members
# Every limit a thousand sockets from one address, one chatter and fifty logins would meet:
# 0 turns each off (docs/settings.md). Kinds a branch does not know are ignored.
NO_LIMITS = {
    "lobby": {"messages_per_second": 0},
    "lobby_per_user": {"messages_per_second": 0},
    "connections": {"per_user": 0, "per_address": 0},
    "login": {"failures": 0},
}


# ---------------------------------------------------------------------------- the console's policy
@dataclass(frozen=True)
class Backoff:
    """The console's reconnect policy: capped exponential backoff with "equal jitter"."""

    base_ms: int
    cap_ms: int
    abnormal: frozenset[int]  # close codes after which the console reconnects

    def ceiling_ms(self, attempt: int) -> int:
        """The backoff before jitter for attempt 1, 2, ..."""
        return min(self.cap_ms, self.base_ms * 2 ** (attempt - 1))

    def delay_ms(self, attempt: int, rand: float) -> int:
        """The wait before attempt `attempt`, for Math.random() returning `rand`."""
        ceiling = self.ceiling_ms(attempt)
        return math.floor(ceiling / 2 + rand * (ceiling / 2) + 0.5)  # JavaScript's Math.round


def console_backoff(source: Path = CONSOLE_JS) -> Backoff:
    """The policy as static/js/console.js states it (one place: the page's own constants)."""
    text = source.read_text()

    def constant(name: str) -> str:
        found = re.search(rf"^const {name} = (.+);$", text, re.MULTILINE)
        if found is None:
            raise ValueError(f"{source.name} no longer defines {name}")
        return found.group(1)

    codes = re.fullmatch(r"new Set\(\[([\d,\s]+)\]\)", constant("ABNORMAL_CODES"))
    if codes is None:
        raise ValueError(f"{source.name}: ABNORMAL_CODES is not a Set of numbers")
    return Backoff(
        base_ms=int(constant("RECONNECT_BASE_MS")),
        cap_ms=int(constant("RECONNECT_CAP_MS")),
        abnormal=frozenset(int(code) for code in codes.group(1).split(",")),
    )


# ---------------------------------------------------------------------------- logging in
class Browser:
    """One user's cookie jar: logs in through the login form, CSRF token and Origin included."""

    def __init__(self, base_url: str, username: str) -> None:
        self.base_url = base_url
        self.username = username
        self.jar = CookieJar()
        self.opener = build_opener(HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        """The value of one of the jar's cookies."""
        return next(c.value for c in self.jar if c.name == name)

    def cookie_header(self) -> str:
        """Every cookie of the jar, as a `Cookie` header value."""
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, bytes]:
        """POST a form as the page would: its CSRF token, the site's Origin and Referer."""
        data = urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        request = Request(  # noqa: S310 - the cluster's own http:// URL
            self.base_url + path,
            data,
            headers={"Origin": self.base_url, "Referer": self.base_url + path},
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read()
        except HTTPError as error:
            return error.code, error.read()

    def log_in(self) -> None:
        """Load the login form (its CSRF cookie), then log in."""
        with self.opener.open(self.base_url + "/accounts/login/", timeout=30) as page:
            page.read()
        status, _ = self.post("/accounts/login/", {"username": self.username, "password": PASSWORD})
        if status != 200 or "sessionid" not in self.cookie_header():
            raise RuntimeError(f"{self.username} could not log in (HTTP {status})")


# ---------------------------------------------------------------------------- a tab
@dataclass
class Tab:
    """One lobby socket that behaves as the page does (console.js, lobby.js)."""

    storm: "Storm"
    browser: Browser
    number: int
    ws: ClientConnection | None = None
    ever_open: bool = False
    last_id: int = 0
    ids: list[int] = field(default_factory=list)
    duplicated: int = 0
    reordered: int = 0
    users: list[str] = field(default_factory=list)
    opened_at: list[float] = field(default_factory=list)  # each handshake that succeeded
    back_at: float | None = None  # the round's: its presence arrived on a new socket
    attempt: int = 0
    presences: int = 0
    history: list[Any] = field(default_factory=list)  # each socket's query, hello and resume
    channel: str = ""  # the open socket's channel name, from its hello

    def url(self) -> str:
        """The lobby's URL, with `after` once the page has seen the lobby (lobby.js)."""
        after = f"?after={self.last_id}" if self.ever_open else ""
        return f"{self.storm.ws_url}/ws/auth/{after}"

    async def live(self) -> None:
        """
        Connect, read, and reconnect as the console does, until the storm ends. The console
        retries only a socket that was open (or a reconnect under way); a tab whose very first
        handshake fails is opened again on the same schedule too, as a visitor would reload.
        """
        while not self.storm.over:
            code = await self.session()
            if self.storm.over:
                return
            if code not in self.storm.backoff.abnormal:
                self.storm.gave_up.append((self.number, code))
                return
            self.attempt += 1
            delay = self.storm.backoff.delay_ms(self.attempt, random.random()) / 1000
            self.storm.attempts.append(time.monotonic() + delay)
            await asyncio.sleep(delay)

    async def session(self) -> int:
        """One socket from handshake to close; the close code (1006 if it never opened)."""
        self.ws = None
        try:
            ws = await connect(
                self.url(),
                origin=self.storm.base_url,
                additional_headers={"Cookie": self.browser.cookie_header()},
                open_timeout=self.storm.open_timeout,
                max_size=None,
                compression=None,
            )
        except InvalidStatus as refused:
            self.storm.refused[f"HTTP {refused.response.status_code}"] += 1
            return 1006
        except (OSError, TimeoutError, ConnectionClosed) as failed:
            self.storm.refused[type(failed).__name__] += 1
            return 1006
        self.ws = ws
        self.history.append(self.url().rsplit("/", 1)[-1])  # which `after` it resumed from
        self.ever_open = True
        self.attempt = 0  # the console resets its count on open
        self.opened_at.append(time.monotonic())
        try:
            async for text in ws:
                self.received(json.loads(text))
        except ConnectionClosed:
            pass
        return ws.close_code or 1006

    def received(self, message: dict[str, Any]) -> None:
        """Keep each chat id once, in order (lobby.js); note when the tab is back."""
        match message["type"]:
            case "chat":
                if message["id"] in self.storm.id_set(self):
                    self.duplicated += 1
                    return
                if message["id"] < self.last_id:
                    self.reordered += 1
                self.ids.append(message["id"])
                self.storm.id_set(self).add(message["id"])
                self.last_id = max(self.last_id, message["id"])
            case "presence":
                self.users = message["users"]
                self.presences += 1
                if self.back_at is None and self.opened_at[-1] >= self.storm.round_started:
                    self.back_at = time.monotonic()
            case "hello" | "resume":
                self.channel = message.get("channel", self.channel)
                self.history.append({k: v for k, v in message.items() if k != "type"})

    async def close(self) -> None:
        """Close the socket as a page that goes away does (a close frame)."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 10)

    def reset(self) -> None:
        """Drop the connection without a goodbye: a TCP reset, as a vanished network does."""
        if self.ws is not None:
            self.ws.transport.abort()


# ---------------------------------------------------------------------------- the storm
@dataclass
class Storm:
    """The clients, the chatter, the measurements, and the cluster they talk to."""

    cluster: servers.Cluster
    args: argparse.Namespace
    backoff: Backoff = field(default_factory=console_backoff)
    tabs: list[Tab] = field(default_factory=list)
    over: bool = False  # the tabs stop
    quiet: bool = False  # the chatter stops
    round_started: float = 0.0  # a tab is back once a socket opened since then has presence
    acknowledged: list[int] = field(default_factory=list)  # ids the chatter got back
    unacknowledged: int = 0  # says whose answer was lost (the proxy was down): maybe said
    say_seconds: list[float] = field(default_factory=list)  # each POST's round trip
    attempts: list[float] = field(default_factory=list)  # when each reconnect attempt began
    refused: Counter = field(default_factory=Counter)
    gave_up: list[tuple[int, int | None]] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)  # Redis connections per client name
    _ids: dict[int, set[int]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The site's origin (nginx): what a page's Origin header says."""
        return self.cluster.http_url

    @property
    def ws_url(self) -> str:
        """The site's WebSocket origin (nginx)."""
        return self.cluster.ws_url

    @property
    def open_timeout(self) -> float:
        """How long a handshake may take: a browser waits about this long too."""
        return 30.0

    def id_set(self, tab: Tab) -> set[int]:
        """The ids a tab has shown."""
        return self._ids.setdefault(tab.number, set())

    async def chatter(self, browser: Browser) -> None:
        """
        Say something over HTTP up to `chat_per_second` times a second, one message after the
        other as a person types: each is published before the next is sent, so every client
        must see them in order. (Sent together through two processes, two messages may reach
        a socket out of id order, which the page sorts: docs/reliability.md.)
        """
        number = 0
        while not self.quiet:
            number += 1
            started = time.monotonic()
            await self.say(browser, number)
            took = time.monotonic() - started
            self.say_seconds.append(took)
            await asyncio.sleep(max(0.0, 1 / self.args.chat_per_second - took))

    async def say(self, browser: Browser, number: int) -> None:
        """One chat message; its id once the server has answered 201."""
        try:
            status, body = await asyncio.to_thread(
                browser.post, "/http/lobby/say/", {"text": f"storm {number}"}
            )
        except (OSError, URLError):
            status, body = 0, b""
        if status == 201:
            self.acknowledged.append(json.loads(body)["id"])
        else:
            self.unacknowledged += 1

    async def watch_redis(self) -> None:
        """Sample CLIENT LIST every 100 ms: each process names its connections (settings.py)."""
        client = await primary(self.cluster, client_name="storm-watch")
        try:
            while not self.over:
                counts = Counter(c["name"] for c in await client.client_list() if c["name"])
                for name, count in counts.items():
                    self.peaks[name] = max(self.peaks.get(name, 0), count)
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    async def all_back(self, since: float, deadline: float) -> float | None:
        """Seconds from `since` until every tab had its presence on a new socket; None: never."""
        while time.monotonic() < deadline:
            if all(tab.back_at is not None for tab in self.tabs):
                return max(tab.back_at for tab in self.tabs) - since  # type: ignore[type-var]
            await asyncio.sleep(0.05)
        return None

    async def delivered(self, deadline: float) -> bool:
        """Wait until every tab shows every acknowledged id (or the deadline passes)."""
        while time.monotonic() < deadline:
            wanted = set(self.acknowledged)
            if all(wanted <= self.id_set(tab) for tab in self.tabs):
                return True
            await asyncio.sleep(0.1)
        return False


def round_figures(storm: Storm, name: str, started: float, back: float | None) -> dict[str, Any]:
    """What one round measured on the client side: time back, the attempts' spread."""
    spread = Counter(int((t - started) * 10) for t in storm.attempts if t >= started)
    return {
        "round": name,
        "back_seconds": back,
        "attempts": sum(spread.values()),
        "attempts_per_100ms": [spread.get(i, 0) for i in range(max(spread, default=-1) + 1)],
    }


async def run_rounds(storm: Storm, browsers: list[Browser], chatter: Browser) -> dict[str, Any]:
    """Open every tab, start the chatter, storm them round by round, then check presence."""
    args = storm.args
    figures: dict[str, Any] = {"rounds": []}
    storm.tabs = [Tab(storm, browsers[n // args.tabs], n) for n in range(args.users * args.tabs)]
    watching = asyncio.create_task(storm.watch_redis())
    living = [asyncio.create_task(tab.live()) for tab in storm.tabs]
    try:
        started = time.monotonic()
        back = await storm.all_back(started, started + args.deadline)
        figures["opened_seconds"] = back
        if back is None:
            raise StormFailed(f"not every tab opened within {args.deadline} s")
        chatting = asyncio.create_task(storm.chatter(chatter))
        await asyncio.sleep(1)  # the chatter is talking when the storm comes
        for name in args.rounds.split(","):
            for tab in storm.tabs:
                tab.back_at = None
            await asyncio.sleep(1 / args.chat_per_second)
            started = storm.round_started = time.monotonic()
            wall = time.time()
            if name == "reset":
                for tab in storm.tabs:
                    tab.reset()
            elif name == "proxy":
                await asyncio.to_thread(storm.cluster.restart_proxy)
            else:
                raise ValueError(f"unknown round {name!r}: reset or proxy")
            back = await storm.all_back(started, started + args.deadline)
            figures["rounds"].append(round_figures(storm, name, started, back) | {"at": wall})
            servers_log(name, figures["rounds"][-1])
            if back is None:
                raise StormFailed(f"round {name}: not every tab was back within {args.deadline} s")
            await asyncio.sleep(1)  # chat goes on after the storm too
        storm.quiet = True  # the chatter stops; the tabs stay open
        await chatting
        figures["delivered"] = await storm.delivered(time.monotonic() + args.deadline)
        # Presence after the TTL: entries of sockets that left are gone, the others refreshed.
        await asyncio.sleep(args.presence_ttl * 1.5)
        figures["presence"] = await presence_check(storm)
    finally:
        storm.over = True
        # Every tab closes at once, as a last herd: every leave must happen (none left behind
        # in the group), before the cluster stops.
        await asyncio.gather(*(tab.close() for tab in storm.tabs))
        for task in living:
            task.cancel()
        await asyncio.gather(*living, return_exceptions=True)
    figures["left_in_group"] = await group_left(storm, time.monotonic() + args.deadline)
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    return figures


async def group_left(storm: Storm, deadline: float) -> int:
    """How many channels stay in the lobby group once every tab has closed (0, in time)."""
    client = await primary(storm.cluster)
    try:
        while (left := await client.zcard(GROUP_KEY)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    return left


async def primary(cluster: servers.Cluster, **options: Any) -> redis.asyncio.Redis:
    """A client of the cluster's Redis primary (the one its Sentinels name; no failover here)."""
    group = cluster.redis
    port = await asyncio.to_thread(group.wait_for_primary)
    return redis.asyncio.Redis(host=group.host, port=port, password=group.password, **options)


class StormFailed(Exception):
    """The storm found something wrong: the run fails."""


def servers_log(name: str, figures: dict[str, Any]) -> None:
    """One progress line per round."""
    back = figures["back_seconds"]
    print(
        f"  round {name}: all back in {back:.2f} s, {figures['attempts']} reconnect attempts"
        if back is not None
        else f"  round {name}: NOT all back",
        file=sys.stderr,
        flush=True,
    )


async def presence_check(storm: Storm) -> dict[str, Any]:
    """Every tab's latest presence, one `who`, and Redis's group and presence entries."""
    everyone = sorted({tab.browser.username for tab in storm.tabs})
    asker = storm.tabs[0]
    asked = asker.presences
    assert asker.ws is not None
    await asker.ws.send(json.dumps({"type": "who"}))
    deadline = time.monotonic() + 10
    while asker.presences == asked and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    client = await primary(storm.cluster, decode_responses=True)
    try:
        group = set(await client.zrange(GROUP_KEY, 0, -1))
        fresh = time.time() - storm.args.presence_ttl
        entries = await client.zrangebyscore(PRESENCE_KEY, fresh, "+inf")
    finally:
        await client.aclose()
    online = sorted({entry.split("|", 1)[1] for entry in entries})
    wrong = [tab.number for tab in storm.tabs if tab.users != everyone]
    return {
        "users": len(everyone),
        "tabs_seeing_everyone": len(storm.tabs) - len(wrong),
        "who_answered": asker.presences > asked and asker.users == everyone,
        "online_in_redis": online == everyone,
        "group_members": len(group),
        "group_is_the_open_sockets": group == {tab.channel for tab in storm.tabs},
    }


# ---------------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def deployment(args: argparse.Namespace, workdir: Path) -> Iterator[servers.Cluster]:
    """A cluster of its own on a throwaway database, with the users the storm logs in as."""
    env = servers.server_env(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_PATH=str(workdir / "db.sqlite3"),
        STATIC_MANIFEST="1",
        WS_LIMITS=json.dumps(NO_LIMITS),
        PRESENCE_TTL=str(args.presence_ttl),
        # Logins are not what a storm measures: a fast hash keeps fifty of them short.
        FAST_PASSWORD_HASHER="1",  # noqa: S106 - a flag, not a password
    )
    names = [f"storm{n}" for n in range(args.users)] + ["chatter"]
    # One process for the database: its tables, then the accounts (one hash for all of them).
    prepare = (
        "from django.core.management import call_command;"
        "call_command('migrate', interactive=False, verbosity=0);"
        "from django.contrib.auth import get_user_model;"
        "from django.contrib.auth.hashers import make_password;"
        f"h = make_password({PASSWORD!r}); U = get_user_model();"
        f"U.objects.bulk_create([U(username=n, password=h) for n in {names!r}])"
    )
    static_root = workdir / "static"
    env["STATIC_ROOT"] = str(static_root)
    for command in (("shell", "-c", prepare), ("collectstatic", "--no-input", "-v", "0")):
        subprocess.run(
            [sys.executable, "manage.py", *command], env=env, check=True, cwd=servers.BASE_DIR
        )
    cluster = servers.start_cluster(
        args.workers,
        run_dir=workdir / "cluster",
        env=env,
        daphne_args=tuple(shlex.split(args.daphne_args)),
        static_root=static_root,
    )
    try:
        yield cluster
    finally:
        cluster.stop()


def server_rates(cluster: servers.Cluster, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    Per round, the lobby handshakes the daphne processes logged (their access logs, to the
    second) from the cut until every tab was back: how many, and the busiest second.
    """
    seconds: Counter = Counter()
    for log in sorted((cluster.run_dir / "logs").glob("daphne*-access.log")):
        for stamp in re.findall(r"\[([^\]]+)\] \"WSCONNECT /ws/auth/", log.read_text()):
            seconds[datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S").timestamp()] += 1
    rates = []
    for r in rounds:
        end = r["at"] + (r["back_seconds"] or 0) + 1
        window = {t: n for t, n in seconds.items() if int(r["at"]) <= t <= end}
        rates.append(
            {
                "round": r["round"],
                "handshakes": sum(window.values()),
                "peak_per_second": max(window.values(), default=0),
                "mean_per_second": sum(window.values()) / max(len(window), 1),
            }
        )
    return rates


def nginx_statuses(cluster: servers.Cluster) -> Counter:
    """HTTP statuses of nginx's access log (a WebSocket's line is written when it ends)."""
    path = cluster.run_dir / "nginx-access.log"
    text = path.read_text() if path.exists() else ""
    return Counter(re.findall(r'" (\d{3}) \d+ upstream=', text))


def process_peaks(peaks: dict[str, int]) -> dict[str, dict[str, int]]:
    """Peak Redis connections per process ("<host>-<pid>") and pool ("layer", "app")."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for name, count in peaks.items():
        process, _, pool = name.rpartition(".")
        if process:
            found[process][pool] = count
    return dict(found)


def report(figures: dict[str, Any], args: argparse.Namespace) -> str:
    """The printed summary."""
    lines = [
        f"Storm: {args.users} users x {args.tabs} tabs = {args.users * args.tabs} lobby sockets"
        f" through nginx to {args.workers} daphne processes; chatter {args.chat_per_second}/s;"
        f" PRESENCE_TTL {args.presence_ttl:g} s.",
        f"- all open at first in {figures['opened_seconds']:.2f} s",
    ]
    for r in figures["rounds"]:
        back = f"{r['back_seconds']:.2f} s" if r["back_seconds"] is not None else "NEVER"
        spread = r["attempts_per_100ms"]
        lines.append(
            f"- round {r['round']}: all back in {back}; {r['attempts']} reconnect attempts,"
            f" per 100 ms from the cut: {' '.join(map(str, spread))}"
        )
    lines += [
        f"- reconnects the servers saw, round {rate['round']}: {rate['handshakes']} handshakes,"
        f" {rate['mean_per_second']:.0f}/s on average, {rate['peak_per_second']} in the busiest"
        " second"
        for rate in figures["server_rates"]
    ]
    lines += [
        f"- handshakes refused (client side): {dict(figures['refused']) or 'none'};"
        f" nginx statuses: {dict(figures['nginx_statuses'])}",
        "- peak Redis connections per process: "
        + "; ".join(
            f"{process}: " + ", ".join(f"{pool} {n}" for pool, n in sorted(pools.items()))
            for process, pools in sorted(figures["redis_peaks"].items())
        ),
        f"- chatter: {figures['acknowledged']} messages acknowledged (each POST took"
        f" {describe(figures['say_seconds'])})"
        f" ({figures['unacknowledged']} unanswered), every tab has every one once, in order:"
        f" {figures['intact']} (tabs missing some: {figures['tabs_missing_messages']}, e.g."
        f" {figures['missing_example']}; duplicates {figures['duplicated']}, out of order"
        f" {figures['reordered']})",
        f"- presence after the TTL: {figures.get('presence')}",
        f"- channels left in the lobby group once every tab closed: {figures.get('left_in_group')}",
        f"- tracebacks in the cluster's logs: {figures['tracebacks']}",
    ]
    return "\n".join(lines)


def describe(seconds: list[float]) -> str:
    """Median and longest of some durations, in seconds."""
    if not seconds:
        return "nothing"
    return f"median {statistics.median(seconds):.2f} s, at most {max(seconds):.2f} s"


def verdict(figures: dict[str, Any], tabs: int) -> list[str]:
    """Everything that makes the run fail."""
    failures = []
    if figures["tracebacks"]:
        failures.append(f"tracebacks in {figures['tracebacks']}")
    if figures["nginx_statuses"].get("502"):
        failures.append(f"{figures['nginx_statuses']['502']} responses 502 from nginx")
    if any(r["back_seconds"] is None for r in figures["rounds"]):
        failures.append("a round where not every tab came back")
    if not figures.get("intact"):
        failures.append("messages lost, duplicated or out of order")
    presence = figures.get("presence") or {}
    if (
        presence.get("tabs_seeing_everyone") != tabs
        or not presence.get("who_answered")
        or not presence.get("online_in_redis")
    ):
        failures.append(f"presence wrong after the TTL: {presence}")
    if not presence.get("group_is_the_open_sockets"):
        failures.append(f"the lobby group in Redis is not the open sockets: {presence}")
    if figures.get("left_in_group") != 0:
        failures.append(f"{figures.get('left_in_group')} channels left in the lobby group")
    if figures["gave_up"]:
        failures.append(f"tabs that stopped reconnecting: {figures['gave_up'][:5]}")
    return failures


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are what `make storm` runs."""
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--users", type=int, default=50, help="users, each logged in once")
    parser.add_argument("--tabs", type=int, default=20, help="lobby sockets per user")
    parser.add_argument("--workers", type=int, default=2, help="daphne processes")
    parser.add_argument("--rounds", default="reset,proxy", help="reset, proxy, in order")
    parser.add_argument("--chat-per-second", type=float, default=2.0)
    parser.add_argument("--presence-ttl", type=float, default=10.0, help="PRESENCE_TTL, seconds")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per round, at most")
    parser.add_argument("--daphne-args", default="", help="daphne's flags, as one string")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the cluster, storm it, print what happened; 0 if nothing went wrong."""
    args = arguments(argv)
    started = time.perf_counter()
    figures: dict[str, Any] = {"opened_seconds": None, "rounds": []}
    # Kept after the run (artifacts/ is the harnesses' output): the logs are its evidence.
    workdir = servers.ARTIFACTS / "storm"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if True:
        with deployment(args, workdir) as cluster:
            browsers = [Browser(cluster.http_url, f"storm{n}") for n in range(args.users)]
            chatter = Browser(cluster.http_url, "chatter")
            for browser in [*browsers, chatter]:
                browser.log_in()
            storm = Storm(cluster, args)
            try:
                figures |= asyncio.run(run_rounds(storm, browsers, chatter))
            except StormFailed as failed:
                figures["failed"] = str(failed)
            acknowledged = set(storm.acknowledged)
            missing = {
                tab.number: sorted(acknowledged - storm.id_set(tab))
                for tab in storm.tabs
                if acknowledged - storm.id_set(tab)
            }
            figures |= {
                "tabs_missing_messages": len(missing),
                "missing_example": {
                    number: {
                        "missing": ids,
                        "ids": storm.tabs[number].ids[-8:],
                        "sockets": storm.tabs[number].history[-9:],
                    }
                    for number, ids in list(missing.items())[:3]
                },
                "duplicated": sum(tab.duplicated for tab in storm.tabs),
                "reordered": sum(tab.reordered for tab in storm.tabs),
                "acknowledged": len(storm.acknowledged),
                "say_seconds": sorted(round(t, 2) for t in storm.say_seconds),
                "unacknowledged": storm.unacknowledged,
                "intact": bool(figures.get("delivered"))
                and all(
                    tab.duplicated == tab.reordered == 0
                    and acknowledged <= storm.id_set(tab)
                    and tab.ids == sorted(tab.ids)
                    for tab in storm.tabs
                ),
                "refused": storm.refused,
                "gave_up": storm.gave_up,
                "redis_peaks": process_peaks(storm.peaks),
            }
            logs = cluster.logs()
        figures["server_rates"] = server_rates(cluster, figures["rounds"])
        figures["nginx_statuses"] = nginx_statuses(cluster)
        figures["tracebacks"] = sorted(name for name, text in logs.items() if "Traceback" in text)
    figures["wall_seconds"] = time.perf_counter() - started
    print(report(figures, args))
    servers.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (servers.ARTIFACTS / "storm.json").write_text(json.dumps(figures, indent=1, default=str))
    failures = ([figures["failed"]] if "failed" in figures else []) + verdict(
        figures, args.users * args.tabs
    )
    print(f"Wall time: {figures['wall_seconds']:.0f} s.")
    if failures:
        print("FAILED:", *failures, sep="\n- ")
        return 1
    print("Result: PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
