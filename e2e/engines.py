"""
One page interface over three browser engines, so that a browser test is written once and run
in Chromium, Firefox and WebKit.

- Chromium through Playwright (`PlaywrightPage`, a thin wrapper of a Playwright `Page`).
- Firefox ESR through Mozilla's own Marionette client (`marionette_driver`): no geckodriver.
- WebKitGTK's MiniBrowser through Selenium and `WebKitWebDriver`, on an Xvfb display of our own.

What a test does with a page: `goto`, `evaluate` a JavaScript function, `wait_for` a JavaScript
condition, `click`/`fill`/`select`/`check` a control found by its role and accessible name or by
its label, and, afterwards, `page_errors()`. Playwright's locators find controls in Chromium;
in the WebDriver engines one finder written in JavaScript (`FIND_JS`) does, and the click or the
typing is the driver's own (real input events).

Where an engine gives no access to the page's console (WebKitGTK's driver refuses BiDi, and
Marionette has no log API), a script hook installed after each page load records uncaught
errors and unhandled rejections (`ERRORS_HOOK_JS`).
"""

import logging
import os
import shutil
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINES = ("chromium", "firefox", "webkit")
TIMEOUT_MS = 10_000
# How long one WebDriver command may take: longer than any script's own timeout (a test's
# TIMEOUT_MS-scale waits plus RUN_ASYNC_JS's margin). Selenium's default is to wait for ever, and
# a MiniBrowser that stopped answering once hung the whole run at its failure screenshot.
COMMAND_TIMEOUT_S = 45

# Debian's packages: firefox-esr, and webkit2gtk-driver (which brings the MiniBrowser).
FIREFOXES = ("firefox-esr", "firefox")
WEBKIT_DRIVERS = ("WebKitWebDriver", "/usr/bin/WebKitWebDriver")
MINIBROWSERS = (
    "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
    "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
    "/usr/libexec/webkit2gtk-4.1/MiniBrowser",
)
INSTALL = {
    "firefox": "Firefox: `apt-get install firefox-esr` (or SHOWCASE_FIREFOX=/path/to/firefox) "
    "and the test extra's marionette_driver (`make install`)",
    "webkit": "WebKit: `apt-get install webkit2gtk-driver xvfb xauth` (Debian's WebKitGTK "
    "driver and MiniBrowser, and a virtual display) and the test extra's selenium",
}

# The accessible name of an element as tests name it, and the elements of a role. A subset of
# the ARIA rules that covers this project's pages: aria-label, aria-labelledby, <label>, then
# the text of buttons, links and headings. Hidden elements (no layout box) never match.
FIND_JS = """([scope, role, name, exact, labelOnly]) => {
  const norm = (s) => (s || "").replace(/\\s+/g, " ").trim();
  const ROLES = {
    button: "button, input[type=submit], input[type=button], input[type=reset], [role=button]",
    link: "a[href], [role=link]",
    textbox: "input:not([type]), input[type=text], input[type=search], input[type=email], " +
      "input[type=url], input[type=tel], textarea, [role=textbox]",
    checkbox: "input[type=checkbox], [role=checkbox]",
    combobox: "select, [role=combobox]",
    heading: "h1, h2, h3, h4, h5, h6, [role=heading]",
    navigation: "nav, [role=navigation]",
  };
  const LABELLED = "input, select, textarea, button, output, [aria-label], [aria-labelledby]";
  const nameOf = (el) => {
    if (el.getAttribute("aria-label")) return norm(el.getAttribute("aria-label"));
    const ids = el.getAttribute("aria-labelledby");
    if (ids) {
      const texts = ids.split(/\\s+/).map((id) => document.getElementById(id)?.textContent);
      return norm(texts.join(" "));
    }
    if (el.labels && el.labels.length) {
      return norm(Array.from(el.labels, (l) => l.textContent).join(" "));
    }
    if (labelOnly) return "";
    if (el.matches("input[type=submit], input[type=button], input[type=reset]")) {
      return norm(el.value);
    }
    if (el.matches("button, a, h1, h2, h3, h4, h5, h6, [role]")) return norm(el.textContent);
    return norm(el.getAttribute("title"));
  };
  let root = document;
  if (scope) root = document.querySelectorAll(scope[0])[scope[1]];
  if (!root) return null;
  const wanted = norm(name);
  const matches = (n) => (exact ? n === wanted : n.toLowerCase().includes(wanted.toLowerCase()));
  const found = Array.from(root.querySelectorAll(role ? ROLES[role] : LABELLED)).filter(
    (el) => el.getClientRects().length > 0 && matches(nameOf(el)),
  );
  if (found.length > 1) {
    throw new Error(`${found.length} elements match ${role || "label"} "${name}"`);
  }
  return found.length ? found[0] : null;
}"""

