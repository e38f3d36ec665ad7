"""The token bucket and the limiter, on a clock the test moves by hand (no sleeping)."""

from types import SimpleNamespace

import pytest

from apps.core import limits
from apps.core.limits import CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED, Limiter, TokenBucket
from apps.core.tests.clock import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    # Only limits.py sees the fake clock; the event loop and pytest keep the real one.
    monkeypatch.setattr(limits, "time", SimpleNamespace(monotonic=clock))
    return clock


def takes(bucket: TokenBucket, attempts: int) -> int:
    """How many of `attempts` back-to-back messages the bucket lets through."""
    return sum(bucket.take() for _ in range(attempts))


def test_a_new_bucket_allows_a_full_burst_at_once(clock: Clock) -> None:
    bucket = TokenBucket(rate=2, burst=5)
    assert takes(bucket, 8) == 5
    assert not bucket.take()


def test_tokens_come_back_at_the_rate(clock: Clock) -> None:
    bucket = TokenBucket(rate=2, burst=5)
    takes(bucket, 5)
    clock.advance(0.49)  # 0.98 of a token: not yet
    assert not bucket.take()
    clock.advance(0.01)
    assert bucket.take()
    assert not bucket.take()
    clock.advance(1.5)  # three tokens
    assert takes(bucket, 5) == 3


def test_fractions_of_a_token_add_up(clock: Clock) -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take()
    for _ in range(3):
        clock.advance(0.25)
        assert not bucket.take()  # a refused attempt must not lose the refill so far
    clock.advance(0.25)
    assert bucket.take()


def test_idle_time_refills_up_to_the_burst_only(clock: Clock) -> None:
    bucket = TokenBucket(rate=10, burst=3)
    takes(bucket, 3)
    clock.advance(3600)
    assert takes(bucket, 10) == 3


def test_steady_traffic_at_the_rate_is_never_refused(clock: Clock) -> None:
    bucket = TokenBucket(rate=4, burst=1)
    for _ in range(100):
        assert bucket.take()
        clock.advance(0.25)


def test_a_burst_below_one_token_allows_nothing(clock: Clock) -> None:
    bucket = TokenBucket(rate=100, burst=0.5)
    clock.advance(10)
    assert not bucket.take()


@pytest.fixture
def tight_limits(settings, clock: Clock) -> None:
    settings.WS_LIMITS = {
        "tight": {"max_message_bytes": 4, "messages_per_second": 1, "burst": 2},
        "unmetered": {"max_message_bytes": 4, "messages_per_second": 0, "burst": 0},
    }


def test_limiter_measures_utf8_bytes_not_characters(tight_limits: None) -> None:
    assert Limiter("tight").check("éé", None) is None  # 2 characters, 4 bytes
    refusal = Limiter("tight").check("ééé", None)  # 3 characters, 6 bytes
    assert refusal is not None
    assert refusal.code == CLOSE_MESSAGE_TOO_BIG
    assert "6 bytes" in refusal.reason


def test_limiter_measures_binary_messages_too(tight_limits: None) -> None:
    assert Limiter("tight").check(None, b"1234") is None
    assert Limiter("tight").check(None, b"") is None
    assert Limiter("tight").check(None, b"12345").code == CLOSE_MESSAGE_TOO_BIG


def test_limiter_rate_limits_with_4429_and_stays_refused(tight_limits: None, clock: Clock) -> None:
    limiter = Limiter("tight")
    assert limiter.check("a", None) is None
    assert limiter.check("b", None) is None
    refusal = limiter.check("c", None)
    assert refusal is not None and refusal.code == CLOSE_RATE_LIMITED
    # The close is on its way: later messages are refused alike, even once tokens are back.
    clock.advance(60)
    assert limiter.check("d", None) == refusal


def test_limiter_without_a_rate_only_checks_size(tight_limits: None) -> None:
    limiter = Limiter("unmetered")
    assert all(limiter.check("x", None) is None for _ in range(10_000))
