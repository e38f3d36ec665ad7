"""The /http/ and /worker/ pages, the home page's demos, and the POST that chats from /http/."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.jobs import consumers as jobs_consumers
from apps.sse import consumers as sse_consumers


@pytest.mark.parametrize(
    ("path", "classes", "badge"),
    [
        ("/http/", ["TicksConsumer", "LobbyStreamConsumer"], "AsyncHttpConsumer"),
        ("/worker/", ["JobsConsumer"], "AsyncJsonWebsocketConsumer"),
    ],
)
def test_page_shows_the_real_consumers(client: Client, path: str, classes, badge) -> None:
    html = client.get(path).content.decode()
    for name in classes:
        assert f'id="consumer-{name}"' in html
    assert f'<span class="badge">{badge}</span>' in html
    module = sse_consumers if path == "/http/" else jobs_consumers
    assert module.__name__.replace(".", "/") + ".py" in html
    assert ("data-socket-console" in html) == (path == "/worker/")


def test_home_lists_the_http_and_worker_demos(client: Client) -> None:
    html = client.get("/").content.decode()
    for href in ("/http/", "/worker/"):
        assert f'href="{href}"' in html
    for style in ("AsyncHttpConsumer", "ChannelNameRouter", "runworker"):
        assert style in html


@pytest.mark.django_db
def test_say_needs_a_login_csrf_and_text() -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/http/lobby/say/", {"text": "hi"}).status_code == 403  # no token
    client = Client()
    anonymous = client.post("/http/lobby/say/", {"text": "hi"})
    assert (anonymous.status_code, anonymous.json()["code"]) == (403, "not_logged_in")
    client.force_login(get_user_model().objects.create_user("alice"))
    for text, code in (("   ", "invalid_text"), ("x" * 501, "text_too_long")):
        response = client.post("/http/lobby/say/", {"text": text})
        assert (response.status_code, response.json()["code"]) == (400, code)
    assert client.get("/http/lobby/say/").status_code == 405
    sent = client.post("/http/lobby/say/", {"text": "hi"})
    assert sent.status_code == 201
    assert sent.json()["type"] == "chat"
