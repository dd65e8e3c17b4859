"""A fake clock for retry and rate-limit tests: time moves only when slept."""

from __future__ import annotations


class FakeTime:
    """A clock that only moves when ``sleep`` is awaited, recording every wait."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