ERRORS_HOOK_JS = """() => {
  if (window.__engineErrors) return;
  window.__engineErrors = [];
  const errors = window.__engineErrors;
  addEventListener("error", (e) => errors.push(`${e.message} (${e.filename}:${e.lineno})`));
  addEventListener("unhandledrejection", (e) => errors.push(`unhandled rejection: ${e.reason}`));
}"""

# Runs a function source with one argument in the page and hands back {value} or {error}.
# Async functions are awaited; `undefined` comes back as null, as from Playwright.
RUN_ASYNC_JS = """
const [arg, done] = [arguments[0], arguments[arguments.length - 1]];
Promise.resolve().then(() => (%s)(arg)).then(
  (value) => done({ value: value === undefined ? null : value }),
  (e) => done({ error: `${e && e.name}: ${e && e.message}` }),
);
"""

# Polls a condition in the page until it is truthy or `budget` ms have passed (then null).
POLL_JS = """async ([arg, budget, interval]) => {
  const condition = (%s);
  const deadline = performance.now() + budget;
  for (;;) {
    const value = await condition(arg);
    if (value) return value;
    if (performance.now() > deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}"""
# How long one round trip of `wait_for` polls in the page, and how much longer the driver waits
# for its answer: a navigation ends the script without an answer (WebKit says so at once,
# Marionette only when the script times out), and the next round trip asks the new document.
POLL_ROUND_MS = 500
POLL_GRACE_MS = 2000

Scope = tuple[str, int] | None


class EngineMissing(Exception):
    """The engine is not installed here: the message says what to install."""


class PageError(AssertionError):
    """A script in the page failed, or a condition did not become true in time."""


class EnginePage(ABC):
    """A browser page in one engine, driven the same way in each (see the module docstring)."""

    engine: str
    base_url: str = ""

    def url_for(self, url: str) -> str:
        """Relative URLs ("/sync/") are on the page's base URL, as with Playwright."""
        return self.base_url + url if url.startswith("/") else url

    @abstractmethod
    def goto(self, url: str) -> None:
        """Load a URL and wait for the page's DOMContentLoaded (deferred scripts have run)."""

    @abstractmethod
    def evaluate(self, source: str, arg: Any = None) -> Any:
        """Run the JavaScript function `source` with `arg`; its (awaited) JSON-able result."""

    @abstractmethod
    def wait_for(
        self, source: str, arg: Any = None, timeout: float = TIMEOUT_MS, interval: float = 20
    ) -> Any:
        """
        Wait until the JavaScript function `source(arg)` returns something truthy (asked every
        `interval` ms; an async function is awaited); return that value.
        """

    @abstractmethod
    def click(self, role: str, name: str, *, exact: bool = True, scope: Scope = None) -> None:
        """Click the enabled element of this role and accessible name (within `scope`)."""

    @abstractmethod
    def fill(self, label: str, value: str, *, scope: Scope = None) -> None:
        """Replace the text of the control with this label by typing `value`."""

    @abstractmethod
    def check(self, label: str, checked: bool = True, *, scope: Scope = None) -> None:
        """Tick or untick the checkbox with this label."""

    @abstractmethod
    def page_errors(self) -> list[str]:
        """Uncaught errors and unhandled rejections of every document this page showed."""

    @abstractmethod
    def screenshot(self, path: Path) -> None:
        """A picture of what the page shows, for a failed test's artefacts."""

    def select(self, label: str, value: str, *, scope: Scope = None) -> None:
        """Choose the option with this value in the <select> with this label."""
        found = self.evaluate(
            f"""([args, value]) => {{
                const select = ({FIND_JS})(args);
                if (!select) return "no such control";
                select.value = value;
                if (select.value !== value) return "no option " + value;
                select.dispatchEvent(new Event("input", {{ bubbles: true }}));
                select.dispatchEvent(new Event("change", {{ bubbles: true }}));
                return "";
            }}""",
            [[list(scope) if scope else None, "combobox", label, False, True], value],
        )
        if found:
            raise PageError(f"select {label!r}: {found}")

    def text(self, css: str) -> str:
        """The text of the first element matching a CSS selector ("" if there is none)."""
        return self.evaluate("(css) => document.querySelector(css)?.textContent ?? ''", css)


