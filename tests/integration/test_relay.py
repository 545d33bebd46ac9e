"""The RTP relay on real UDP sockets on 127.0.0.1 (and ::1): two fake phones through a session.

Every test runs under the stdlib event loop and under uvloop (when installed),
because the server uses uvloop where it exists. Time-dependent behaviour
(latch expiry, last packet time) runs on a fake clock: the relay's sweep
timer is set far in the future and the test calls `relay.sweep(now)` itself.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pbx.media.ports import PortAllocator, PortsExhausted
from pbx.media.relay import Direction, Leg, Relay, RelayClosed, RelaySession
from pbx.media.rtp import RtcpType, RtpPacket, build_rtcp

pytestmark = pytest.mark.integration

LOW, HIGH = 47000, 47199
WAIT = 2.0  # bound on any single wait for a datagram


def _loop_factories() -> list[Any]:
    factories = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        return factories
    return [*factories, pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Awaitable[None]]], None]:
    def runner(test: Callable[[], Awaitable[None]]) -> None:
        with asyncio.Runner(loop_factory=request.param) as r:
            r.run(asyncio.wait_for(test(), 20))

    return runner


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Phone(asyncio.DatagramProtocol):
    """A UDP endpoint that queues what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[Any, ...]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, host: str, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (host, port))

    async def recv(self) -> tuple[bytes, tuple[Any, ...]]:
        return await asyncio.wait_for(self.queue.get(), WAIT)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


async def phone(host: str = "127.0.0.1") -> Phone:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(Phone, local_addr=(host, 0))
    return proto


