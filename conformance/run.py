"""
Run the Autobahn testsuite's fuzzing client against the pure-echo endpoints on each server.

    python -m conformance.run --python2 PY2 --libdir DIR [--servers daphne,uvicorn,...]
        [--groups 1-7,9,10] [--paths ...] [--markdown docs/conformance.md]

PY2 is a Python 2.7 with `autobahntestsuite` installed into DIR (`make conformance` does that).
For each server the run starts its own process on a free port serving `conformance.asgi` (the
echo consumers without the origin validator: the suite sends no Origin header), with the
server's message cap raised for case 9's 16 MiB messages and the showcase's own limits lifted
through the `WS_LIMITS` environment variable. It prints the summary, optionally writes it as
Markdown, and exits non-zero if any case failed for a reason not on file below, or if a
server's log holds a traceback.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from conformance.asgi import PURE_ECHO_PATHS
from tools.servers import (
    ARTIFACTS,
    SERVER_FLAGS,
    SERVERS,
    ServerProcess,
    running,
    server_env,
    start_server,
)

# Case 9 sends messages of up to 16 MiB: the caps must sit above that, or the server refuses
# them. Each server runs as `make run` starts it, but for its cap (and, to keep every case's
# frames the suite's own, no server pings).
MAX_MESSAGE = 16 * 1024 * 1024 + 1024
SERVER_ARGS: dict[str, tuple[str, ...]] = {
    "daphne": (
        "--websocket-max-message-size",
        str(MAX_MESSAGE),
        "--websocket-max-frame-size",
        str(MAX_MESSAGE),
    ),
    "uvicorn": (
        "--ws",
        "websockets-sansio",
        "--ws-max-size",
        str(MAX_MESSAGE),
        "--lifespan",
        "off",
        "--no-access-log",
    ),
    # Without make run's config object: hypercorn's default cap is 16 MiB, without pings.
    "hypercorn": ("--workers", "0", "--worker-class", "uvloop"),
    # Granian has no message cap to raise (tungstenite's defaults: 64 MiB, frames 16 MiB).
    "granian": SERVER_FLAGS["granian"],
}
# Cases 9.7 and 9.8 send 1,000 messages as fast as they can: no rate limit for this run.
WS_LIMITS = {"echo": {"max_message_bytes": MAX_MESSAGE, "messages_per_second": 0, "burst": 0}}
REAPER_SECONDS = 1.5
BEHAVIOURS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")

# Why a case is not plain OK. The consumers echo every message unchanged: all of these come
# from the server's framing, or are left open by the RFC.
REASONS = {
    "empty message": (
        "Upstream daphne bug (daphne 4.2.3): `WebSocketProtocol.handle_reply` sends a message "
        'only if `message.get("text")` or `message.get("bytes")` is truthy, so the empty '
        "message the consumer echoes is silently dropped, and the suite waits for it in vain "
        "(9.7.1 and 9.8.1 for 60 s each). No upstream issue found; the fix is to test for "
        "`None`."
    ),
    "fail fast": (
        "The invalid frame arrives in the same read as the valid message before it. The "
        "server's framing layer fails the connection the moment it parses the bad frame, while "
        "the consumer's echo of the good message is still on its way through the ASGI queue, so "
        "that echo is never written. RFC 6455 allows failing at once; Autobahn calls it "
        "non-strict. It is a race: when the echo wins, the case is OK, which is why the counts "
        "can differ by one between endpoints and runs."
    ),
    "close first": (
        "The close frame right behind a 256 KiB message was processed before the echo was "
        "written (an asynchronous server), so the echo was dropped. The RFC leaves this open."
    ),
    "undefined code": (
        "A close code the RFC does not define (5000), or that does not fit in two bytes "
        "(65536): the server drops the connection or answers 1002. The RFC leaves it open."
    ),
    "utf-8 per message": (
        "A text message whose invalid UTF-8 arrives in a later fragment: the server checks "
        "UTF-8 once the message is whole (or once a frame is), not byte by byte, so it fails "
        "the connection later than it could. Allowed; Autobahn calls it non-strict."
    ),
    "close inside a fragmented message": (
        "Upstream (websockets' sans-I/O protocol, under uvicorn): a close frame that arrives "
        "between the fragments of a message is answered 1002 'incomplete fragmented message' "
        "instead of 1000. RFC 6455 5.4 lets control frames interleave with fragments, so the "
        "close is legal and should be echoed normally. The connection still closes."
    ),
    "dropped on invalid UTF-8": (
        "Hypercorn (wsproto) failed the connection on invalid UTF-8 by dropping TCP before its "
        "1007 close frame was out, on one endpoint of four in this run: a race in the server, "
        "not the consumer (which only ever sees valid text)."
    ),
}
FAIL_FAST = ["3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5", "5.15"]
UNDEFINED = {"7.13.1": "undefined code", "7.13.2": "undefined code"}
# Per server: why each non-OK case is not OK.
KNOWN: dict[str, dict[str, str]] = {
    "daphne": {
        **dict.fromkeys(["1.1.1", "1.2.1", "6.1.1", "6.1.2", "9.7.1", "9.8.1"], "empty message"),
        **dict.fromkeys(FAIL_FAST, "fail fast"),
        "7.1.6": "close first",
        **UNDEFINED,
    },
    "uvicorn": {
        **dict.fromkeys(FAIL_FAST, "fail fast"),
        **dict.fromkeys(["6.4.1", "6.4.2", "6.4.3", "6.4.4"], "utf-8 per message"),
        "7.1.5": "close inside a fragmented message",
        "7.1.6": "close first",
        **UNDEFINED,
    },
    "hypercorn": {
        **dict.fromkeys(FAIL_FAST, "fail fast"),
        "6.15.1": "dropped on invalid UTF-8",
        "7.1.6": "close first",
        **UNDEFINED,
    },
    "granian": {
        **dict.fromkeys(["6.4.3", "6.4.4"], "utf-8 per message"),
        "7.1.6": "close first",
        **UNDEFINED,
    },
}
# The only reasons a FAILED result may have: upstream bugs no consumer can work around.
UPSTREAM_BUGS = {"empty message", "close inside a fragmented message", "dropped on invalid UTF-8"}


def parse_groups(text: str) -> list[int]:
    """'1-7,9,10' -> [1, 2, 3, 4, 5, 6, 7, 9, 10]."""
    groups: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        groups.extend(range(int(low), int(high or low) + 1))
    return groups


def case_key(case_id: str) -> tuple[int, ...]:
    """Sort '1.1.10' after '1.1.9'."""
    return tuple(int(n) for n in case_id.split("."))


def agent_name(server: str, path: str) -> str:
    """An agent name Autobahn accepts (it becomes part of report file names)."""
    return server + path.rstrip("/").replace("/ws", "").replace("/", "_")


def log_problems(server: ServerProcess) -> list[str]:
    """What in the server's log must fail the run: every traceback, counted by its exception."""
    # daphne logs an application's exception when it reaps it, once a second.
    time.sleep(REAPER_SECONDS)
    errors: Counter = Counter()
    examples: dict[str, str] = {}
    for traceback in server.tracebacks():
        error = traceback.splitlines()[-1]
        errors[error.split(":")[0]] += 1
        examples.setdefault(error.split(":")[0], error)
    return [f"{n} traceback(s) of {kind}, e.g. {examples[kind]!r}" for kind, n in errors.items()]


