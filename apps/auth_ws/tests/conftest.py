"""Fixtures of the lobby's tests."""

from types import SimpleNamespace

import pytest

from apps.auth_ws import presence
from apps.core.tests.clock import Clock


@pytest.fixture
def presence_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """
    The heartbeat times both presence stores write and read, moved by the test: an entry
    expires when the test says, not when a loaded machine gets round to it. Heartbeats stay
    on real timers (every third of PRESENCE_TTL), and so does Redis's own key expiry.
    """
    clock = Clock()
    monkeypatch.setattr(presence, "time", SimpleNamespace(time=clock))
    return clock