# ---------------------------------------------------------------------------- Chromium


class PlaywrightPage(EnginePage):
    """A Playwright page (Chromium here; Playwright's Firefox and WebKit would do too)."""

    def __init__(
        self, page: Any, engine: str = "chromium", base_url: str = "", watch: bool = True
    ) -> None:
        self.page = page
        self.engine = engine
        self.base_url = base_url
        self.version = page.context.browser.version if page.context.browser else "?"
        self.errors: list[str] = []
        if watch:
            page.on("pageerror", lambda error: self.errors.append(str(error)))

    def goto(self, url: str) -> None:
        """Load a URL (DOMContentLoaded)."""
        self.page.goto(self.url_for(url), wait_until="domcontentloaded")

    def evaluate(self, source: str, arg: Any = None) -> Any:
        """page.evaluate."""
        return self.page.evaluate(source, arg)

    def wait_for(
        self, source: str, arg: Any = None, timeout: float = TIMEOUT_MS, interval: float = 20
    ) -> Any:
        """page.wait_for_function, its value."""
        handle = self.page.wait_for_function(source, arg=arg, timeout=timeout, polling=interval)
        return handle.json_value()

    def _root(self, scope: Scope) -> Any:
        return self.page.locator(scope[0]).nth(scope[1]) if scope else self.page

    def click(self, role: str, name: str, *, exact: bool = True, scope: Scope = None) -> None:
        """get_by_role(...).click()."""
        self._root(scope).get_by_role(role, name=name, exact=exact).click()

    def fill(self, label: str, value: str, *, scope: Scope = None) -> None:
        """get_by_label(...).fill()."""
        self._root(scope).get_by_label(label).fill(value)

    def check(self, label: str, checked: bool = True, *, scope: Scope = None) -> None:
        """get_by_label(...).set_checked()."""
        root = self._root(scope)
        root.get_by_label(label).and_(root.locator("input[type=checkbox]")).set_checked(checked)

    def select(self, label: str, value: str, *, scope: Scope = None) -> None:
        """get_by_label(...).select_option()."""
        root = self._root(scope)
        root.get_by_label(label).and_(root.locator("select")).select_option(value)

    def page_errors(self) -> list[str]:
        """What Playwright's `pageerror` reported."""
        return list(self.errors)

    def screenshot(self, path: Path) -> None:
        """page.screenshot."""
        self.page.screenshot(path=path, full_page=True, timeout=5000)


# ---------------------------------------------------------------------------- WebDriver