def outcome(result: dict) -> str:
    """One verdict per case: the worse of Autobahn's message and close verdicts."""
    verdicts = (result["behavior"], result["behaviorClose"])
    if any(v not in BEHAVIOURS or v == "FAILED" for v in verdicts):
        return "FAILED"
    return next((v for v in verdicts if v != "OK"), "OK")


def run_suite(
    server_name: str,
    python2: str,
    libdir: str,
    paths: list[str],
    groups: list[int],
    outdir: Path,
    timeout: float,
) -> tuple[dict, list[str]]:
    """
    Start the server, run the fuzzing client against each path; return Autobahn's index.json
    and the log's problems.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    env = server_env(WS_LIMITS=json.dumps(WS_LIMITS), LOG_LEVEL="WARNING")
    server = start_server(
        server_name,
        env,
        app="conformance.asgi:application",
        flags=SERVER_ARGS[server_name],
        name=f"conformance-{server_name}",
    )
    with running(server):
        spec = {
            "outdir": str(outdir),
            "options": {"failByDrop": False},
            "servers": [
                {"agent": agent_name(server_name, p), "url": server.ws_url + p} for p in paths
            ],
            "cases": [f"{group}.*" for group in groups],
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_path = outdir / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        # site.addsitedir, not PYTHONPATH: the suite's zope package is a namespace package
        # declared in a .pth file, which only site directories read.
        bootstrap = (
            "import site, sys; site.addsitedir(sys.argv[1]); "
            "sys.argv = ['wstest', '-m', 'fuzzingclient', '-s', sys.argv[2]]; "
            "from autobahntestsuite.wstest import run; run()"
        )
        with (outdir / "wstest.log").open("w") as log:
            subprocess.run(
                [python2, "-W", "ignore", "-c", bootstrap, libdir, str(spec_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=True,
                cwd=outdir,
            )
        if server.process.poll() is not None:
            raise RuntimeError(f"{server_name} died during the run; its log:\n{server.log()}")
    problems = [f"{server_name} log ({server.log_path}): {p}" for p in log_problems(server)]
    return json.loads((outdir / "index.json").read_text()), problems


def summarise(server: str, index: dict, outdir: Path) -> tuple[str, list[str]]:
    """Markdown: counts per endpoint and group, then every non-OK case and why."""
    known = KNOWN[server]
    rows = [
        "| endpoint | group | cases | " + " | ".join(BEHAVIOURS) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in BEHAVIOURS) + " |",
    ]
    totals: dict[str, Counter] = {}
    non_ok: dict[tuple[str, str], list[str]] = defaultdict(list)
    descriptions: dict[str, str] = {}
    unexplained: list[str] = []
    for agent in sorted(index):
        cases = index[agent]
        per_group: dict[int, Counter] = defaultdict(Counter)
        for case_id in sorted(cases, key=case_key):
            verdict = outcome(cases[case_id])
            per_group[case_key(case_id)[0]][verdict] += 1
            if verdict == "OK":
                continue
            non_ok[(case_id, verdict)].append(agent)
            report = json.loads((outdir / cases[case_id]["reportfile"]).read_text())
            description = re.sub(r"<br\s*/?>|<b>|</b>", " ", report["description"])
            descriptions[case_id] = " ".join(description.split())[:300]
            reason = known.get(case_id)
            if reason is None or (verdict == "FAILED" and reason not in UPSTREAM_BUGS):
                unexplained.append(f"{agent} {case_id} {verdict}: {report.get('result')}")
        totals[agent] = sum(per_group.values(), Counter())
        for group, counts in sorted(per_group.items()):
            row = " | ".join(str(counts[b]) for b in BEHAVIOURS)
            rows.append(f"| {agent} | {group} | {sum(counts.values())} | {row} |")
    for agent, counts in totals.items():
        row = " | ".join(f"**{counts[b]}**" for b in BEHAVIOURS)
        rows.append(f"| **{agent}** | all | **{sum(counts.values())}** | {row} |")
    lines = [*rows]
    if non_ok:
        lines += ["", "| case | result | endpoints | what the case does | why (below) |"]
        lines.append("| --- | --- | --- | --- | --- |")
    for (case_id, verdict), agents in sorted(non_ok.items(), key=lambda i: case_key(i[0][0])):
        why = known.get(case_id, "not on file: see the case report")
        where = "all" if len(agents) == len(index) else ", ".join(agents)
        lines.append(f"| {case_id} | {verdict} | {where} | {descriptions[case_id]} | {why} |")
    used = sorted({known[case] for case, _ in non_ok if case in known})
    lines += ["", *(f"- **{reason}**: {REASONS[reason]}" for reason in used)]
    return "\n".join(lines).rstrip() + "\n", unexplained


def totals_row(server: str, index: dict) -> str:
    """One line of the summary table: the counts of every endpoint of one server, summed."""
    counts = Counter(outcome(result) for cases in index.values() for result in cases.values())
    cells = " | ".join(str(counts[b]) for b in BEHAVIOURS)
    return f"| {server} | {len(index)} | {sum(counts.values())} | {cells} |"


def versions() -> str:
    """Each server's version, and what speaks WebSocket inside it."""
    from importlib.metadata import version

    return (
        f"daphne {version('daphne')} (autobahn-python {version('autobahn')}), "
        f"uvicorn {version('uvicorn')} (websockets {version('websockets')}, sans-I/O), "
        f"hypercorn {version('hypercorn')} (wsproto {version('wsproto')}), "
        f"granian {version('granian')} (Rust, tungstenite)"
    )