def rtp(seq: int, payload_type: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return bytes(RtpPacket(payload_type, seq, seq * 160, 0x1234, payload))


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until the relay has processed what the test sent."""
    for _ in range(int(WAIT / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached in time")


async def quiet(p: Phone) -> None:
    """Give a wrongly forwarded datagram time to arrive, then check none did."""
    await asyncio.sleep(0.05)
    assert p.queue.empty()


def make_relay(
    clock: FakeClock | None = None, low: int = LOW, high: int = HIGH, pool: int = 64
) -> Relay:
    return Relay(
        PortAllocator(low, high),
        bind_v4="127.0.0.1",
        bind_v6="::1",
        latch_timeout=5.0,
        sweep_interval=3600.0,
        clock=clock or FakeClock(),
        pool=pool,
    )


async def call(relay: Relay) -> tuple[RelaySession, Phone, Phone]:
    """A session with phone A and phone B whose SDP addresses are exact."""
    session = await relay.open_session("call-1")
    a, b = await phone(), await phone()
    session.set_remote(Leg.A, "127.0.0.1", a.port)
    session.set_remote(Leg.B, "127.0.0.1", b.port)
    return session, a, b


def test_rtp_both_ways_unchanged_and_symmetric(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        assert (la.host, la.rtp % 2, la.rtcp) == ("127.0.0.1", 0, la.rtp + 1)
        assert LOW <= la.rtp < lb.rtp <= HIGH
        event = rtp(2, payload_type=101, payload=bytes.fromhex("0b0a00a0"))  # RFC 4733 "#"
        a.send(rtp(1), "127.0.0.1", la.rtp)
        a.send(event, "127.0.0.1", la.rtp)
        assert await b.recv() == (rtp(1), ("127.0.0.1", lb.rtp))
        assert await b.recv() == (event, ("127.0.0.1", lb.rtp))
        b.send(rtp(7), "127.0.0.1", lb.rtp)
        assert await a.recv() == (rtp(7), ("127.0.0.1", la.rtp))
        sa, sb = session.stats(Leg.A), session.stats(Leg.B)
        assert (sa.packets_in, sa.bytes_in, sa.packets_out, sa.bytes_out) == (2, 188, 1, 172)
        assert (sb.packets_in, sb.bytes_in, sb.packets_out, sb.bytes_out) == (1, 172, 2, 188)
        assert sa.latched == ("127.0.0.1", a.port) and sb.latched == ("127.0.0.1", b.port)
        assert (sa.dropped, sa.rejected, sa.last_packet_at) == (0, 0, 1000.0)
        assert sa.direction is Direction.SENDRECV
        # after latching, both RTP ports take the hot path (source armed, target precomputed)
        port_a, port_b = session._legs[Leg.A].rtp, session._legs[Leg.B].rtp
        assert (port_a.source, port_a.target) == (("127.0.0.1", a.port), ("127.0.0.1", b.port))
        assert (port_b.source, port_b.target) == (("127.0.0.1", b.port), ("127.0.0.1", a.port))
        session.set_tap(lambda leg, data, now: None)
        # a tapped call stays on the hot path, through the one extra call that taps
        assert (port_a.source, port_b.source) == (("127.0.0.1", a.port), ("127.0.0.1", b.port))
        assert (port_a.plain, port_b.plain) == (False, False)
        session.set_tap(None)
        assert port_a.source == ("127.0.0.1", a.port) and port_a.plain
        await relay.aclose()

    run(body)


def test_latches_to_real_source_port_not_the_sdp_one(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session = await relay.open_session("nat")
        sdp_a, real_a, b = await phone(), await phone(), await phone()
        session.set_remote(Leg.A, "127.0.0.1", sdp_a.port)  # what A's SDP claims
        session.set_remote(Leg.B, "127.0.0.1", b.port)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        b.send(rtp(1), "127.0.0.1", lb.rtp)
        assert (await sdp_a.recv())[0] == rtp(1)  # before latching: the SDP address
        real_a.send(rtp(50), "127.0.0.1", la.rtp)  # A is behind NAT: another port
        assert (await b.recv())[0] == rtp(50)
        b.send(rtp(2), "127.0.0.1", lb.rtp)
        assert await real_a.recv() == (rtp(2), ("127.0.0.1", la.rtp))
        assert session.stats(Leg.A).latched == ("127.0.0.1", real_a.port)
        await quiet(sdp_a)
        await relay.aclose()

    run(body)


def test_foreign_source_rejected_until_latch_goes_stale(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await call(relay)
        la = session.local(Leg.A)
        intruder = await phone()
        a.send(rtp(1), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(1)
        intruder.send(rtp(99), "127.0.0.1", la.rtp)
        await until(lambda: session.stats(Leg.A).rejected == 1)
        await quiet(b)
        relay.sweep(1001.0)  # A's packet was seen: last_packet_at moves to this sweep
        assert session.stats(Leg.A).last_packet_at == 1001.0
        relay.sweep(1005.9)  # 4.9 s of silence < latch_timeout 5 s: still latched
        intruder.send(rtp(98), "127.0.0.1", la.rtp)
        await until(lambda: session.stats(Leg.A).rejected == 2)
        relay.sweep(1006.0)  # 5 s of silence: the latch goes stale
        clock.now = 1006.5
        intruder.send(rtp(97), "127.0.0.1", la.rtp)  # the phone moved: re-latch
        assert (await b.recv())[0] == rtp(97)
        stats = session.stats(Leg.A)
        assert stats.latched == ("127.0.0.1", intruder.port)
        assert (stats.packets_in, stats.rejected, stats.last_packet_at) == (2, 2, 1006.5)
        b.send(rtp(3), "127.0.0.1", session.local(Leg.B).rtp)
        assert (await intruder.recv())[0] == rtp(3)
        await quiet(a)
        await relay.aclose()

    run(body)


def test_reinvite_with_new_address_moves_the_leg(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        a.send(rtp(1), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(1)
        moved = await phone()
        session.set_remote(Leg.A, "127.0.0.1", moved.port)  # re-INVITE: A is elsewhere now
        assert session.stats(Leg.A).latched is None
        b.send(rtp(2), "127.0.0.1", lb.rtp)
        assert (await moved.recv())[0] == rtp(2)
        moved.send(rtp(3), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(3)
        assert session.stats(Leg.A).latched == ("127.0.0.1", moved.port)
        await quiet(a)
        session.set_remote(Leg.A, "0.0.0.0", moved.port)  # RFC 2543 hold: no destination
        b.send(rtp(4), "127.0.0.1", lb.rtp)
        await until(lambda: session.stats(Leg.B).dropped == 1)
        await quiet(moved)
        with pytest.raises(ValueError, match="leg a is IPv4-only, got ::1"):
            session.set_remote(Leg.A, "::1", 5000)
        await relay.aclose()

    run(body)


def test_rtcp_relayed_both_ways_on_the_odd_ports(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session = await relay.open_session("rtcp")
        a_rtp, a_rtcp, b_rtp, b_rtcp = [await phone() for _ in range(4)]
        session.set_remote(Leg.A, "127.0.0.1", a_rtp.port, a_rtcp.port)  # RFC 3605 a=rtcp
        session.set_remote(Leg.B, "127.0.0.1", b_rtp.port, b_rtcp.port)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        rr = build_rtcp(RtcpType.RR, 0, struct.pack("!I", 0x1234))
        sr = build_rtcp(RtcpType.SR, 0, bytes(24))
        a_rtcp.send(rr, "127.0.0.1", la.rtcp)
        assert await b_rtcp.recv() == (rr, ("127.0.0.1", lb.rtcp))
        b_rtcp.send(sr, "127.0.0.1", lb.rtcp)
        assert await a_rtcp.recv() == (sr, ("127.0.0.1", la.rtcp))
        sa = session.stats(Leg.A)
        assert (sa.rtcp_packets_in, sa.rtcp_packets_out, sa.packets_in) == (1, 1, 0)
        assert sa.rtcp_latched == ("127.0.0.1", a_rtcp.port)
        await quiet(a_rtp)
        await quiet(b_rtp)
        await relay.aclose()

    run(body)


def test_direction_inactive_and_sendonly_drop_what_they_forbid(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        session.set_direction(Leg.A, Direction.INACTIVE)
        a.send(rtp(1), "127.0.0.1", la.rtp)
        b.send(rtp(2), "127.0.0.1", lb.rtp)
        await until(lambda: session.stats(Leg.A).dropped + session.stats(Leg.B).dropped == 2)
        await quiet(a)
        await quiet(b)
        session.set_direction(Leg.A, Direction.SENDONLY)  # A holds: A sends, B's audio dropped
        a.send(rtp(3), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(3)
        b.send(rtp(4), "127.0.0.1", lb.rtp)
        await until(lambda: session.stats(Leg.B).dropped == 2)
        await quiet(a)
        session.set_direction(Leg.A, Direction.SENDRECV)
        b.send(rtp(5), "127.0.0.1", lb.rtp)
        assert (await a.recv())[0] == rtp(5)
        sa, sb = session.stats(Leg.A), session.stats(Leg.B)
        assert (sa.packets_in, sa.dropped, sa.packets_out) == (2, 1, 1)
        assert (sb.packets_in, sb.dropped, sb.packets_out) == (3, 2, 1)
        assert (sa.bytes_in, sa.bytes_out, sb.bytes_in, sb.bytes_out) == (344, 172, 516, 172)
        await relay.aclose()

    run(body)


def test_non_rtp_is_rejected_and_not_latched(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay)
        la = session.local(Leg.A)
        stray = await phone()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.sendto(b"", ("127.0.0.1", la.rtp))  # asyncio never sends empty datagrams
        stray.send(b"\x00\x01STUN-ish", "127.0.0.1", la.rtp)
        stray.send(b"\x40" + rtp(1)[1:], "127.0.0.1", la.rtp)  # version 1
        stray.send(rtp(1)[:11], "127.0.0.1", la.rtp)  # version 2 but no whole header
        await until(lambda: session.stats(Leg.A).rejected == 4)
        assert session.stats(Leg.A).latched is None
        a.send(rtp(1), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(1)
        a.send(b"\xc0" + rtp(2)[1:], "127.0.0.1", la.rtp)  # version 3 from the latched phone
        await until(lambda: session.stats(Leg.A).rejected == 5)
        await quiet(b)
        await relay.aclose()

    run(body)


def test_tap_sees_rtp_of_both_legs_and_a_failing_tap_is_removed(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        seen: list[tuple[Leg, bytes, float]] = []
        session.set_tap(lambda leg, data, now: seen.append((leg, data, now)))
        a.send(rtp(1), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(1)
        clock.now = 1000.02
        b.send(rtp(2), "127.0.0.1", lb.rtp)
        assert (await a.recv())[0] == rtp(2)
        rr = build_rtcp(RtcpType.RR, 0, struct.pack("!I", 1))
        a.send(rr, "127.0.0.1", la.rtcp)  # RTCP is not tapped
        await until(lambda: session.stats(Leg.A).rtcp_packets_in == 1)
        assert seen == [(Leg.A, rtp(1), 1000.0), (Leg.B, rtp(2), 1000.02)]

        def broken(leg: Leg, data: bytes, now: float) -> None:
            raise RuntimeError("disk full")

        session.set_tap(broken)
        a.send(rtp(3), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(3)  # media goes on without the recorder
        a.send(rtp(4), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == rtp(4)
        assert session._tap is None
        await relay.aclose()

    run(body)


def test_close_frees_ports_and_transports(run: Any) -> None:
    """Without a pool (pool=0) a closed session's ports are free at once."""

    async def body() -> None:
        relay = make_relay(pool=0)
        session, a, b = await call(relay)
        second = await relay.open_session("call-2")
        ports = [session.local(Leg.A), session.local(Leg.B), second.local(Leg.A)]
        assert (relay.open_sessions, relay.open_transports, relay.ports.in_use) == (2, 8, 4)
        await session.aclose()
        assert session.closed
        assert (relay.open_sessions, relay.open_transports, relay.ports.in_use) == (1, 4, 2)
        for local in ports[:2]:
            for number in (local.rtp, local.rtcp):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", number))  # free again
        with pytest.raises(RelayClosed, match="relay session call-1 is closed"):
            session.set_remote(Leg.A, "127.0.0.1", 4000)
        assert session.stats(Leg.A).packets_in == 0  # still readable
        await relay.aclose()
        assert (relay.open_sessions, relay.open_transports, relay.ports.in_use) == (0, 0, 0)
        with pytest.raises(RelayClosed, match="the relay is closed"):
            await relay.open_session("late")
        a.close()
        b.close()

    run(body)


def test_exhausted_range_raises_and_leaks_nothing(run: Any) -> None:
    async def body() -> None:
        relay = make_relay(low=47200, high=47205)  # three pairs: one call and a half
        first = await relay.open_session("one")
        with pytest.raises(PortsExhausted, match="47200-47205"):
            await relay.open_session("two")
        await until(lambda: relay.open_transports == 4)
        assert (relay.open_sessions, relay.ports.in_use) == (1, 2)
        await first.aclose()
        assert (relay.open_transports, relay.ports.in_use) == (0, 0)
        # the failed session's leg A and both of the first call's legs are parked
        assert (relay.pooled_transports, relay.ports.parked) == (6, 3)
        await relay.aclose()
        assert (relay.pooled_transports, relay.ports.parked, relay.ports.in_use) == (0, 0, 0)

    run(body)


def test_port_busy_outside_the_relay_is_skipped(run: Any) -> None:
    async def body() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            squatter.bind(("127.0.0.1", 47211))  # the RTCP port of the first pair
            relay = make_relay(low=47210, high=47219)
            session = await relay.open_session("busy")
            assert (session.local(Leg.A).rtp, session.local(Leg.B).rtp) == (47212, 47214)
            assert relay.ports.in_use == 2
            await relay.aclose()

    run(body)


def ipv6_loopback() -> bool:
    """Whether this host can bind ::1 (containers often run without IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_ipv6_leg_and_mixed_families(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session = await relay.open_session("v6", socket.AF_INET6, socket.AF_INET)
        a, b = await phone("::1"), await phone()
        session.set_remote(Leg.A, "::1", a.port)
        session.set_remote(Leg.B, "127.0.0.1", b.port)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        assert la.host == "::1"
        a.send(rtp(1), "::1", la.rtp)
        assert await b.recv() == (rtp(1), ("127.0.0.1", lb.rtp))
        b.send(rtp(2), "127.0.0.1", lb.rtp)
        data, source = await a.recv()
        assert (data, source[:2]) == (rtp(2), ("::1", la.rtp))
        assert session.stats(Leg.A).latched[:2] == ("::1", a.port)  # type: ignore[index]
        await relay.aclose()

    run(body)


def test_sweep_timer_runs_on_the_loop_and_stops_with_the_last_session(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = Relay(
            PortAllocator(LOW, HIGH),
            bind_v4="127.0.0.1",
            latch_timeout=5.0,
            sweep_interval=0.01,
            clock=clock,
        )
        session, a, b = await call(relay)
        a.send(rtp(1), "127.0.0.1", session.local(Leg.A).rtp)
        assert (await b.recv())[0] == rtp(1)
        clock.now = 1003.0
        await until(lambda: session.stats(Leg.A).last_packet_at == 1003.0)
        clock.now = 1008.0  # 5 s without packets: the sweep on the loop marks the latch stale
        other = await phone()
        await until(lambda: session._legs[Leg.A].rtp.stale)
        other.send(rtp(2), "127.0.0.1", session.local(Leg.A).rtp)
        assert (await b.recv())[0] == rtp(2)
        await session.aclose()
        assert relay._timer is None
        await relay.aclose()

    run(body)


def test_many_calls_open_and_close_without_leaks(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        for _round in range(3):
            sessions = [await relay.open_session(f"c{i}") for i in range(25)]
            ports = {s.local(leg).rtp for s in sessions for leg in Leg}
            assert len(ports) == 50 and all(p % 2 == 0 and LOW <= p < HIGH for p in ports)
            assert (relay.open_sessions, relay.open_transports) == (25, 100)
            for session in sessions[::2]:
                session.close()  # synchronous close: ports come back once the loop ran
            await until(lambda: relay.open_transports == 48)
            assert (relay.open_sessions, relay.ports.in_use) == (12, 24)
            for session in sessions[1::2]:
                await session.aclose()
            assert (relay.open_sessions, relay.open_transports, relay.ports.in_use) == (0, 0, 0)
        await relay.aclose()

    run(body)


def test_rtcp_follows_when_rtp_relatches_to_a_new_host(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay)
        la = session.local(Leg.A)
        a_rtcp, b_rtcp = await phone(), await phone()
        session.set_remote(Leg.B, "127.0.0.1", b.port, b_rtcp.port)
        rr = build_rtcp(RtcpType.RR, 0, struct.pack("!I", 7))
        a.send(rtp(1), "127.0.0.1", la.rtp)
        a_rtcp.send(rr, "127.0.0.1", la.rtcp)
        assert (await b.recv())[0] == rtp(1)
        assert (await b_rtcp.recv())[0] == rr
        relay.sweep(1000.5)
        a_rtcp.send(rr, "127.0.0.1", la.rtcp)  # RTCP keeps its latch fresh ...
        assert (await b_rtcp.recv())[0] == rr
        relay.sweep(1006.0)  # ... while RTP has been silent for 5.5 s and goes stale
        assert session._legs[Leg.A].rtcp.stale is False
        moved_rtp, moved_rtcp = await phone("127.0.0.2"), await phone("127.0.0.2")
        moved_rtp.send(rtp(2), "127.0.0.1", la.rtp)  # the phone got a new address
        assert (await b.recv())[0] == rtp(2)
        a.send(rtp(3), "127.0.0.1", la.rtp)  # the old address lost its latch
        await until(lambda: session.stats(Leg.A).rejected == 1)
        moved_rtcp.send(rr, "127.0.0.1", la.rtcp)  # RTP moved host, so RTCP may follow
        assert (await b_rtcp.recv())[0] == rr
        stats = session.stats(Leg.A)
        assert stats.latched == ("127.0.0.2", moved_rtp.port)
        assert stats.rtcp_latched == ("127.0.0.2", moved_rtcp.port)
        await relay.aclose()

    run(body)
