"""The relay's pool of closed legs (pbx.media.relay_pool) on real sockets on 127.0.0.1 (and ::1).

A closed session's port pairs stay bound and are handed to the next session: these
tests show that a recycled pair starts clean (no latch, zero counters, nothing queued),
that the previous call's late packets never reach the new call's phones, that the
pool is bounded and respects the address family and bind host, and that closing the
relay frees every pooled port. Same harness as test_relay.py (stdlib loop and uvloop),
under both socket readers.
"""

from __future__ import annotations

import select
import socket
from typing import Any

import pytest

from pbx.media.ports import PortAllocator
from pbx.media.relay import Leg, Relay, RelaySession
from pbx.media.rtp import RtpPacket
from tests.integration.test_relay import (
    FakeClock,
    Phone,
    ipv6_loopback,
    phone,
    quiet,
    rtp,
    run,
    until,
)

pytestmark = pytest.mark.integration
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop

LOW, HIGH = 47300, 47399
MODES = [
    pytest.param(
        "epoll",
        marks=pytest.mark.skipif(not hasattr(select, "epoll"), reason="select.epoll is Linux-only"),
    ),
    "transports",
]


def pooled_relay(sockets: str, pool: int = 64, clock: FakeClock | None = None) -> Relay:
    return Relay(
        PortAllocator(LOW, HIGH),
        bind_v4="127.0.0.1",
        bind_v6="::1",
        latch_timeout=5.0,
        sweep_interval=3600.0,
        clock=clock or FakeClock(),
        sockets=sockets,
        pool=pool,
    )


async def call(relay: Relay, label: str) -> tuple[RelaySession, Phone, Phone]:
    session = await relay.open_session(label)
    a, b = await phone(), await phone()
    session.set_remote(Leg.A, "127.0.0.1", a.port)
    session.set_remote(Leg.B, "127.0.0.1", b.port)
    return session, a, b


def rtp_from(ssrc: int, seq: int) -> bytes:
    return bytes(RtpPacket(0, seq, seq * 160, ssrc, b"\xd5" * 160))


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("sockets", MODES)
def test_recycled_pair_starts_clean_and_refuses_the_previous_call(run: Any, sockets: str) -> None:
    async def body() -> None:
        relay = pooled_relay(sockets)
        first, a1, b1 = await call(relay, "first")
        la, lb = first.local(Leg.A), first.local(Leg.B)
        a1.send(rtp(1), "127.0.0.1", la.rtp)  # SSRC 0x1234
        assert (await b1.recv())[0] == rtp(1)
        b1.send(rtp(2), "127.0.0.1", lb.rtp)
        assert (await a1.recv())[0] == rtp(2)
        first.close()
        assert (relay.open_transports, relay.pooled_transports) == (0, 4)
        assert (relay.ports.in_use, relay.ports.parked) == (0, 2)
        a1.send(rtp(3), "127.0.0.1", la.rtp)  # a straggler while the pair is parked

        second, a2, b2 = await call(relay, "second")
        assert (second.local(Leg.A), second.local(Leg.B)) == (la, lb)  # the same pairs
        assert (relay.open_transports, relay.pooled_transports, relay.ports.in_use) == (4, 0, 2)
        for leg in Leg:
            stats = second.stats(leg)
            assert (stats.packets_in, stats.rejected, stats.dropped) == (0, 0, 0)
            assert (stats.latched, stats.rtcp_latched) == (None, None)
        # the previous call's phones keep sending their streams: refused, nothing forwarded
        a1.send(rtp(4), "127.0.0.1", la.rtp)
        b1.send(rtp(5), "127.0.0.1", lb.rtp)
        await until(lambda: second.stats(Leg.A).rejected + second.stats(Leg.B).rejected == 2)
        for p in (a1, b1, a2, b2):
            await quiet(p)
        assert (second.stats(Leg.A).packets_in, second.stats(Leg.B).packets_in) == (0, 0)
        # the new call's phones latch and talk
        a2.send(rtp_from(0x5151, 1), "127.0.0.1", la.rtp)
        assert await b2.recv() == (rtp_from(0x5151, 1), ("127.0.0.1", lb.rtp))
        b2.send(rtp_from(0x6262, 1), "127.0.0.1", lb.rtp)
        assert await a2.recv() == (rtp_from(0x6262, 1), ("127.0.0.1", la.rtp))
        assert second.stats(Leg.A).latched == ("127.0.0.1", a2.port)
        # the first call's counters are its own, also after its ports were recycled
        old = first.stats(Leg.A)
        assert (old.packets_in, old.packets_out, old.rejected) == (1, 1, 0)

        await relay.aclose()
        assert (relay.open_transports, relay.pooled_transports) == (0, 0)
        assert (relay.ports.in_use, relay.ports.parked) == (0, 0)
        assert all(_bindable(port) for port in (la.rtp, la.rtcp, lb.rtp, lb.rtcp))
        for p in (a1, b1, a2, b2):
            p.close()

    run(body)


