"""
What a failed browser test leaves behind for a person to read.

For each failed test, under `$ARTIFACTS_DIR/e2e/<test id>/` (default `artifacts/e2e/`): a
screenshot of every open page, the browser console's output, the socket console's own records
(`window.socketConsoles[i].records`, what the page's JavaScript observed) and the part of each
server's log written while the test ran.
"""

import json
import re
import shutil
from pathlib import Path

from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

from e2e.engines import EnginePage
from tools.servers import ARTIFACTS, ServerProcess

# Servers the browser tests started and have not stopped yet (session, pair, per-test ones).
LIVE_SERVERS: list[ServerProcess] = []
# Every server the suite started, stopped or not: their logs must stay free of tracebacks.
STARTED_SERVERS: list[ServerProcess] = []

RECORDS_JS = "() => (window.socketConsoles || []).map((c) => c.records)"


def register(server: ServerProcess) -> ServerProcess:
    """Include this server's log in the artefacts of tests that fail while it runs."""
    LIVE_SERVERS.append(server)
    STARTED_SERVERS.append(server)
    return server


def unregister(server: ServerProcess) -> None:
    """Forget a stopped server (its log file stays where it is)."""
    if server in LIVE_SERVERS:
        LIVE_SERVERS.remove(server)


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", nodeid).strip("-")[:150]


def _log_size(server: ServerProcess) -> int:
    return server.log_path.stat().st_size if server.log_path.exists() else 0


class FailureArtifacts:
    """One test's browser contexts and console output, saved to disk only if the test fails."""

    def __init__(self, nodeid: str) -> None:
        self.folder = ARTIFACTS / "e2e" / _slug(nodeid)
        self.contexts: list[BrowserContext] = []
        self.engine_pages: list[EnginePage] = []
        self.console: list[str] = []
        # Where each server's log stood when the test began: the rest is this test's part.
        self.log_start = {server.log_path: _log_size(server) for server in LIVE_SERVERS}
        self.servers = list(LIVE_SERVERS)
        self.saved = False

    def watch(self, context: BrowserContext) -> None:
        """Collect the console output and uncaught errors of every page of this context."""
        index = len(self.contexts)
        self.contexts.append(context)

        def on_console(message: ConsoleMessage) -> None:
            self.console.append(f"[context {index}] {message.type}: {message.text}")

        context.on("console", on_console)
        context.on("weberror", lambda error: self.console.append(f"[context {index}] {error}"))

    def watch_engine(self, page: EnginePage) -> None:
        """Include a page of e2e/engines.py (any engine): its picture, records and errors."""
        self.engine_pages.append(page)

    def see_server(self, server: ServerProcess) -> None:
        """Include a server started during the test."""
        if server not in self.servers:
            self.servers.append(server)

    def save(self) -> list[Path]:
        """Write everything there is to the test's folder; return the files written."""
        self.saved = True
        shutil.rmtree(self.folder, ignore_errors=True)  # an earlier run's files would mislead
        self.folder.mkdir(parents=True)
        written: list[Path] = []
        for c, context in enumerate(self.contexts):
            for p, page in enumerate(_pages(context)):
                written += self._save_page(page, f"context{c}-page{p}")
        for page in self.engine_pages:
            written += self._save_engine_page(page)
        console = self.folder / "browser-console.log"
        console.write_text("\n".join(self.console) + "\n")
        written.append(console)
        # ServerProcess is a plain dataclass (unhashable): tell servers apart by their log.
        logs = {server.log_path for server in [*self.servers, *LIVE_SERVERS]}
        for log_path in sorted(logs):
            if not log_path.exists():
                continue
            with log_path.open("rb") as log:
                log.seek(self.log_start.get(log_path, 0))
                part = log.read()
            if not part:
                continue
            path = self.folder / f"{log_path.stem}.log"
            path.write_bytes(part)
            written.append(path)
        return written

    def _save_page(self, page: Page, name: str) -> list[Path]:
        written = []
        shot = self.folder / f"{name}.png"
        try:
            page.screenshot(path=shot, full_page=True, timeout=5000)
            written.append(shot)
        except Error as error:
            self.console.append(f"[{name}] no screenshot: {error.message}")
        records = self.folder / f"{name}-records.json"
        try:
            records.write_text(json.dumps(page.evaluate(RECORDS_JS), indent=1))
            written.append(records)
        except Error as error:
            self.console.append(f"[{name}] no socket console records: {error.message}")
        return written

    def _save_engine_page(self, page: EnginePage) -> list[Path]:
        # Anything may fail on a page in a bad state: save what can be saved.
        written = []
        name = f"{page.engine}-page"
        shot = self.folder / f"{name}.png"
        try:
            page.screenshot(shot)
            written.append(shot)
            records = self.folder / f"{name}-records.json"
            records.write_text(json.dumps(page.evaluate(RECORDS_JS), indent=1))
            written.append(records)
            self.console += [f"[{page.engine}] page error: {e}" for e in page.page_errors()]
        except Exception as error:  # a page in a bad state: save what can be
            self.console.append(f"[{name}] not saved: {error}")
        return written


def _pages(context: BrowserContext) -> list[Page]:
    try:
        return [page for page in context.pages if not page.is_closed()]
    except Error:
        return []
