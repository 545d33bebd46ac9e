"""The timer service: one call_at per core, re-armed to next_deadline(), fired at loop time.

The first tests use a fake loop (exact times, no waiting); the last one runs
on the real asyncio loop with a tiny fake core.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pbx.net.timers import TimerService


@dataclass(order=True)
class FakeHandle:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just `time()` and `call_at()`, with time moved by `advance()`."""

    def __init__(self) -> None:
        self.now = 100.0
        self.heap: list[FakeHandle] = []
        self.seq = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        self.seq += 1
        handle = FakeHandle(when, self.seq, callback)
        heapq.heappush(self.heap, handle)
        return handle

    @property
    def live(self) -> list[FakeHandle]:
        return [h for h in self.heap if not h.cancelled]

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.heap and self.heap[0].when <= end:
            handle = heapq.heappop(self.heap)
            if not handle.cancelled:
                self.now = max(self.now, handle.when)
                handle.callback()
        self.now = end


class FakeCore:
    """Deadlines as a sorted list; handle_timers pops the due ones and records `now`."""

    def __init__(self, deadlines: list[float] | None = None) -> None:
        self.deadlines = sorted(deadlines or [])
        self.calls: list[float] = []
        self.fired: list[float] = []

    def next_deadline(self) -> float | None:
        return self.deadlines[0] if self.deadlines else None

    def handle_timers(self, now: float) -> None:
        self.calls.append(now)
        while self.deadlines and self.deadlines[0] <= now:
            self.fired.append(self.deadlines.pop(0))


def test_fires_at_each_deadline_with_loop_time() -> None:
    loop = FakeLoop()
    core = FakeCore([100.5, 101.0, 104.0])
    flushed: list[float] = []
    service = TimerService(loop, core, after_fire=lambda: flushed.append(loop.now))  # type: ignore[arg-type]
    service.rearm()
    assert service.armed_at == 100.5
    loop.advance(0.49)
    assert core.calls == []
    loop.advance(0.01)
    assert core.calls == [100.5] and flushed == [100.5]
    assert service.armed_at == 101.0  # re-armed after firing
    loop.advance(10)
    assert core.calls == [100.5, 101.0, 104.0]
    assert core.fired == [100.5, 101.0, 104.0]
    assert service.armed_at is None and service.fired == 3
    assert loop.live == []


def test_one_handle_moved_by_rearm() -> None:
    loop = FakeLoop()
    core = FakeCore([105.0])
    service = TimerService(loop, core)  # type: ignore[arg-type]
    service.rearm()
    service.rearm()  # unchanged deadline: the same handle stays
    assert len(loop.live) == 1
    core.deadlines.insert(0, 101.0)  # a feed added an earlier timer
    service.rearm()
    assert [h.when for h in loop.live] == [101.0]
    core.deadlines.clear()  # the transaction ended
    service.rearm()
    assert loop.live == [] and service.armed_at is None
    loop.advance(10)
    assert core.calls == []


def test_early_wakeup_never_hands_the_core_an_earlier_time() -> None:
    loop = FakeLoop()
    core = FakeCore([100.2])
    service = TimerService(loop, core)  # type: ignore[arg-type]
    service.rearm()
    handle = loop.live[0]
    loop.now = 100.1999999  # asyncio may run a handle one clock tick early
    handle.callback()
    assert core.calls == [100.2] and core.fired == [100.2]


def test_close_cancels_and_ignores_later_rearms() -> None:
    loop = FakeLoop()
    core = FakeCore([101.0])
    service = TimerService(loop, core)  # type: ignore[arg-type]
    service.rearm()
    service.close()
    service.rearm()
    loop.advance(5)
    assert core.calls == [] and loop.live == []


def test_a_failing_core_does_not_stop_later_timers(caplog: pytest.LogCaptureFixture) -> None:
    loop = FakeLoop()

    class Flaky(FakeCore):
        def handle_timers(self, now: float) -> None:
            super().handle_timers(now)
            if len(self.calls) == 1:
                raise RuntimeError("boom")

    core = Flaky([101.0, 102.0])
    service = TimerService(loop, core)  # type: ignore[arg-type]
    service.rearm()
    loop.advance(5)
    assert core.fired == [101.0, 102.0]
    assert "timer handling failed" in caplog.text


async def test_real_loop_fires_on_time() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    core = FakeCore([start + 0.05, start + 0.15])
    done = asyncio.Event()
    service = TimerService(
        loop, core, after_fire=lambda: done.set() if not core.deadlines else None
    )
    service.rearm()
    await asyncio.wait_for(done.wait(), 3.0)
    assert core.fired == [start + 0.05, start + 0.15]
    for now, deadline in zip(core.calls, core.fired, strict=True):
        assert deadline <= now < deadline + 0.1  # at (not before) the deadline, loop time
    service.close()


def test_granularity_fires_a_slot_of_deadlines_in_one_callback() -> None:
    loop = FakeLoop()
    core = FakeCore([100.501, 100.503, 100.509, 100.512, 100.7])
    service = TimerService(loop, core, granularity=0.01)  # type: ignore[arg-type]
    service.rearm()
    assert service.armed_at == pytest.approx(100.51)
    assert service.armed_at is not None and service.armed_at >= 100.501
    loop.advance(0.5099)
    assert core.calls == []  # nothing fires before its slot ends...
    loop.advance(0.0002)
    assert core.fired == [100.501, 100.503, 100.509]  # ...then the whole slot at once
    assert service.armed_at == pytest.approx(100.52)
    loop.advance(1.0)
    assert core.fired == [100.501, 100.503, 100.509, 100.512, 100.7]
    assert service.fired == 3 and len(core.calls) == 3
    fired_slots = zip(core.calls, (100.509, 100.512, 100.7), strict=True)
    assert all(now >= deadline for now, deadline in fired_slots)


def test_granularity_never_arms_before_the_deadline() -> None:
    loop = FakeLoop()
    for deadline in (100.1, 100.3, 100.7, 1e6 + 0.07, 123.456789):
        core = FakeCore([deadline])
        service = TimerService(loop, core, granularity=0.01)  # type: ignore[arg-type]
        service.rearm()
        assert service.armed_at is not None
        assert deadline <= service.armed_at < deadline + 0.01 + 1e-9
        service.close()
