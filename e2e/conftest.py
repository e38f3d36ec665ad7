"""
The browser suite's harness: real daphne processes on the pytest-django test database, a real
redis-server where the channel layer matters, one browser per engine per session (Chromium
through Playwright; Firefox and WebKit through e2e/engines.py), a fresh context or a cleared
page per test, and artefacts kept for every failure.

Run it on its own (`pytest e2e`): sync Playwright and pytest-asyncio break each other in one
process (playwright-pytest#167).
"""

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from playwright.sync_api import BrowserContext, Playwright

from e2e import artifacts
from e2e.auth import PASSWORD
from e2e.engines import ENGINES, LAUNCHERS, EngineMissing, EnginePage, PlaywrightPage
from tools.servers import (
    SERVERS,
    ServerProcess,
    database_env,
    server_env,
    start_daphne,
    start_worker,
    static_site,
)
from tools.servers import start_server as start_any_server

# Sync Playwright keeps an event loop running on this thread, and Django then refuses ORM
# calls here (pytest-django's DB set-up included). Allowed in this process only: server_env()
# removes the variable from every server, where it would hide real sync-in-async bugs.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

# Where a system Chromium lives when Playwright's own browsers are not installed. The Debian
# path is the real binary; /usr/bin/chromium is a shell wrapper that adds flags.
SYSTEM_CHROMIUMS = (
    "/usr/lib/chromium/chromium",
    "/usr/lib/chromium-browser/chromium-browser",
    "chromium",
    "chromium-browser",
    "google-chrome",
)

TIMEOUT_MS = 10_000

ARTIFACTS_KEY = pytest.StashKey[artifacts.FailureArtifacts]()
FAILURES_KEY = pytest.StashKey[list[tuple[str, list[Path]]]]()


# ---------------------------------------------------------------------------- the database


