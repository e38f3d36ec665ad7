"""
Logins and sign-ups are throttled (issue 21: 30 wrong passwords for alice went through in 6 s,
5 sign-ups took 1 s): django-axes locks out one username from one address after
WS_LIMITS["login"]["failures"], and WS_LIMITS["signups_per_address"] bounds new accounts.
"""

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.core import throttle

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long demo passphrase"
ATTACKER, ALICE_HOME = "203.0.113.66", "198.51.100.10"


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    yield
    async_to_sync(throttle.close_store)()


@pytest.fixture
def users(transactional_db: None) -> None:
    for name in ("alice", "bob"):
        get_user_model().objects.create_user(name, password=PASSWORD)


def log_in(username: str, password: str, address: str) -> object:
    """One login POST from this address; the response."""
    client = Client(REMOTE_ADDR=address)
    return client.post(reverse("login"), {"username": username, "password": password})


def test_failed_logins_lock_out_that_username_from_that_address(users: None, settings) -> None:
    failures = settings.WS_LIMITS["login"]["failures"]
    for _ in range(failures - 1):
        assert log_in("alice", "guess", ATTACKER).status_code == 200  # the form again
    locked = log_in("alice", "guess", ATTACKER)
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    # Locked out means the right password does not help either, from there...
    assert log_in("alice", PASSWORD, ATTACKER).status_code == 429
    # ... but alice at home, and bob from the attacker's address, still log in.
    assert log_in("alice", PASSWORD, ALICE_HOME).status_code == 302
    assert log_in("bob", PASSWORD, ATTACKER).status_code == 302


def test_the_lockout_ends_after_the_cool_off(users: None, settings) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in("alice", "guess", ATTACKER)
    locked_at = time.monotonic()
    assert log_in("alice", PASSWORD, ATTACKER).status_code == 429
    # The condition is the time itself: each attempt during the lockout restarts the cool-off
    # (axes' AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so no polling by logging in.
    time.sleep(max(0.0, locked_at + 1.2 - time.monotonic()))
    assert log_in("alice", PASSWORD, ATTACKER).status_code == 302


def sign_up(name: str, address: str) -> object:
    client = Client(REMOTE_ADDR=address)
    fields = {"username": name, "password1": PASSWORD, "password2": PASSWORD}
    return client.post(reverse("signup"), fields)


def test_sign_ups_per_address_are_limited(transactional_db: None, settings) -> None:
    settings.WS_LIMITS = {
        **settings.WS_LIMITS,
        "signups_per_address": {"per_hour": 1, "burst": 3},
    }
    assert [sign_up(f"new{n}", ATTACKER).status_code for n in range(3)] == [302] * 3
    refused = sign_up("new3", ATTACKER)
    assert refused.status_code == 429
    assert b"Too many new accounts from your address" in refused.content
    assert not get_user_model().objects.filter(username="new3").exists()
    assert sign_up("neighbour", ALICE_HOME).status_code == 302