class WebDriverPage(EnginePage):
    """What Firefox's Marionette and WebKit's WebDriver share: scripts, the finder, errors."""

    def __init__(self, engine: str, version: str) -> None:
        self.engine = engine
        self.version = version
        self.errors: list[str] = []
        # Set once a command found the browser no longer answering: Engines relaunches it.
        self.stuck = False

    @abstractmethod
    def _run_async(self, script: str, arg: Any, timeout: float) -> Any:
        """The driver's execute-async-script, with a script timeout of `timeout` ms."""

    @abstractmethod
    def _navigate(self, url: str) -> None:
        """The driver's navigation (it waits for the load event)."""

    @abstractmethod
    def _clear_cookies(self) -> None:
        """Delete every cookie the browser holds (for the hosts the tests use)."""

    def evaluate(self, source: str, arg: Any = None, timeout: float = TIMEOUT_MS) -> Any:
        """Run the function in the page, awaiting a promise it returns."""
        result = self._run_async(RUN_ASYNC_JS % source, arg, timeout + 5000)
        if result is None:  # a navigation ended the script
            return None
        if "error" in result:
            raise PageError(f"{self.engine}: {result['error']}")
        return result["value"]

    # The driver's errors for a script the page's navigation ended.
    interrupted: tuple[type[Exception], ...] = ()

    def wait_for(
        self, source: str, arg: Any = None, timeout: float = TIMEOUT_MS, interval: float = 20
    ) -> Any:
        """
        Poll the condition in the page, as Playwright's wait_for_function does, in rounds of
        POLL_ROUND_MS, so that it goes on in the next document when the page navigates.
        """
        deadline = time.monotonic() + timeout / 1000
        interruption = ""
        while True:
            budget = max(0.0, min(POLL_ROUND_MS, (deadline - time.monotonic()) * 1000))
            script = RUN_ASYNC_JS % (POLL_JS % source)
            try:
                result = self._run_async(script, [arg, budget, interval], budget + POLL_GRACE_MS)
            except self.interrupted as error:
                result, interruption = None, f" (last round ended by: {error})"
            if result and "error" in result:
                raise PageError(f"{self.engine}: {result['error']}")
            if result and result["value"]:
                return result["value"]
            if time.monotonic() >= deadline:
                raise PageError(f"{self.engine}: not true within {timeout:.0f} ms{interruption}")

    def goto(self, url: str) -> None:
        """Keep the last document's errors, load the URL, hook the new document's errors."""
        self._harvest_errors()
        self._navigate(self.url_for(url))
        self.evaluate(ERRORS_HOOK_JS)

    def _harvest_errors(self) -> None:
        try:
            self.errors += self.evaluate("() => window.__engineErrors || []") or []
        except Exception:  # a page that is gone has no errors left to read
            return

    def page_errors(self) -> list[str]:
        """Errors the hook recorded, of every document since the last reset."""
        self._harvest_errors()
        self.evaluate("() => { if (window.__engineErrors) window.__engineErrors.length = 0; }")
        return list(self.errors)

    def find(
        self,
        role: str | None,
        name: str,
        *,
        exact: bool,
        scope: Scope,
        enabled: bool,
        by_label: bool = False,
    ) -> Any:
        """
        Wait for exactly one visible element of this role (None: any labelled control) and
        name (`by_label`: its label's, not its text); scroll it to the middle of the viewport.

        WebKitWebDriver 2.50 clicks an element near the bottom edge of the viewport without
        firing `click` (mousedown and mouseup only): centred, the click lands.
        """
        wanted = "found && !found.disabled" if enabled else "found"
        return self.wait_for(
            f"""(args) => {{
                const found = ({FIND_JS})(args);
                if (!({wanted})) return null;
                found.scrollIntoView({{ block: "center", inline: "center" }});
                return found;
            }}""",
            [list(scope) if scope else None, role, name, exact, by_label],
        )

    def click(self, role: str, name: str, *, exact: bool = True, scope: Scope = None) -> None:
        """A real click (the driver's), on the element found by role and name."""
        self.find(role, name, exact=exact, scope=scope, enabled=True).click()

    def fill(self, label: str, value: str, *, scope: Scope = None) -> None:
        """Clear the control and type `value` into it (the driver's key events)."""
        element = self.find(None, label, exact=False, scope=scope, enabled=True, by_label=True)
        element.clear()
        if value:
            element.send_keys(value)

    def check(self, label: str, checked: bool = True, *, scope: Scope = None) -> None:
        """Click the checkbox if it is not already in the wanted state."""
        element = self.find(
            "checkbox", label, exact=False, scope=scope, enabled=True, by_label=True
        )
        if self.evaluate("(e) => e.checked", element) != checked:
            element.click()

    def reset(self) -> None:
        """A fresh state for the next test: no page (its sockets close), no cookies, no errors."""
        self._navigate("about:blank")
        self._clear_cookies()
        self.errors = []
        self.base_url = ""