def pytest_configure(config: pytest.Config) -> None:
    """The mark pytest-xdist groups by, known even where xdist is not installed."""
    config.addinivalue_line("markers", "xdist_group(name): run these tests in one process")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Every test with a server needs the test database, whether or not it touches it itself:
    pytest-django creates it only for tests that ask. `transaction=True`, because the server
    process commits its own writes (sessions, users), which a flush after each test removes
    and a rollback in this process would not. A test's own django_db marker wins.

    Tests in Firefox or WebKit go to one process (`--dist loadgroup`): each of those browsers
    then starts once for the run. The other server-matrix tests go to one process too, so the
    four servers start once more, not once per process; so do the tests through the cluster.
    The rest spread over every process. First among the hooks: pytest-xdist reads the groups in
    its own hook, registered after this file, and pluggy calls the last registered first;
    without `tryfirst` it saw no group, and every process launched Firefox, WebKit, the four
    servers and a cluster of its own.
    """
    for item in items:
        names = getattr(item, "fixturenames", ())
        uses_server = "daphne_env" in names
        if uses_server and item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db(transaction=True))
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("engine_page") if callspec else None
        if engine in LAUNCHERS or ("engines" in names and engine is None):
            item.add_marker(pytest.mark.xdist_group("engines"))
        elif "matrix_server" in names:
            item.add_marker(pytest.mark.xdist_group("matrix"))
        elif "cluster" in names:
            item.add_marker(pytest.mark.xdist_group("cluster"))


# Tests that carried an xdist group which pytest-xdist did not apply (see below).
UNGROUPED: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """
    Under `--dist loadgroup`, note the tests whose group pytest-xdist lost: the run would pass
    all the same, but every process would start its own Firefox, WebKit, servers and cluster
    (half again as long). pytest 9.2 loses them all (pytest-dev/pytest-xdist#1386).
    """
    if getattr(session.config.option, "loadgroup", False):  # set in xdist workers only
        UNGROUPED.extend(
            item.nodeid
            for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid.split("]")[-1]
        )


@pytest.fixture(autouse=True)
def _grouped_as_asked() -> None:
    """Every test fails, saying why, in a run whose groups were lost (a worker's error is not)."""
    if UNGROUPED:
        pytest.fail(
            f"pytest-xdist did not apply --dist loadgroup's groups ({len(UNGROUPED)} tests, e.g. "
            f"{UNGROUPED[0]}): pytest-dev/pytest-xdist#1386; pyproject.toml pins pytest below it",
            pytrace=False,
        )


# ---------------------------------------------------------------------------- the browser


def system_chromium(playwright: Playwright) -> str | None:
    """
    The Chromium to launch instead of Playwright's own, or None to use Playwright's own.

    SHOWCASE_CHROMIUM names a binary explicitly. Otherwise Playwright's own Chromium wins
    when `playwright install chromium` put it there; only without it do we look for a system
    one (Debian's, here, where Playwright cannot download browsers).
    """
    if chosen := os.environ.get("SHOWCASE_CHROMIUM"):
        return chosen
    if Path(playwright.chromium.executable_path).exists():
        return None
    for candidate in SYSTEM_CHROMIUMS:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "No Chromium: run `make system-deps` (Debian's chromium) or "
        "`.venv/bin/playwright install chromium`, or set SHOWCASE_CHROMIUM=/path/to/chromium.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], playwright: Playwright, browser_name: str
) -> dict[str, Any]:
    """pytest-playwright's launch options, plus a system Chromium where one is needed."""
    args = dict(browser_type_launch_args)
    chosen_by_user = "channel" in args or "executable_path" in args
    if browser_name == "chromium" and not chosen_by_user and (found := system_chromium(playwright)):
        args["executable_path"] = found
    return args


# ---------------------------------------------------------------------------- other engines


def engines_required() -> bool:
    """
    Whether a missing engine fails the run instead of skipping its tests: in CI (`CI` set) and
    under `make test`/`make e2e` (SHOWCASE_REQUIRE_ENGINES=1). A developer without Firefox or
    WebKit runs `pytest e2e` and sees the skips, each naming what to install.
    """
    return os.environ.get("SHOWCASE_REQUIRE_ENGINES") == "1" or bool(os.environ.get("CI"))


class Engines:
    """The session's Firefox and WebKit, each launched on first use and stopped at the end."""

    def __init__(self) -> None:
        self.launched: dict[str, Any] = {}
        self.missing: dict[str, str] = {}

    def page(self, engine: str) -> EnginePage:
        """
        The engine's one page; skips (or fails, see engines_required) if it is missing. A
        browser that stopped answering (its page is `stuck`) is stopped and launched afresh:
        the test that found it stuck has failed, the next ones need not.
        """
        if (running := self.launched.get(engine)) is not None and running.page.stuck:
            with contextlib.suppress(Exception):
                running.stop()
            del self.launched[engine]
        if engine not in self.launched and engine not in self.missing:
            try:
                self.launched[engine] = LAUNCHERS[engine]()
            except EngineMissing as missing:
                self.missing[engine] = str(missing)
        if engine in self.missing:
            message = f"{engine} is not installed here. {self.missing[engine]}"
            if engines_required():
                pytest.fail(message + " (required: CI or SHOWCASE_REQUIRE_ENGINES=1)")
            pytest.skip(message)
        return self.launched[engine].page

    def stop(self) -> None:
        """Stop every browser launched."""
        for launched in self.launched.values():
            launched.stop()


@pytest.fixture(scope="session")
def engines() -> Iterator[Engines]:
    """One browser per engine (besides Playwright's Chromium) for the session."""
    found = Engines()
    yield found
    found.stop()


@pytest.fixture
def open_engine(
    engines: Engines, base_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], EnginePage]]:
    """
    `open_engine("firefox")`: a page of that engine in a fresh state (Chromium: a new context;
    Firefox, WebKit: the session's page, emptied, its cookies deleted), with relative URLs on
    the session's daphne. Fails the test if a page logged an uncaught error.
    """
    opened: list[EnginePage] = []
    recorder = request.node.stash.setdefault(
        ARTIFACTS_KEY, artifacts.FailureArtifacts(request.node.nodeid)
    )

    def open_page(engine: str) -> EnginePage:
        if engine == "chromium":
            # Asked for here, not as an argument: a Firefox-only test starts no Chromium.
            new_context = request.getfixturevalue("new_context")
            page: EnginePage = PlaywrightPage(new_context().new_page())
        else:
            page = engines.page(engine)
            page.reset()
            recorder.watch_engine(page)
        page.base_url = base_url
        opened.append(page)
        return page

    yield open_page
    errors = [f"{page.engine}: {error}" for page in opened for error in page.page_errors()]
    for page in opened:
        if page.engine in LAUNCHERS:
            page.reset()  # its sockets and streams end with the test, as a context's do
    if errors:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture(params=ENGINES)