@pytest.mark.parametrize("sockets", MODES)
def test_same_phone_with_a_new_stream_latches_and_the_guard_expires(run: Any, sockets: str) -> None:
    """A phone that reuses its RTP port for its next call sends a new SSRC (RFC 3550 §8):
    it latches at once; the previous call's SSRC from that address latches only after
    latch_timeout."""

    async def body() -> None:
        clock = FakeClock()
        relay = pooled_relay(sockets, clock=clock)
        first, a, b = await call(relay, "first")
        la = first.local(Leg.A)
        a.send(rtp_from(0x1111, 1), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp_from(0x1111, 1)
        first.close()

        second = await relay.open_session("second")
        assert second.local(Leg.A) == la
        second.set_remote(Leg.A, "127.0.0.1", a.port)
        second.set_remote(Leg.B, "127.0.0.1", b.port)
        a.send(rtp_from(0x1111, 2), "127.0.0.1", la.rtp)  # the old stream: refused
        await until(lambda: second.stats(Leg.A).rejected == 1)
        await quiet(b)
        a.send(rtp_from(0x2222, 1), "127.0.0.1", la.rtp)  # its new call's stream
        assert (await b.recv())[0] == rtp_from(0x2222, 1)
        second.close()

        third = await relay.open_session("third")
        assert third.local(Leg.A) == la
        third.set_remote(Leg.B, "127.0.0.1", b.port)
        a.send(rtp_from(0x2222, 2), "127.0.0.1", la.rtp)
        await until(lambda: third.stats(Leg.A).rejected == 1)
        clock.now += 5.0  # latch_timeout after the second call ended
        a.send(rtp_from(0x2222, 3), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp_from(0x2222, 3)
        assert third.stats(Leg.A).latched == ("127.0.0.1", a.port)
        await relay.aclose()
        a.close()
        b.close()

    run(body)


@pytest.mark.parametrize("sockets", MODES)
def test_pool_is_bounded_and_a_leg_beyond_it_is_closed(run: Any, sockets: str) -> None:
    async def body() -> None:
        relay = pooled_relay(sockets, pool=3)
        sessions = [await relay.open_session(f"c{i}") for i in range(3)]
        ports = [s.local(leg) for s in sessions for leg in Leg]
        for session in sessions:
            await session.aclose()
        assert (relay.open_transports, relay.pooled_transports) == (0, 6)
        assert (relay.ports.in_use, relay.ports.parked) == (0, 3)
        if relay._reader is not None:
            assert relay._reader.watched == 6
        # the first three legs closed were parked, the other three are free
        assert [_bindable(p.rtp) for p in ports] == [False] * 3 + [True] * 3
        for _ in range(50):  # churn: the pool never grows past its size
            session = await relay.open_session("churn")
            assert session.local(Leg.A) in ports[:3] and session.local(Leg.B) in ports[:3]
            await session.aclose()
            assert relay.pooled_transports == 6
        await relay.aclose()
        assert (relay.pooled_transports, relay.ports.parked, relay.ports.in_use) == (0, 0, 0)
        assert all(_bindable(p.rtp) and _bindable(p.rtcp) for p in ports)

    run(body)


@pytest.mark.parametrize("sockets", MODES)
def test_pool_off_closes_every_leg(run: Any, sockets: str) -> None:
    async def body() -> None:
        relay = pooled_relay(sockets, pool=0)
        session = await relay.open_session("x")
        local = session.local(Leg.A)
        await session.aclose()
        assert (relay.pooled_transports, relay.ports.parked, relay.ports.in_use) == (0, 0, 0)
        assert _bindable(local.rtp)
        await relay.aclose()

    run(body)


@pytest.mark.parametrize("sockets", MODES)
def test_pooled_legs_keep_their_bind_host(run: Any, sockets: str) -> None:
    """A leg parked on one bind address is not handed to a request for another."""

    async def body() -> None:
        relay = pooled_relay(sockets)
        first = await relay.open_session("first")
        parked = {first.local(Leg.A), first.local(Leg.B)}
        await first.aclose()
        relay.bind[socket.AF_INET] = "127.0.0.2"
        other = await relay.open_session("other")
        assert {other.local(leg).host for leg in Leg} == {"127.0.0.2"}
        assert not parked & {other.local(Leg.A), other.local(Leg.B)}
        assert relay.pooled_transports == 4
        await other.aclose()
        relay.bind[socket.AF_INET] = "127.0.0.1"
        again = await relay.open_session("again")
        assert {again.local(Leg.A), again.local(Leg.B)} == parked
        await relay.aclose()
        assert (relay.pooled_transports, relay.ports.parked, relay.ports.in_use) == (0, 0, 0)

    run(body)


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
@pytest.mark.parametrize("sockets", MODES)
def test_pooled_legs_keep_their_family(run: Any, sockets: str) -> None:
    async def body() -> None:
        relay = pooled_relay(sockets)
        first = await relay.open_session("first", socket.AF_INET, socket.AF_INET6)
        v4, v6 = first.local(Leg.A), first.local(Leg.B)
        await first.aclose()
        swapped = await relay.open_session("swapped", socket.AF_INET6, socket.AF_INET)
        assert (swapped.local(Leg.A), swapped.local(Leg.B)) == (v6, v4)
        b = await phone()
        swapped.set_remote(Leg.B, "127.0.0.1", b.port)
        with pytest.raises(ValueError, match="IPv6-only"):
            swapped.set_remote(Leg.A, "127.0.0.1", 4000)
        a6 = await phone("::1")
        swapped.set_remote(Leg.A, "::1", a6.port)
        a6.send(rtp(1), "::1", v6.rtp)
        assert await b.recv() == (rtp(1), ("127.0.0.1", v4.rtp))
        await relay.aclose()
        assert (relay.pooled_transports, relay.ports.parked, relay.ports.in_use) == (0, 0, 0)
        a6.close()
        b.close()

    run(body)


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_a_full_range_takes_back_pairs_parked_for_the_other_family(run: Any) -> None:
    async def body() -> None:
        relay = Relay(
            PortAllocator(LOW, LOW + 3), bind_v4="127.0.0.1", bind_v6="::1", sockets="epoll"
        )
        first = await relay.open_session("v6", socket.AF_INET6, socket.AF_INET6)
        await first.aclose()
        assert relay.ports.parked == 2
        second = await relay.open_session("v4")  # both pairs are parked, as IPv6
        assert {second.local(leg).host for leg in Leg} == {"127.0.0.1"}
        assert (relay.ports.in_use, relay.ports.parked) == (2, 0)
        await relay.aclose()

    run(body)


@pytest.mark.parametrize("sockets", MODES)
def test_many_calls_through_a_small_pool_leave_nothing_behind(run: Any, sockets: str) -> None:
    async def body() -> None:
        relay = pooled_relay(sockets, pool=8)
        for round_ in range(10):
            calls = [await call(relay, f"r{round_}c{i}") for i in range(6)]
            for session, a, b in calls:
                a.send(rtp(round_), "127.0.0.1", session.local(Leg.A).rtp)
                assert (await b.recv())[0] == rtp(round_)
            for session, a, b in calls:
                session.close()
                a.close()
                b.close()
            await until(lambda: relay.open_transports == 0)
            assert relay.pooled_transports == 16
            assert (relay.ports.in_use, relay.ports.parked) == (0, 8)
        await relay.aclose()
        assert (relay.open_transports, relay.pooled_transports) == (0, 0)
        assert (relay.ports.in_use, relay.ports.parked) == (0, 0)

    run(body)