class FirefoxPage(WebDriverPage):
    """Firefox over Marionette: Mozilla's own remote protocol, no geckodriver in between."""

    def __init__(self, marionette: Any) -> None:
        from marionette_driver import errors

        self.marionette = marionette
        self.interrupted = (errors.ScriptTimeoutException, errors.JavascriptException)
        version = marionette.session_capabilities.get("browserVersion", "?")
        super().__init__("firefox", version)

    def _run_async(self, script: str, arg: Any, timeout: float) -> Any:
        # sandbox=None: the page's own globals (window.socketConsoles), not an Xray view.
        return self.marionette.execute_async_script(
            script,
            script_args=[arg],
            sandbox=None,
            new_sandbox=False,
            script_timeout=int(timeout),
        )

    def _navigate(self, url: str) -> None:
        self.marionette.navigate(url)

    def _clear_cookies(self) -> None:
        # Every host's cookies, from the browser's privileged scope (WebDriver's "delete all
        # cookies" only reaches the current document's).
        with self.marionette.using_context("chrome"):
            self.marionette.execute_script("Services.cookies.removeAll();")

    def screenshot(self, path: Path) -> None:
        """Marionette's screenshot of the viewport."""
        path.write_bytes(self.marionette.screenshot(format="binary"))


class WebKitPage(WebDriverPage):
    """WebKitGTK's MiniBrowser over Selenium's WebKitGTK driver."""

    def __init__(self, driver: Any) -> None:
        import urllib3
        from selenium.common import exceptions

        self.driver = driver
        self.interrupted = (
            exceptions.NoSuchFrameException,
            exceptions.TimeoutException,
            exceptions.JavascriptException,
        )
        super().__init__("webkit", driver.capabilities.get("browserVersion", "?"))
        execute = driver.execute

        def execute_or_flag_stuck(*args: Any, **kwargs: Any) -> Any:
            try:
                return execute(*args, **kwargs)
            except (urllib3.exceptions.TimeoutError, urllib3.exceptions.MaxRetryError):
                self.stuck = True
                raise

        driver.execute = execute_or_flag_stuck

    def _run_async(self, script: str, arg: Any, timeout: float) -> Any:
        self.driver.set_script_timeout(timeout / 1000)
        return self.driver.execute_async_script(script, arg)

    def _navigate(self, url: str) -> None:
        self.driver.get(url)

    def _clear_cookies(self) -> None:
        # WebDriver deletes the current document's cookies only: every test server is on
        # 127.0.0.1, and cookies belong to the host, not the port.
        if self.driver.current_url.startswith("http://127.0.0.1"):
            self.driver.delete_all_cookies()

    def reset(self) -> None:
        """Cookies first: WebDriver reaches them only from a page of their host."""
        self._clear_cookies()
        self._navigate("about:blank")
        self.errors = []
        self.base_url = ""

    def screenshot(self, path: Path) -> None:
        """WebDriver's screenshot of the viewport."""
        path.write_bytes(self.driver.get_screenshot_as_png())


# ---------------------------------------------------------------------------- launching


