"""Accounts over HTTP (login, logout, sign-up, CSRF), the /auth/ page, and the demo users."""

import re
from io import StringIO

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "a long demo passphrase"


@pytest.fixture
def alice() -> object:
    return get_user_model().objects.create_user("alice", password=PASSWORD)


def csrf_token(client: Client, path: str) -> str:
    """GET a form page and read its CSRF token, as a browser's form would carry it."""
    html = client.get(path).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_login_page_renders_the_form_with_a_csrf_token() -> None:
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'name="username"' in html
    assert 'class="card form-card"' in html


def test_login_without_csrf_token_is_refused(alice: object) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert SESSION_KEY not in client.session


def test_login_with_csrf_token_goes_to_next(alice: object) -> None:
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, reverse("login") + "?next=/auth/")
    response = client.post(
        reverse("login"),
        {"username": "alice", "password": PASSWORD, "next": "/auth/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert response["Location"] == "/auth/"
    assert client.session[SESSION_KEY] == str(alice.pk)


def test_wrong_password_stays_on_the_form(alice: object) -> None:
    response = Client().post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()


def test_logout_is_post_only(alice: object) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get(reverse("logout")).status_code == 405
    assert SESSION_KEY in client.session
    response = client.post(reverse("logout"), {"next": "/auth/"})
    assert response.status_code == 302
    assert response["Location"] == "/auth/"
    assert SESSION_KEY not in client.session


def test_logout_needs_csrf(alice: object) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("logout")).status_code == 403
    token = csrf_token(client, "/")  # the nav's logout form carries one on every page
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert SESSION_KEY not in client.session


def test_signup_creates_the_user_and_logs_in() -> None:
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, reverse("signup"))
    response = client.post(
        reverse("signup"),
        {
            "username": "dora",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "next": "/auth/",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/auth/"
    dora = get_user_model().objects.get(username="dora")
    assert client.session[SESSION_KEY] == str(dora.pk)
    assert "signed in as" in client.get("/auth/").content.decode()


def test_signup_ignores_a_foreign_next() -> None:
    response = Client().post(
        reverse("signup"),
        {
            "username": "eve",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_signup_rejects_mismatched_passwords() -> None:
    response = Client().post(
        reverse("signup"),
        {"username": "fay", "password1": PASSWORD, "password2": PASSWORD + "!"},
    )
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not get_user_model().objects.filter(username="fay").exists()


def test_auth_page_for_anonymous_visitors() -> None:
    html = Client().get(reverse("auth_ws:index")).content.decode()
    assert "data-lobby-anonymous" in html
    assert 'data-try="/ws/auth/"' in html
    assert 'data-try="/ws/auth/strict/"' in html
    assert reverse("login") + "?next=/auth/" in html
    assert "data-lobby " not in html
    # The shared console, with both endpoints, and the consumers' real source.
    assert "data-socket-console" in html
    assert 'value="/ws/auth/"' in html
    assert 'value="/ws/auth/strict/"' in html
    assert "LobbyConsumer" in html
    assert "StrictLobbyConsumer" in html
    assert "js/console.js" in html
    assert "js/lobby.js" in html


def test_auth_page_for_a_logged_in_user(alice: object) -> None:
    client = Client()
    client.force_login(alice)
    html = client.get(reverse("auth_ws:index")).content.decode()
    assert 'data-lobby data-username="alice"' in html
    assert "data-online" in html
    assert "data-chat-log" in html
    assert "data-lobby-anonymous" not in html
    assert "signed in as <strong data-username>alice</strong>" in html


def test_nav_on_every_page() -> None:
    html = Client().get("/").content.decode()
    assert 'href="/auth/"' in html
    assert 'href="/accounts/login/?next=/"' in html
    assert 'href="/accounts/signup/?next=/"' in html
    assert "Authenticated sockets" in html  # the home page lists the demo


def test_demo_users_only_in_debug(settings) -> None:
    settings.DEBUG = False
    out = StringIO()
    call_command("ensure_demo_users", stdout=out)
    assert "DEBUG is off" in out.getvalue()
    assert not get_user_model().objects.filter(username__in=["alice", "bob"]).exists()


def test_demo_users_exist_and_their_printed_passwords_work(settings) -> None:
    settings.DEBUG = True
    hashes = []
    for _ in range(2):  # a second start makes no second pair and keeps the passwords
        out = StringIO()
        call_command("ensure_demo_users", stdout=out)
        printed = dict(re.findall(r"^\s+(alice|bob)\s+(\S+)$", out.getvalue(), re.MULTILINE))
        assert set(printed) == {"alice", "bob"}
        for username, password in printed.items():
            assert get_user_model().objects.get(username=username).check_password(password)
        hashes.append(list(get_user_model().objects.order_by("username").values("password")))
    assert get_user_model().objects.filter(username__in=["alice", "bob"]).count() == 2
    assert hashes[0] == hashes[1]  # unchanged hashes: sessions of an earlier start stay valid


def test_demo_users_get_their_password_back(settings) -> None:
    settings.DEBUG = True
    call_command("ensure_demo_users", stdout=StringIO())
    alice = get_user_model().objects.get(username="alice")
    alice.set_password("changed by someone")
    alice.save()
    call_command("ensure_demo_users", stdout=StringIO())
    assert get_user_model().objects.get(username="alice").check_password("lobby-alice")


def test_login_page_lists_demo_accounts_in_debug_only(settings) -> None:
    settings.DEBUG = False
    assert "data-demo-accounts" not in Client().get(reverse("login")).content.decode()
    settings.DEBUG = True
    html = Client().get(reverse("login")).content.decode()
    assert "<code>alice</code> / <code>lobby-alice</code>" in html
