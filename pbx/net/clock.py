"""Where "now" comes from.

pbx/sip never reads the clock: every sans-IO machine takes `now: float`
(monotonic seconds) as an argument. The asyncio shell asks a `Clock` and
passes the figure down; tests pass a `FakeClock` and move time by hand, so a
64*T1 timeout takes no wall time at all.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Something that says what monotonic time it is, in seconds."""

    def now(self) -> float: ...


class MonotonicClock:
    """The real clock: `time.monotonic()`, immune to wall-clock jumps."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to (for tests and benchmarks)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to `now`, which must not be earlier than the current time."""
        if now < self._now:
            raise ValueError(f"a monotonic clock cannot go back ({now} < {self._now})")
        self._now = now