def document(
    sections: dict[str, tuple[dict, str]],
    problems: list[str],
    args: argparse.Namespace,
    seconds: float,
    libdir: str,
) -> str:
    """The whole of docs/conformance.md: how the run was made, then the results per server."""
    import channels

    verdict = (
        "**The run fails on:** " + "; ".join(problems)
        if problems
        else "Every FAILED case below is an upstream server bug, explained under its table; "
        "no server logged a traceback."
    )
    suite = next(Path(libdir).glob("autobahntestsuite-*.dist-info"), None)
    suite_version = suite.name.removesuffix(".dist-info").split("-")[1] if suite else "?"
    summary = [
        "| server | endpoints | case runs | " + " | ".join(BEHAVIOURS) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in BEHAVIOURS) + " |",
        *(totals_row(server, index) for server, (index, _) in sections.items()),
    ]
    flags = "\n".join(f"  - {server}: `{' '.join(SERVER_ARGS[server])}`" for server in sections)
    body = "\n".join(f"## {server}\n\n{text}" for server, (_, text) in sections.items())
    return f"""# Protocol conformance: the Autobahn testsuite against the echo consumers, per server

Generated by `make conformance` on {time.strftime("%Y-%m-%d")} in {seconds:.0f} s; do not edit by
hand. Cases {args.groups} of the Autobahn testsuite {suite_version} (`wstest -m fuzzingclient`,
Python 2.7) against {versions()}; channels {channels.__version__}; one server process each,
every pure-echo endpoint.

How the servers were set up for the run, and why:
- `conformance/asgi.py` routes the same consumer classes as `config/asgi.py`, **without**
  `AllowedHostsOriginValidator` (and without auth and the journal): the suite sends no `Origin`
  header, and the origin check would refuse every handshake. `config/asgi.py` is unchanged.
  The consumers sit inside the same `QuietDisconnectMiddleware` as there: the suite fails
  connections while echoes are in flight, and before that guard (channels#1820) daphne logged
  4 "Attempt to send on a closed protocol" tracebacks in a run of these groups.
- Each server's message cap is raised to at least 16 MiB (cases 9.1 and 9.2 send messages of
  up to 16 MiB), and no server pings, so every frame of a case is the suite's own:
{flags}
- The showcase's own limits are lifted with `WS_LIMITS='{json.dumps(WS_LIMITS)}'` in
  the server's environment: no 4009 (too big) below 16 MiB, no rate limit (cases 9.7 and 9.8 send
  1,000 messages back to back).
- Every server's log is searched for tracebacks; any fails the run.
- Results per case, in Autobahn's HTML and JSON, are under `artifacts/autobahn/<date>-<server>/`.

NON-STRICT and INFORMATIONAL are passes in Autobahn's terms. {verdict}

{chr(10).join(summary)}

{body}"""