def engine_page(request: pytest.FixtureRequest, open_engine: Callable[[str], EnginePage]) -> Any:
    """The test runs once per engine, on a fresh page of it."""
    return open_engine(request.param)


# ---------------------------------------------------------------------------- the servers


@pytest.fixture(scope="session")
def daphne_env(django_db_setup: None) -> dict[str, str]:
    """
    The environment of every server the suite starts: the test database pytest-django has
    just created (a SQLite file, TEST_DATABASE_PATH, or a PostgreSQL database), the fast
    password hasher, DEBUG off, and nothing of this process's test-only variables.
    """
    database = settings.DATABASES["default"]
    if str(database["NAME"]) != str(database["TEST"]["NAME"]):
        # Never let a browser test's server write to the developer's database.
        raise RuntimeError(f"the test database was not set up; NAME is {database['NAME']}")
    return server_env(
        **database_env(database),
        FAST_PASSWORD_HASHER="1",
        DEBUG="0",
        # Server-Sent Events at ten a second, reconnecting after 200 ms: streams in tests
        # show several responses and reconnects within a second or two.
        SSE_TICK_SECONDS="0.1",
        SSE_RETRY_MS="200",
    )


def _start(env: dict[str, str], **kwargs: Any) -> ServerProcess:
    return artifacts.register(start_daphne(env, **kwargs))


def _stop(server: ServerProcess) -> None:
    server.stop()
    artifacts.unregister(server)


@pytest.fixture(scope="session")
def daphne_server(daphne_env: dict[str, str]) -> Iterator[ServerProcess]:
    """One daphne for the session, with the in-memory channel layer (like `make run`)."""
    server = _start(daphne_env)
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def base_url(daphne_server: ServerProcess) -> str:
    """Lets tests say `page.goto("/sync/")`."""
    return daphne_server.http_url


