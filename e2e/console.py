"""
Drive the socket console (static/js/console.js) from a test and read what its JavaScript saw.

Tests assert on `window.socketConsoles[i]` (the page's main console is 0; the side-by-side
panes of /sync/ and /async/ are 1 and 2): its `records` (every event and call, with the
`via` list saying whether the `on<type>` property, addEventListener or both fired), its
`readyStates` and its live `ws`, rather than on the text the page renders.

A console works on a Playwright page (Chromium, as most of the suite uses it) and on any
engine's page of e2e/engines.py (Chromium, Firefox, WebKit): the same assertions carry over.
"""

from typing import Any

from playwright.sync_api import Page

from e2e.engines import EnginePage, PlaywrightPage

Record = dict[str, Any]


class Console:
    """One socket console on a page (`index` in `window.socketConsoles`)."""

    def __init__(self, page: Page | EnginePage, index: int = 0) -> None:
        self.page = page
        # The engine-neutral page everything here goes through.
        self.driver = page if isinstance(page, EnginePage) else PlaywrightPage(page, watch=False)
        self.index = index
        self.js = f"window.socketConsoles[{index}]"
        self.scope = ("[data-socket-console]", index)
        # Playwright pages only: a locator of the console, for tests that use Playwright's own.
        self.root = None if isinstance(page, EnginePage) else page.locator(self.scope[0]).nth(index)

    @classmethod
    def open(cls, page: Page | EnginePage, path: str, index: int = 0) -> "Console":
        """Load a demo page and wait until its console script has started."""
        console = cls(page, index)
        # console.js is deferred: it has run by DOMContentLoaded, no need to wait for "load".
        console.driver.goto(path)
        console.driver.wait_for("() => (window.socketConsoles || []).length > 0")
        return console

    def click(self, name: str, *, exact: bool = True) -> None:
        """Click the console's button with this accessible name."""
        self.driver.click("button", name, exact=exact, scope=self.scope)

    def fill(self, label: str, value: str) -> None:
        """Type into the console's field with this label."""
        self.driver.fill(label, value, scope=self.scope)

    def select(self, label: str, value: str) -> None:
        """Choose an option of the console's <select> with this label."""
        self.driver.select(label, value, scope=self.scope)

    # ------------------------------------------------------------------ talking to the page

    def run(self, source: str, arg: Any = None) -> Any:
        """Run the JavaScript function `source`, `(c, arg) => ...`, on the console."""
        return self.driver.evaluate(f"(arg) => ({source})({self.js}, arg)", arg)

    def records(self, kind: str | None = None, since: int = 0) -> list[Record]:
        """The console's records (of one kind), from index `since` on."""
        records = self.run("(c) => c.records")[since:]
        return [r for r in records if kind is None or r["kind"] == kind]

    def mark(self) -> int:
        """The number of records so far: pass it as `since` to look only at what follows."""
        return self.run("(c) => c.records.length")

    def wait_for(
        self, kind: str, since: int = 0, count: int = 1, where: str = "true", timeout: float = 5000
    ) -> list[Record]:
        """
        Wait until `count` records of `kind` (matching the JavaScript condition `where` on
        `r`) exist after `since`, and return them.
        """
        source = (
            "([kind, since, count]) => {"
            f"  const found = {self.js}.records.slice(since)"
            f"    .filter((r) => r.kind === kind && ({where}));"
            "  return found.length >= count ? found : null;"
            "}"
        )
        return self.driver.wait_for(source, [kind, since, count], timeout=timeout)

    def ws(self, attribute: str) -> Any:
        """An attribute of the console's current WebSocket (readyState, protocol, ...)."""
        return self.run("(c, name) => c.ws[name]", attribute)

    def ready_states(self) -> list[int]:
        """readyState as the console sampled it at each step of the current socket."""
        return self.run("(c) => c.readyStates")

    # ------------------------------------------------------------------ actions

    def connect(
        self,
        endpoint: str,
        *,
        subprotocol: bool = True,
        journal: bool = False,
        reconnect: bool = True,
        binary_type: str = "blob",
        wait: str | None = "open",
    ) -> Record | None:
        """
        Set the console's controls, press Connect, and wait for the record `wait`.

        The controls are set in one step (a round trip each would add up over the suite);
        the page's smoke tests find them by their labels, and Connect is a real click.
        """
        self.driver.evaluate(
            """([index, endpoint, subprotocol, journal, reconnect, binaryType]) => {
                const root = window.socketConsoles[index].root;
                const set = (name, prop, value) => {
                    const control = root.querySelector(`[data-${name}]`);
                    control[prop] = value;
                    if (control[prop] !== value) throw new Error(`${name}: no option ${value}`);
                    control.dispatchEvent(new Event("change", { bubbles: true }));
                };
                set("endpoint", "value", endpoint);
                set("subprotocol", "checked", subprotocol);
                set("journal", "checked", journal);
                set("reconnect", "checked", reconnect);
                set("binary-type", "value", binaryType);
            }""",
            [self.index, endpoint, subprotocol, journal, reconnect, binary_type],
        )
        since = self.mark()
        self.click("Connect")
        if wait is None:
            return None
        return self.wait_for(wait, since)[0]

    def send_text(self, text: str) -> Record:
        """`ws.send(text)` through the console; returns the console's `call` or `threw` record."""
        return self.run("(c, text) => { c.sendText(text); return c.records.at(-1); }", text)

    def send_bytes(self, data: bytes, as_: str) -> Record:
        """`ws.send(Blob)` or `ws.send(ArrayBuffer)` with exactly these bytes."""
        return self.run(
            "(c, [bytes, as]) => {"
            "  c.sendBytes(new Uint8Array(bytes), as); return c.records.at(-1);"
            "}",
            [list(data), as_],
        )

    def send_json(self, value: Any) -> Record:
        """Send a value as JSON text."""
        return self.run("(c, value) => { c.sendJSON(value); return c.records.at(-1); }", value)

    def close(self, *args: Any) -> Record:
        """`ws.close(...args)` through the console; returns its `call` or `threw` record."""
        return self.run("(c, args) => { c.close(...args); return c.records.at(-1); }", list(args))

    def echo(self, text: str) -> Record:
        """Send text and return the message record that answers it."""
        since = self.mark()
        self.send_text(text)
        return self.wait_for("message", since)[0]

    def journal_until(self, event_type: str, timeout: float = 5000) -> list[Record]:
        """
        The server-side ASGI events of the current socket (connected with `journal=True`),
        once `event_type` is among them, read from the same feed the journal panel shows.
        """
        return self.driver.wait_for(
            """async ([index, type]) => {
                const id = window.socketConsoles[index].journalId;
                const response = await fetch(`/journal/${id}/`);
                const { events } = await response.json();
                return events.some((e) => e.type === type) ? events : null;
            }""",
            [self.index, event_type],
            timeout=timeout,
            interval=50,
        )
