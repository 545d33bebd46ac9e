"""Relay features on real UDP sockets: transcoding, the RTCP tap, hot-path taps, call quality.

Same harness as test_relay.py (stdlib loop and uvloop, a fake relay clock, the
sweep driven by the test).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from pbx.media.g711 import A_TO_MU, MU_TO_A
from pbx.media.relay import Leg, Relay, RelaySession
from pbx.media.rtcp import ReceiverReport, ReportBlock, SenderInfo, SenderReport
from pbx.media.rtp import RtpPacket
from pbx.media.transcode import transcoders_for_call
from tests.integration.test_relay import FakeClock, Phone, make_relay, phone, quiet, run, until

pytestmark = pytest.mark.integration
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop

# every octet value once, plus mu-law zero (0xFF) and the most negative (0x00) at known places
PAYLOAD = bytes(range(256))[:160]


class _Codec:
    def __init__(self, name: str, payload_type: int) -> None:
        self.name = name
        self.payload_type = payload_type


async def call(relay: Relay, quality: bool = False) -> tuple[RelaySession, Phone, Phone]:
    """A session whose phones take RTP and RTCP on one socket each (RFC 3605 a=rtcp)."""
    session = await relay.open_session("call-1", quality=quality)
    a, b = await phone(), await phone()
    session.set_remote(Leg.A, "127.0.0.1", a.port, a.port)
    session.set_remote(Leg.B, "127.0.0.1", b.port, b.port)
    return session, a, b


def packet(seq: int, pt: int = 0, payload: bytes = PAYLOAD, marker: bool = False) -> bytes:
    return bytes(RtpPacket(pt, seq, seq * 160, 0x1234, payload, marker=marker))


def test_pcmu_leg_to_pcma_leg_is_transcoded_bit_exact_both_ways(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        a_to_b, b_to_a = transcoders_for_call(
            _Codec("PCMU", 0), _Codec("PCMA", 8), a_events=101, b_events=96
        )
        session.set_transcoders(a_to_b, b_to_a)
        for seq in (1, 2):  # the first datagram latches (slow path), the second is hot
            a.send(packet(seq, marker=seq == 1), "127.0.0.1", la.rtp)
            got = (await b.recv())[0]
            assert got[0] == 0x80 and got[1] == (0x88 if seq == 1 else 0x08)  # PT 0 -> 8
            assert got[2:12] == packet(seq)[2:12]  # seq, timestamp, SSRC untouched
            assert got[12:] == PAYLOAD.translate(MU_TO_A)
        assert session._legs[Leg.A].rtp.source is not None  # the hot path did the second
        zero = packet(3, payload=b"\xff\x00")
        a.send(zero, "127.0.0.1", la.rtp)
        assert (await b.recv())[0][12:] == b"\xd5\x2a"  # G.711 Table 3: +0 and the extreme
        event = packet(4, pt=101, payload=bytes.fromhex("0b0a00a0"))
        a.send(event, "127.0.0.1", la.rtp)
        got = (await b.recv())[0]
        assert (got[1], got[12:]) == (96, event[12:])  # telephone-event renumbered, untouched
        b.send(packet(9, pt=8), "127.0.0.1", lb.rtp)
        got = (await a.recv())[0]
        assert (got[1], got[12:]) == (0, PAYLOAD.translate(A_TO_MU))
        rr = bytes(ReceiverReport(0x99, (ReportBlock(0x1234),)))
        a.send(rr, "127.0.0.1", la.rtcp)  # RTCP is never rewritten
        assert (await b.recv())[0] == rr
        assert (a_to_b.packets, a_to_b.passed) == (3, 1)  # type: ignore[union-attr]
        session.set_transcoders(None, None)
        a.send(packet(5), "127.0.0.1", la.rtp)
        assert (await b.recv())[0] == packet(5)
        assert session._legs[Leg.A].rtp.plain
        await relay.aclose()

    run(body)


def test_rtcp_tap_sees_both_legs_and_rtcp_is_still_forwarded(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        seen: list[tuple[Leg, bytes, float]] = []
        session.set_rtcp_tap(lambda leg, data, now: seen.append((leg, data, now)))
        rr_a = bytes(ReceiverReport(1, (ReportBlock(2),)))
        rr_b = bytes(ReceiverReport(2, (ReportBlock(1),)))
        a.send(rr_a, "127.0.0.1", la.rtcp)
        assert (await b.recv())[0] == rr_a
        clock.now = 1005.0
        a.send(rr_a, "127.0.0.1", la.rtcp)  # latched now: still tapped
        assert (await b.recv())[0] == rr_a
        b.send(rr_b, "127.0.0.1", lb.rtcp)
        assert (await a.recv())[0] == rr_b
        a.send(packet(1), "127.0.0.1", la.rtp)  # RTP does not reach the RTCP tap
        assert (await b.recv())[0] == packet(1)
        assert seen == [(Leg.A, rr_a, 1000.0), (Leg.A, rr_a, 1005.0), (Leg.B, rr_b, 1005.0)]

        def broken(leg: Leg, data: bytes, now: float) -> None:
            raise RuntimeError("bug")

        session.set_rtcp_tap(broken)
        a.send(rr_a, "127.0.0.1", la.rtcp)
        assert (await b.recv())[0] == rr_a  # forwarded anyway; the tap is removed
        assert session._rtcp_tap is None
        assert session.stats(Leg.A).rtcp_packets_in == 3
        await relay.aclose()

    run(body)


def test_tap_runs_on_the_hot_path_with_the_clock_of_each_packet(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await call(relay)
        la = session.local(Leg.A)
        seen: list[tuple[Leg, int, float]] = []
        a.send(packet(1), "127.0.0.1", la.rtp)  # latch first: the tap below is hot-path only
        await b.recv()
        port = session._legs[Leg.A].rtp
        session.set_tap(lambda leg, data, now: seen.append((leg, data[3], now)))
        assert port.source is not None and not port.plain
        slow = session._slow_path
        session._slow_path = lambda *args: pytest.fail("slow path taken")  # type: ignore[method-assign]
        for seq in (2, 3, 4):
            clock.now = 1000.0 + seq / 50
            a.send(packet(seq), "127.0.0.1", la.rtp)
            assert (await b.recv())[0] == packet(seq)
        session._slow_path = slow  # type: ignore[method-assign]
        assert seen == [(Leg.A, 2, 1000.04), (Leg.A, 3, 1000.06), (Leg.A, 4, 1000.08)]
        await relay.aclose()

    run(body)


def test_call_quality_counts_loss_jitter_and_rtt_per_leg(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await call(relay, quality=True)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        recorded: list[int] = []
        session.set_tap(lambda leg, data, now: recorded.append(data[3]))  # behind quality
        dropped = {10, 20, 30, 40, 45}
        for seq in range(1, 51):
            clock.now = 1000.0 + seq * 0.02
            if seq not in dropped:  # lost on the way from phone A
                a.send(packet(seq), "127.0.0.1", la.rtp)
                assert (await b.recv())[0] == packet(seq)
            if seq <= 20:
                b.send(packet(seq, pt=8), "127.0.0.1", lb.rtp)
                await a.recv()
        assert len(recorded) == 45 + 20
        relay.sweep(clock.now)  # the once-a-second drain
        assert session.quality is not None and not session.quality._queue
        # B's phone sends an SR; A's phone answers 0.5 s later with LSR = that SR
        info = SenderInfo(0x11223344, 0x55660000, 0, 20, 3200)
        clock.now = 1002.0
        b.send(bytes(SenderReport(0xB, info)), "127.0.0.1", lb.rtcp)
        await a.recv()
        clock.now = 1002.58  # 80 ms of network each way around the 0.5 s DLSR... measured
        block = ReportBlock(0xB, fraction_lost=25, lsr=info.middle, dlsr=32768, jitter=80)
        a.send(bytes(ReceiverReport(0xA, (block,))), "127.0.0.1", la.rtcp)
        await b.recv()
        summary = session.quality_summary()
        assert summary is not None
        qa, qb = summary[Leg.A], summary[Leg.B]
        assert (qa["packets"], qa["lost"], qa["loss_pct"]) == (45, 5, 10.0)
        assert (qb["packets"], qb["lost"], qb["loss_pct"]) == (20, 0, 0.0)
        assert qa["jitter_ms"] == 0.0 and qb["jitter_ms"] == 0.0  # exactly 20 ms apart
        assert qa["rtt_ms"] == 80.0 and qb["rtt_ms"] is None
        assert qa["reported_loss_pct"] == 9.77 and qa["reported_jitter_ms"] == 10.0
        assert isinstance(qa["mos"], float) and isinstance(qb["mos"], float)
        assert qa["mos"] < qb["mos"] <= 4.5  # 10 % loss costs A's leg
        await relay.aclose()
        assert session.quality_summary() == summary  # still readable after close

    run(body)


def test_quality_off_by_default_and_jitter_measured_from_arrivals(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await call(relay)
        assert session.quality_summary() is None
        assert session._legs[Leg.A].rtp.plain
        await relay.aclose()
        relay = make_relay(clock)
        session, a, b = await call(relay, quality=True)
        la = session.local(Leg.A)
        for seq in range(1, 41):  # every other packet 10 ms late
            clock.now = 1000.0 + seq * 0.02 + (0.01 if seq % 2 else 0.0)
            a.send(packet(seq), "127.0.0.1", la.rtp)
            await b.recv()
        summary = session.quality_summary()
        assert summary is not None
        jitter = summary[Leg.A]["jitter_ms"]
        assert isinstance(jitter, float) and 8.0 < jitter < 10.0  # RFC 3550 A.8 -> ~10 ms
        await quiet(b)
        await relay.aclose()

    run(body)


def test_rtcp_of_a_quality_session_is_parsed_without_breaking_forwarding(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await call(relay, quality=True)
        la = session.local(Leg.A)
        bogus = bytes([0x80, 201, 0, 7]) + struct.pack("!I", 1)  # RR claiming 32 bytes
        a.send(bogus, "127.0.0.1", la.rtcp)
        assert (await b.recv())[0] == bogus
        assert session.quality is not None
        await until(lambda: session.quality.legs[Leg.A].rtcp_packets == 1)  # type: ignore[union-attr]
        assert session.quality.legs[Leg.A].rtcp_errors == 1
        await relay.aclose()

    run(body)