def main() -> int:
    """Parse the arguments, run the suite on each server, print (and maybe write) the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python2", required=True, help="a Python 2.7 interpreter")
    parser.add_argument("--libdir", required=True, help="where autobahntestsuite is installed")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--groups", default="1-7,9,10")
    parser.add_argument("--paths", default=",".join(PURE_ECHO_PATHS))
    parser.add_argument("--markdown", type=Path, help="write the report here too")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per server")
    args = parser.parse_args()

    libdir = str(Path(args.libdir).resolve())  # wstest runs in the report directory
    paths = [path for path in args.paths.split(",") if path]
    started = time.monotonic()
    sections: dict[str, tuple[dict, str]] = {}
    problems: list[str] = []
    for server in args.servers.split(","):
        outdir = ARTIFACTS / "autobahn" / f"{time.strftime('%Y%m%d-%H%M%S')}-{server}"
        print(f"{server}: Autobahn cases {args.groups} on {', '.join(paths)}", flush=True)
        index, log_problems_found = run_suite(
            server, args.python2, libdir, paths, parse_groups(args.groups), outdir, args.timeout
        )
        body, unexplained = summarise(server, index, outdir)
        sections[server] = (index, body)
        problems += unexplained + log_problems_found
        print(f"## {server}\n\n{body}\nAutobahn's reports: {outdir}\n", flush=True)
    seconds = time.monotonic() - started
    if args.markdown:
        args.markdown.write_text(document(sections, problems, args, seconds, libdir))
        print(f"wrote {args.markdown}")
    if problems:
        print("Not OK for a reason not on file:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
