"""The relay's own sweep timer visits sessions in slices (relay_sweep.SweepRota), on real sockets.

Same harness as test_relay.py (stdlib loop and uvloop, a fake relay clock). The
timer ticks are called by hand so the slices are checked tick by tick.
"""

from __future__ import annotations

import pytest

from pbx.media.ports import PortAllocator
from pbx.media.relay import Leg, Relay, RelaySession
from tests.integration.test_relay import HIGH, LOW, FakeClock, phone, rtp, run, until

pytestmark = pytest.mark.integration
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop


def sweeping_relay(clock: FakeClock, sweep_interval: float) -> Relay:
    """A relay whose sweep visits one session per tick and unlatches after 5 s of silence."""
    return Relay(
        PortAllocator(LOW, HIGH),
        bind_v4="127.0.0.1",
        latch_timeout=5.0,
        sweep_interval=sweep_interval,
        sweep_slice=1,
        clock=clock,
    )


async def latched_sessions(relay: Relay, count: int) -> list[RelaySession]:
    """`count` sessions whose A leg has latched onto its phone and relayed one packet."""
    sessions = [await relay.open_session(f"c{i}") for i in range(count)]
    b = await phone()
    for session in sessions:
        a = await phone()
        session.set_remote(Leg.A, "127.0.0.1", a.port)
        session.set_remote(Leg.B, "127.0.0.1", b.port)
        a.send(rtp(1), "127.0.0.1", session.local(Leg.A).rtp)
        assert (await b.recv())[0] == rtp(1)
    return sessions


def stop_timer(relay: Relay) -> None:
    """Cancel the sweep timer the last tick armed, so the test calls the next tick itself."""
    relay._timer.cancel()  # type: ignore[union-attr]
    relay._timer = None


def test_each_tick_sweeps_one_slice_and_a_round_covers_every_session(run: object) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = sweeping_relay(clock, sweep_interval=3.0)
        sessions = await latched_sessions(relay, 3)
        assert relay._timer is not None
        stop_timer(relay)  # the test drives the ticks
        heard: list[int] = []
        for _tick in range(3):  # round one notes each session's packet, one per tick
            relay._on_timer()
            heard.append(sum(s._legs[Leg.A].rtp.seen for s in sessions))
            assert relay._rota.delay() == 1.0  # 3 slices of one session in 3 s
            stop_timer(relay)
        assert heard == [1, 2, 3]
        clock.now = 1006.0  # every A leg has been silent for 6 s > latch_timeout
        stale: list[int] = []
        for _tick in range(3):  # round two marks them stale, one per tick
            relay._on_timer()
            stale.append(sum(s._legs[Leg.A].rtp.stale for s in sessions))
            stop_timer(relay)
        assert stale == [1, 2, 3]
        await relay.aclose()
        assert relay._timer is None

    run(body)  # type: ignore[operator]


def test_the_timer_itself_reaches_every_session(run: object) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = sweeping_relay(clock, sweep_interval=0.03)
        sessions = await latched_sessions(relay, 3)
        clock.now = 1002.0
        await until(lambda: all(s.stats(Leg.A).last_packet_at == 1002.0 for s in sessions))
        clock.now = 1008.0
        await until(lambda: all(s._legs[Leg.A].rtp.stale for s in sessions))
        await relay.aclose()
        assert relay._timer is None

    run(body)  # type: ignore[operator]
