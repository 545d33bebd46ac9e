"""Timer values (RFC 3261 table 4, RFC 6026) and the timer heap; the FakeClock tests use."""

from __future__ import annotations

import random

import pytest

from pbx.net.clock import FakeClock, MonotonicClock
from pbx.sip.timers import TimerConfig, TimerHeap, TimerName

N = TimerName
DEFAULT = TimerConfig()


@pytest.mark.parametrize(
    ("name", "udp", "tcp"),
    [
        (N.A, 0.5, None),
        (N.B, 32.0, 32.0),
        (N.D, 32.0, 0.0),
        (N.E, 0.5, None),
        (N.F, 32.0, 32.0),
        (N.G, 0.5, None),
        (N.H, 32.0, 32.0),
        (N.I, 5.0, 0.0),
        (N.J, 32.0, 0.0),
        (N.K, 5.0, 0.0),
        (N.L, 32.0, 32.0),
        (N.M, 32.0, 32.0),
        (N.CANCEL_GUARD, 32.0, 32.0),
    ],
)
def test_initial_values_with_default_t1_t2_t4(name: TimerName, udp, tcp) -> None:
    assert DEFAULT.initial(name, reliable=False) == udp
    assert DEFAULT.initial(name, reliable=True) == tcp


def test_values_follow_t1_and_t4() -> None:
    lan = TimerConfig(t1=0.1, t2=1.0, t4=2.0)
    assert lan.initial(N.B, False) == pytest.approx(6.4)
    assert lan.initial(N.K, False) == 2.0
    assert lan.initial(N.E, False) == 0.1


def test_a_doubles_without_cap_and_e_g_cap_at_t2() -> None:
    interval = {N.A: 0.5, N.E: 0.5, N.G: 0.5}
    seen: dict[TimerName, list[float]] = {name: [] for name in interval}
    for _ in range(6):
        for name in interval:
            interval[name] = DEFAULT.backoff(name, interval[name])
            seen[name].append(interval[name])
    assert seen[N.A] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert seen[N.E] == seen[N.G] == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize("kwargs", [{"t1": 0}, {"t1": 5.0, "t2": 4.0}, {"t4": 0}])
def test_bad_configs_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**kwargs)


def test_heap_pops_in_deadline_order_and_only_when_due() -> None:
    heap = TimerHeap()
    heap.push(3.0, "b", N.F)
    heap.push(1.0, "a", N.E)
    heap.push(2.0, "c", N.K)
    assert heap.peek() == 1.0
    assert heap.pop_due(0.5) is None
    assert heap.pop_due(2.5) == (1.0, "a", N.E)
    assert heap.pop_due(2.5) == (2.0, "c", N.K)
    assert heap.pop_due(2.5) is None
    assert len(heap) == 1


def test_heap_drops_stale_entries_from_the_top() -> None:
    heap = TimerHeap()
    heap.push(1.0, "gone", N.E)
    heap.push(2.0, "live", N.F)
    heap.drop_stale(lambda deadline, owner, name: owner == "live")
    assert heap.peek() == 2.0 and len(heap) == 1


def test_heap_pops_a_pbx_like_mix_in_the_order_of_one_sorted_list() -> None:
    """Timers armed as now + 32 s, now + 5 s and doubling retransmits (the lanes' case), plus
    odd deadlines in between: every pop is the earliest (deadline, arming order) left."""
    rng = random.Random(7)
    heap, reference, now, popped = TimerHeap(), [], 0.0, []
    for step in range(20_000):
        now += rng.choice((0.0, 0.001, 0.003, 0.02))
        kind = rng.random()
        if kind < 0.5:
            deadline = now + 32.0  # B, D, F, H, J, L, M
        elif kind < 0.7:
            deadline = now + 5.0  # I, K
        elif kind < 0.95:
            deadline = now + 0.5 * 2 ** rng.randrange(4)  # A, E, G
        else:
            deadline = now + rng.uniform(0, 40)
        heap.push(deadline, step, N.J)
        reference.append((deadline, step))
        if step % 7 == 0:
            while (entry := heap.pop_due(now)) is not None:
                popped.append((entry[0], entry[1]))
    while (entry := heap.pop_due(float("inf"))) is not None:
        popped.append((entry[0], entry[1]))
    assert popped == sorted(reference) and len(heap) == 0
    assert sum(map(len, heap._lanes)) == 0 and heap._heap == []


def test_peek_and_drop_stale_see_every_lane() -> None:
    heap = TimerHeap()
    heap.push(32.0, "j", N.J)  # a lane
    heap.push(5.0, "k", N.K)  # another lane: it is earlier than the first one's tail
    heap.push(1.0, "e", N.E)  # the third lane, likewise
    heap.push(0.5, "a", N.A)  # the heap: no lane's tail is at or before it, none is free
    assert [len(lane) for lane in heap._lanes] == [1, 1, 1] and len(heap._heap) == 1
    heap.push(33.0, "f", N.F)  # after the 32 s lane's tail: appended there
    assert len(heap._lanes[0]) == 2
    assert heap.peek() == 0.5 and len(heap) == 5
    heap.drop_stale(lambda deadline, owner, name: owner == "j")
    assert heap.peek() == 32.0 and len(heap) == 2


def test_fake_clock_moves_only_forward() -> None:
    clock = FakeClock(10.0)
    assert clock.now() == 10.0
    assert clock.advance(0.5) == 10.5
    clock.set(12.0)
    assert clock.now() == 12.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(11.0)


def test_monotonic_clock_does_not_go_back() -> None:
    clock = MonotonicClock()
    first = clock.now()
    assert clock.now() >= first
