"""The timer service: drives a sans-IO core's timers from the event loop's clock.

The SIP core keeps its timers as data (RFC 3261 17.1.1.2 Timer A ... Timer K)
and only answers two questions: `next_deadline() -> float | None` and
`handle_timers(now)`. This service keeps exactly ONE `loop.call_at` per core
(the aioquic pattern): after every feed of the core the caller calls
`rearm()`, which moves the single handle to the new earliest deadline, or
cancels it when nothing is pending. When it fires, `handle_timers(loop.time())`
runs, then the `after_fire` hook (the endpoint flushes outgoing messages and
events there), then the handle is re-armed.

With a `granularity` (seconds) the handle is armed at the deadline rounded up to a multiple
of it, so timers due within one slot fire in one loop callback: under load every transaction
ends with its own Timer J (RFC 3261 17.2.2), thousands of distinct deadlines a second, and a
`call_at` per deadline cost more than ending the transactions. A timer then fires up to one
slot late, which RFC 3261's timers (T1 = 500 ms and up) do not notice. 0 keeps exact times.

Times are the loop's monotonic clock (`loop.time()`, seconds), the same clock
the core is fed with, so a deadline computed by the core is directly a
`call_at` time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class TimedCore(Protocol):
    """What the service needs from a core: its earliest deadline and a tick."""

    def next_deadline(self) -> float | None: ...

    def handle_timers(self, now: float) -> None: ...


class TimerService:
    """One re-armable `call_at` handle for one core."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        core: TimedCore,
        after_fire: Callable[[], None] | None = None,
        *,
        granularity: float = 0.0,
    ) -> None:
        self._loop = loop
        self._granularity = granularity
        self._core = core
        self._after_fire = after_fire
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self._closed = False
        self.fired = 0
        """How many times handle_timers ran (for diagnostics and tests)."""

    @property
    def armed_at(self) -> float | None:
        """The loop time the handle will fire at, or None when idle."""
        return self._armed_at

    def rearm(self) -> None:
        """Point the handle at the core's current next deadline (call after every feed)."""
        if self._closed:
            return
        deadline = self._core.next_deadline()
        if deadline is not None and self._granularity > 0:
            slot = math.ceil(deadline / self._granularity) * self._granularity
            deadline = max(slot, deadline)  # never before the deadline, float error or not
        if deadline == self._armed_at and (deadline is None or self._handle is not None):
            return
        self._cancel()
        if deadline is None:
            return
        self._armed_at = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def close(self) -> None:
        """Cancel the handle; later `rearm()` calls do nothing."""
        self._closed = True
        self._cancel()

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed_at = None

    def _fire(self) -> None:
        # asyncio may run a handle up to one clock tick early; never hand the
        # core a time before the deadline it asked for.
        now = max(self._loop.time(), self._armed_at or 0.0)
        self._handle = None
        self._armed_at = None
        self.fired += 1
        try:
            self._core.handle_timers(now)
            if self._after_fire is not None:
                self._after_fire()
        except Exception:  # a bug in the core must not stop every later timer
            log.exception("timer handling failed at %.3f", now)
        self.rearm()
