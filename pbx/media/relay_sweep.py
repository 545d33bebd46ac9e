"""When the relay's latch sweep visits which session: a rota that spreads one round over ticks.

Why: the sweep (`pbx.media.relay`) gives each port its `last_packet_at` and
marks silent latches stale (the latching of RFC 7362 §4 has to expire). It
only has to visit every session once per `interval`, but visiting all of
them in one timer callback blocks the event loop for that long: at 600
calls that is hundreds of microseconds to milliseconds during which no RTP
is forwarded, which shows up as the relay's p99 latency. The rota cuts
each round into slices of at most `per_tick` sessions, one slice per tick,
ticks `interval / slices` apart, so every session is still visited once a
round and no tick walks more than `per_tick` sessions (up to `max_slices`
ticks a round; beyond `per_tick * max_slices` sessions the slices grow).

Sans-IO: the relay asks `take(sessions)` for the next slice and `delay()`
for when to come back; no clock, no loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class SweepRota(Generic[T]):
    """Round-robin slices of a snapshot of the open sessions, one slice per tick."""

    __slots__ = ("interval", "per_tick", "max_slices", "_round", "_next", "_chunk", "_delay")

    def __init__(self, interval: float, *, per_tick: int = 50, max_slices: int = 50) -> None:
        if interval <= 0 or per_tick < 1 or max_slices < 1:
            raise ValueError("interval must be > 0, per_tick and max_slices >= 1")
        self.interval = interval
        self.per_tick = per_tick
        self.max_slices = max_slices
        self._round: list[T] = []
        self._next = 0
        self._chunk = 1
        self._delay = interval

    def take(self, sessions: Iterable[T]) -> list[T]:
        """The next slice; a new round (a snapshot of `sessions`) starts when one ends.

        A session opened during a round waits for the next round, so it is
        visited within two intervals; the caller skips sessions closed meanwhile.
        """
        if self._next >= len(self._round):
            self._start(list(sessions))
        part = self._round[self._next : self._next + self._chunk]
        self._next += self._chunk
        return part

    def delay(self) -> float:
        """Seconds from this tick to the next: the round's interval over its slice count."""
        return self._delay

    def reset(self) -> None:
        """Forget the round (no sessions left); the next `take` starts afresh."""
        self._round = []
        self._next = 0
        self._delay = self.interval

    def _start(self, sessions: list[T]) -> None:
        slices = min(self.max_slices, max(1, math.ceil(len(sessions) / self.per_tick)))
        self._round = sessions
        self._next = 0
        self._chunk = max(1, math.ceil(len(sessions) / slices))
        self._delay = self.interval / slices