@pytest.fixture(scope="session", params=SERVERS)
def matrix_server(
    request: pytest.FixtureRequest, daphne_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """
    Each of the four servers in turn, with `make run`'s flags, serving the showcase plus the
    probes of `e2e/asgi.py`: the server-differences tests run once per server. Session-scoped,
    so pytest groups the tests by server and runs one server at a time.
    """
    server = artifacts.register(
        start_any_server(request.param, daphne_env, app="e2e.asgi:application")
    )
    yield server
    # Not the 10 s of grace the flags give (hypercorn waits that long for the browser's idle
    # keep-alive connections): what SIGTERM does is test_pings_and_sigterm's business.
    server.stop(timeout=2)
    artifacts.unregister(server)


@pytest.fixture(scope="session")
def daphne_pair(daphne_env: dict[str, str], redis_url: str) -> Iterator[list[ServerProcess]]:
    """
    Two daphne processes on one redis-server (channels-redis) and one test database: what
    one socket sends through the channel layer, a socket on the other process receives.
    Their pages are at `daphne_pair[0].http_url` and `daphne_pair[1].http_url`.
    """
    env = {**daphne_env, "REDIS_URL": redis_url}
    with ThreadPoolExecutor(2) as pool:
        servers = list(pool.map(lambda n: _start(env, name=f"daphne-pair{n}"), (1, 2)))
    yield servers
    for server in servers:
        _stop(server)


@pytest.fixture(scope="session")
def worker_cluster(
    daphne_env: dict[str, str], redis_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """
    A daphne and a separate `manage.py runworker jobs` process on one redis-server, as
    `make cluster` runs them: jobs sent from the daphne's sockets are done by the worker.
    """
    env = {**daphne_env, "REDIS_URL": redis_url}
    server = _start(env, name="daphne-jobs")
    worker = artifacts.register(start_worker(env))
    yield server, worker
    _stop(worker)
    _stop(server)


@pytest.fixture
def start_server(
    daphne_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Callable[..., ServerProcess]]:
    """
    Start a daphne of this test's own (`start_server(port=..., name=..., env=...)`), for
    tests that stop or restart a server; every one still running is stopped afterwards.
    """
    started: list[ServerProcess] = []

    def start(
        port: int | None = None, name: str = "daphne-own", env: dict[str, str] | None = None
    ) -> ServerProcess:
        server = _start({**daphne_env, **(env or {})}, port=port, name=name)
        started.append(server)
        if recorder := request.node.stash.get(ARTIFACTS_KEY, None):
            recorder.see_server(server)
        return server

    yield start
    for server in started:
        _stop(server)


@pytest.fixture(scope="session")
def foreign_site() -> Iterator[str]:
    """
    The base URL of a page of another origin (e2e/foreign_site/: another port of 127.0.0.1, so
    the same site for cookies), which tries the showcase's sockets and streams.
    """
    with static_site(Path(__file__).parent / "foreign_site") as url:
        yield url


@pytest.fixture
def database_alias() -> str:
    """The alias of the database this folder's servers use (e2e/cluster/: PostgreSQL's)."""
    return "default"


@pytest.fixture
def users(database_alias: str) -> None:
    """alice and bob, with the suite's password, in the test database the servers share."""
    for name in ("alice", "bob"):
        get_user_model().objects.db_manager(database_alias).create_user(name, password=PASSWORD)


@pytest.fixture
def password() -> str:
    """The password of the `users` fixture's alice and bob."""
    return PASSWORD


@pytest.fixture
def empty_redis_db(redis_url: str) -> Callable[[int], str]:
    """`empty_redis_db(n)`: the URL of database n of the session's redis-server, emptied."""

    def empty(number: int) -> str:
        url = redis_url.rsplit("/", 1)[0] + f"/{number}"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return url

    return empty


# ---------------------------------------------------------------------------- pages


@pytest.fixture
def new_context(
    new_context: Callable[..., BrowserContext], request: pytest.FixtureRequest
) -> Callable[..., BrowserContext]:
    """pytest-playwright's context factory, with every context watched for the artefacts."""
    recorder = request.node.stash.setdefault(
        ARTIFACTS_KEY, artifacts.FailureArtifacts(request.node.nodeid)
    )

    def make(**kwargs: Any) -> BrowserContext:
        context = new_context(**kwargs)
        # Everything here answers within milliseconds; fail in seconds, not Playwright's 30.
        context.set_default_timeout(TIMEOUT_MS)
        recorder.watch(context)
        return context

    return make


# ---------------------------------------------------------------------------- failures


@pytest.fixture(autouse=True)
def _server_logs_stay_clean() -> Iterator[None]:
    """
    Fail the test during which a server the suite started logged a traceback: whatever the
    browser does, no server may log one. (daphne logs an application's exception when it
    reaps it, up to a second later, so one may surface in the next test.)
    """
    start = {server.log_path: server.log_size() for server in artifacts.STARTED_SERVERS}
    yield
    found = new_tracebacks(start)
    if found:
        pytest.fail("a server logged a traceback:\n\n" + "\n\n".join(found), pytrace=False)


def new_tracebacks(start: dict[Path, int]) -> list[str]:
    """Tracebacks logged by the suite's servers after these offsets (0 for newer servers)."""
    found = []
    for server in artifacts.STARTED_SERVERS:
        since = start.get(server.log_path, 0)
        found += [f"{server.log_path.name}:\n{t}" for t in server.tracebacks(since=since)]
        LOG_CHECKED[server.log_path] = server.log_size()
    return found


# How far each server's log has been read for tracebacks.
LOG_CHECKED: dict[Path, int] = {}


@pytest.fixture(scope="session", autouse=True)
def _no_traceback_after_the_last_test() -> Iterator[None]:
    """
    Fail the run if a server logged a traceback after the last test (e.g. while stopping).
    Set up before, so torn down after, every server fixture; a failure here is reported on the
    last test, which pytest-xdist passes on (it ignores a worker's own exit status).
    """
    yield
    found = new_tracebacks(dict(LOG_CHECKED))
    if found:
        pytest.fail(
            "a server logged a traceback after the tests:\n\n" + "\n\n".join(found),
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On a test's first failure, save its artefacts while its pages are still open."""
    outcome = yield
    report = outcome.get_result()
    recorder = item.stash.get(ARTIFACTS_KEY, None)
    if not report.failed or recorder is None or recorder.saved:
        return
    written = recorder.save()
    item.config.stash.setdefault(FAILURES_KEY, []).append((item.nodeid, written))
    report.sections.append(("e2e artefacts", "\n".join(str(path) for path in written)))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List where each failed browser test left its artefacts."""
    failures = config.stash.get(FAILURES_KEY, [])
    if not failures:
        return
    terminalreporter.section("browser test artefacts")
    for nodeid, written in failures:
        terminalreporter.write_line(nodeid)
        for path in written:
            terminalreporter.write_line(f"    {path}")
