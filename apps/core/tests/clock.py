"""A clock the test moves by hand: expiry and refill without racing the scheduler."""


class Clock:
    """A stand-in for time.monotonic or time.time that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
