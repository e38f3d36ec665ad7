"""What the cluster's browser tests share: putting a socket on a chosen daphne process."""

import json

from playwright.sync_api import BrowserContext, Page

from e2e.auth import PASSWORD
from e2e.console import Console

ATTEMPTS = 8  # nginx alternates between two processes: one more connect is nearly always enough


def info(console: Console) -> dict:
    """Ask a JSON endpoint's consumer where it runs (its `info` envelope)."""
    since = console.mark()
    console.send_json({"type": "info"})
    found = console.wait_for("message", since, where="JSON.parse(r.text).type === 'info'")
    return json.loads(found[0]["text"])


def connect_on(console: Console, endpoint: str, pid: int | None, journal: bool = False) -> dict:
    """
    Connect the console to a JSON endpoint, through nginx, until the socket lands on the daphne
    process `pid` (any process if None); return that socket's `info`.
    """
    for _ in range(ATTEMPTS):
        console.connect(endpoint, journal=journal)
        where = info(console)
        if pid is None or where["process"] == pid:
            return where
        since = console.mark()
        console.close()
        console.wait_for("close", since)
    raise AssertionError(f"no socket to {endpoint} landed on process {pid} in {ATTEMPTS} tries")


def hello(console: Console, since: int = 0) -> dict:
    """The lobby's latest `hello` envelope after `since`."""
    found = console.wait_for("message", since, where="JSON.parse(r.text).type === 'hello'")
    return json.loads(found[-1]["text"])


def lobby_on(page: Page, pid: int, url: str = "/auth/") -> Console:
    """Open the (logged-in) lobby page, reconnecting its socket until process `pid` serves it."""
    page.goto(url)
    page.wait_for_function("() => (window.socketConsoles || []).length > 0")
    console = Console(page)
    since = 0
    for _ in range(ATTEMPTS):
        if hello(console, since)["process"] == pid:
            return console
        since = console.mark()
        console.run("(c) => c.connect()")  # a new handshake: nginx's next process
    raise AssertionError(f"no lobby socket landed on process {pid} in {ATTEMPTS} tries")


def log_in_over_http(context: BrowserContext, username: str) -> None:
    """
    Log a browser context in with the login form's own POST, CSRF token included, without
    rendering the form (e2e/test_auth.py drives the form itself): the context gets the cookie.
    """
    context.request.get("/accounts/login/")
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    response = context.request.post(
        "/accounts/login/",
        form={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        max_redirects=0,
    )
    assert response.status == 302, f"login of {username} failed: {response.status}"


def sign_up_over_http(context: BrowserContext, username: str) -> None:
    """
    Create an account through the sign-up form's own POST (CSRF token included) and keep its
    session in the context: a deployment with its own database (HOSTS=3) has no test users.
    """
    context.request.get("/accounts/signup/")
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    response = context.request.post(
        "/accounts/signup/",
        form={
            "username": username,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "csrfmiddlewaretoken": token,
        },
        max_redirects=0,
    )
    assert response.status == 302, f"sign-up of {username} failed: {response.status}"