@dataclass
class Launched:
    """A running browser of one engine: its page and how to stop it."""

    page: WebDriverPage
    stop: Callable[[], None]
    helpers: list[Any] = field(default_factory=list)


def _which(*candidates: str) -> str | None:
    """The first candidate that is an executable (a path, or a name on PATH); "" is skipped."""
    for candidate in candidates:
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def launch_firefox() -> Launched:
    """Firefox ESR, headless, on a fresh profile in a temporary directory (marionette_driver)."""
    chosen = os.environ.get("SHOWCASE_FIREFOX")
    binary = _which(*([chosen] if chosen else FIREFOXES))
    try:
        with warnings.catch_warnings():
            # mozinfo and mozrunner import what Python deprecates (distro's old call, telnetlib).
            warnings.simplefilter("ignore", DeprecationWarning)
            from marionette_driver.marionette import Marionette
    except ImportError:
        binary = None
    if not binary:
        raise EngineMissing(INSTALL["firefox"])
    # mozversion logs the build's metadata at INFO on every launch.
    logging.getLogger("mozversion").setLevel(logging.WARNING)
    from tools.servers import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Firefox's own output goes to a log beside the servers' (not gecko.log in the cwd).
    log = ARTIFACTS / f"firefox-{os.getpid()}.log"
    marionette = Marionette(host="127.0.0.1", port=0, bin=binary, headless=True, gecko_log=str(log))
    marionette.start_session()

    def stop() -> None:
        instance = marionette.instance
        used = instance.profile
        try:
            marionette.delete_session()
        finally:
            marionette.cleanup()  # stops Firefox, removes the profile
            # Closing gives the instance a new empty profile directory; remove it too. Neither
            # finaliser may try again at interpreter exit (it fails noisily then).
            for profile in (used, instance.profile):
                if profile is not None:
                    profile.cleanup()
                    profile.restore = False

    return Launched(FirefoxPage(marionette), stop)


def launch_webkit() -> Launched:
    """WebKitGTK's MiniBrowser in automation mode under WebKitWebDriver, on our own Xvfb."""
    chosen = os.environ.get("SHOWCASE_WEBKIT_DRIVER")
    driver_path = _which(*([chosen] if chosen else WEBKIT_DRIVERS))
    chosen = os.environ.get("SHOWCASE_MINIBROWSER")
    browser = next(
        (path for path in ([chosen] if chosen else MINIBROWSERS) if Path(path).exists()), None
    )
    xvfb = _which("Xvfb")
    try:
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service
    except ImportError:
        driver_path = None
    if not (driver_path and browser and xvfb):
        raise EngineMissing(INSTALL["webkit"])
    from tools.servers import server_env, start_xvfb

    display_server, display = start_xvfb()
    options = Options()
    options.binary_location = browser
    options.add_argument("--automation")
    # The driver's path is always given, so Selenium Manager never tries to download one.
    service = Service(executable_path=driver_path, env={**server_env(), "DISPLAY": display})
    try:
        with warnings.catch_warnings():
            # Selenium's own WebKitGTK class still passes a deprecated argument internally.
            warnings.filterwarnings("ignore", "setting remote_server_addr", DeprecationWarning)
            driver = webdriver.WebKitGTK(options=options, service=service)
        driver.command_executor.client_config.timeout = COMMAND_TIMEOUT_S
    except Exception:
        display_server.stop()
        raise

    page = WebKitPage(driver)

    def stop() -> None:
        try:
            if page.stuck:
                # A driver that no longer answers is not asked to quit (each command would wait
                # out its timeout, retried): it is killed, and its MiniBrowser goes with the
                # display.
                driver.service.process.kill()
            else:
                driver.quit()
        finally:
            display_server.stop()

    return Launched(page, stop, [display_server])


LAUNCHERS: dict[str, Callable[[], Launched]] = {
    "firefox": launch_firefox,
    "webkit": launch_webkit,
}
