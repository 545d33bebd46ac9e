"""The relay's spread latch sweep: every session once a round, no tick walks more than a slice."""

from __future__ import annotations

import pytest

from pbx.media.relay_sweep import SweepRota


def test_few_sessions_are_swept_in_one_tick_a_second() -> None:
    rota: SweepRota[int] = SweepRota(1.0)
    assert rota.take(range(20)) == list(range(20))
    assert rota.delay() == 1.0
    assert rota.take(range(20)) == list(range(20))  # the next round


def test_600_sessions_are_cut_into_12_slices_of_50_a_round() -> None:
    rota: SweepRota[int] = SweepRota(1.0)
    sessions = list(range(600))
    slices = [rota.take(sessions) for _ in range(12)]
    assert [len(part) for part in slices] == [50] * 12
    assert sorted(n for part in slices for n in part) == sessions  # each exactly once
    assert rota.delay() == pytest.approx(1.0 / 12)
    assert rota.take(sessions) == list(range(50))  # round two starts over


def test_uneven_count_still_visits_everyone_once_per_round() -> None:
    rota: SweepRota[int] = SweepRota(2.0, per_tick=50)
    sessions = list(range(101))  # 3 slices of at most 34
    parts = [rota.take(sessions) for _ in range(3)]
    assert [len(part) for part in parts] == [34, 34, 33]
    assert sorted(n for part in parts for n in part) == sessions
    assert rota.delay() == pytest.approx(2.0 / 3)


def test_slices_grow_beyond_the_tick_cap() -> None:
    rota: SweepRota[int] = SweepRota(1.0, per_tick=10, max_slices=4)
    part = rota.take(range(100))
    assert len(part) == 25 and rota.delay() == 0.25


def test_session_opened_mid_round_waits_for_the_next_round() -> None:
    rota: SweepRota[str] = SweepRota(1.0, per_tick=2)
    sessions = ["a", "b", "c", "d"]
    assert rota.take(sessions) == ["a", "b"]
    sessions.append("e")
    assert rota.take(sessions) == ["c", "d"]  # the round's snapshot had four
    assert rota.take(sessions) == ["a", "b"]  # round two: five, in 3 slices of 2
    assert rota.delay() == pytest.approx(1.0 / 3)
    assert rota.take(sessions) == ["c", "d"]
    assert rota.take(sessions) == ["e"]


def test_reset_and_empty_rounds() -> None:
    rota: SweepRota[int] = SweepRota(1.0, per_tick=2)
    assert rota.take([]) == []
    assert rota.take([1, 2, 3]) == [1, 2]
    rota.reset()
    assert rota.delay() == 1.0
    assert rota.take([7]) == [7]


@pytest.mark.parametrize("kwargs", [{"interval": 0.0}, {"interval": 1.0, "per_tick": 0}])
def test_rejects_nonsense_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="interval must be > 0"):
        SweepRota(**kwargs)  # type: ignore[arg-type]


def test_relay_sweeps_600_calls_in_ticks_of_at_most_12_sessions() -> None:
    """The relay's own rota: a tick at 600 calls walks 12 sessions (50 ticks a second),
    not 50, so no sweep tick holds the loop for more than some 60 us of work."""
    from pbx.media.ports import PortAllocator
    from pbx.media.relay import Relay

    relay = Relay(PortAllocator(40000, 40099))
    rota = relay._rota
    slices = [rota.take(range(600)) for _ in range(50)]
    assert {len(part) for part in slices} == {12}
    assert rota.delay() == pytest.approx(1.0 / 50)
    relay.close()
