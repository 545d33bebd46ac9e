"""Per-leg call quality from what the relay sees: RTP headers, RTCP reports, passive RTT."""

from __future__ import annotations

import pytest

from pbx.media.leg_stats import CallQuality, LegQuality
from pbx.media.rtcp import (
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesType,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_compound,
)
from pbx.media.rtp import RtpPacket


def rtp(seq: int, ts: int, ssrc: int = 0xA1, pt: int = 0) -> bytes:
    return bytes(RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, b"\xff" * 160))


def feed(
    leg: LegQuality,
    count: int,
    *,
    drop: set[int] = frozenset(),
    jitter: float = 0.0,
    seq0: int = 500,
    ssrc: int = 0xA1,
    start: float = 0.0,
) -> None:
    for i in range(count):
        if i in drop:
            continue
        extra = jitter if i % 2 else 0.0
        leg.rtp(rtp(seq0 + i, 1000 + 160 * i, ssrc), start + 0.02 * i + 0.03 + extra)


def test_counts_loss_and_jitter_from_headers() -> None:
    leg = LegQuality()
    feed(leg, 500, drop={10, 11, 250}, jitter=0.004)
    assert leg.packets == 497 and leg.lost == 3
    assert leg.jitter == pytest.approx(0.004, abs=0.0002)
    summary = leg.summary()
    assert summary["packets"] == 497 and summary["lost"] == 3
    assert summary["loss_pct"] == pytest.approx(0.6)
    assert summary["jitter_ms"] == pytest.approx(4.0, abs=0.2)
    assert summary["rtt_ms"] is None
    assert 4.1 < summary["mos"] < 4.38  # type: ignore[operator]


def test_clean_leg_rates_about_4_4_and_loss_lowers_it() -> None:
    clean, lossy = LegQuality(), LegQuality()
    feed(clean, 500)
    feed(lossy, 500, drop=set(range(0, 500, 10)))
    assert clean.summary()["mos"] == pytest.approx(4.38, abs=0.02)
    assert lossy.summary()["lost"] == 49  # the very first packet (index 0) never arrived
    assert lossy.summary()["mos"] < clean.summary()["mos"] - 0.5  # type: ignore[operator]


def test_sequence_wrap_is_not_loss() -> None:
    leg = LegQuality()
    feed(leg, 300, seq0=65400)
    assert (leg.packets, leg.lost) == (300, 0)


def test_telephone_events_count_but_do_not_add_jitter() -> None:
    leg = LegQuality()
    for i in range(100):
        leg.rtp(rtp(i, 160 * i), 0.02 * i)
    for i in range(100, 110):  # an RFC 4733 event repeats its start timestamp
        leg.rtp(rtp(i, 160 * 100, pt=101), 0.02 * i)
    for i in range(110, 200):
        leg.rtp(rtp(i, 160 * i), 0.02 * i)
    assert leg.packets == 200 and leg.lost == 0
    assert leg.jitter == 0.0


def test_new_ssrc_keeps_the_earlier_totals() -> None:
    leg = LegQuality()
    feed(leg, 100, drop={5})
    feed(leg, 50, ssrc=0xB2, seq0=9000, start=3.0, drop={7, 8})
    assert leg.packets == 99 + 48 and leg.lost == 3


def test_not_rtp_is_ignored() -> None:
    leg = LegQuality()
    leg.rtp(b"", 0.0)
    leg.rtp(b"\x40" + bytes(20), 0.0)
    leg.rtp(b"\x80\x00", 0.0)
    assert leg.packets == 0 and leg.summary()["mos"] is None


def sr(ssrc: int, ntp_seconds: int, fraction: int) -> SenderReport:
    return SenderReport(ssrc, SenderInfo(ntp_seconds, fraction, 0, 10, 1600))


def test_passive_rtt_from_an_sr_on_one_leg_and_the_rr_on_the_other() -> None:
    call = CallQuality(("a", "b"))
    sdes = SourceDescription((SdesChunk(0xA1, ((SdesType.CNAME, b"alice@pbx"),)),))
    # phone A's SR passes the relay at 100.000 s; its NTP middle word is 0x12345678
    call.rtcp("a", build_compound([sr(0xA1, 0x1234, 0x56780000), sdes]), 100.000)
    # phone B held it 0.5 s and its RR reached the relay at 100.620 s: 120 ms round trip
    block = ReportBlock(
        0xA1,
        fraction_lost=26,
        cumulative_lost=3,
        highest_sequence=900,
        jitter=80,
        lsr=0x12345678,
        dlsr=0x8000,
    )
    call.rtcp("b", bytes(ReceiverReport(0xB2, (block,))), 100.620)
    summary = call.summary()
    assert summary["b"]["rtt_ms"] == 120.0
    assert summary["a"]["rtt_ms"] is None
    assert summary["b"]["reported_loss_pct"] == pytest.approx(10.16, abs=0.01)
    assert summary["b"]["reported_jitter_ms"] == 10.0
    assert "reported_loss_pct" not in summary["a"]
    assert call.legs["b"].rtcp_packets == 1 and call.legs["a"].rtcp_packets == 1


def test_rtt_needs_a_matching_lsr() -> None:
    call = CallQuality(("a", "b"))
    call.rtcp("a", bytes(sr(0xA1, 0x1234, 0x56780000)), 10.0)
    stale = ReportBlock(0xA1, lsr=0x11110000, dlsr=0)
    none = ReportBlock(0xA1, lsr=0, dlsr=0)
    call.rtcp("b", bytes(ReceiverReport(0xB2, (stale, none))), 10.1)
    assert call.legs["b"].rtt is None


def test_rtt_in_both_directions_averages_samples() -> None:
    call = CallQuality(("a", "b"))
    for k, (rtt_a, rtt_b) in enumerate(((0.040, 0.100), (0.060, 0.140))):
        t = 5.0 * k
        call.rtcp("a", bytes(sr(0xA1, 0x100 + k, 0)), t)
        call.rtcp("b", bytes(sr(0xB2, 0x200 + k, 0)), t + 1.0)
        b_block = ReportBlock(0xA1, lsr=(0x100 + k) << 16, dlsr=0x4000)  # 0.25 s
        call.rtcp("b", bytes(ReceiverReport(0xB2, (b_block,))), t + 0.25 + rtt_b)
        a_block = ReportBlock(0xB2, lsr=(0x200 + k) << 16, dlsr=0x4000)
        call.rtcp("a", bytes(ReceiverReport(0xA1, (a_block,))), t + 1.0 + 0.25 + rtt_a)
    assert call.legs["a"].rtt == pytest.approx(0.050)
    assert call.legs["b"].rtt == pytest.approx(0.120)


def test_malformed_rtcp_is_counted_not_raised() -> None:
    call = CallQuality(("a", "b"))
    call.rtcp("a", b"\x81\xc9\x00\x07\x00", 1.0)
    assert call.legs["a"].rtcp_errors == 1 and call.legs["a"].rtcp_packets == 1


def test_chain_feeds_statistics_then_the_recorder() -> None:
    call = CallQuality(("a", "b"))
    seen: list[tuple[str, int, float]] = []
    tap = call.chain(lambda leg, data, arrival: seen.append((str(leg), len(data), arrival)))
    tap("a", rtp(1, 0), 0.5)
    tap("b", rtp(7, 0, ssrc=0xB2), 0.6)
    assert seen == [("a", 172, 0.5), ("b", 172, 0.6)]
    assert call.legs["a"].packets == 1 and call.legs["b"].packets == 1
    assert call.chain(None) == call.tap


def test_deferred_tap_queues_until_drained() -> None:
    call = CallQuality(("a", "b"))
    for i in range(100):
        if i != 40:
            call.deferred_tap("a", rtp(i, 160 * i), 0.02 * i)
    assert call.legs["a"].packets == 0  # nothing parsed on the relay's loop yet
    assert call.drain(10) == 10 and call.legs["a"].packets == 10
    summary = call.summary()  # drains the rest
    assert summary["a"]["packets"] == 99 and summary["a"]["lost"] == 1
    assert summary["b"]["packets"] == 0 and summary["b"]["mos"] is None


def test_deferred_queue_is_bounded() -> None:
    call = CallQuality(("a", "b"))
    call.queue_limit = 100
    for i in range(1000):
        call.deferred_tap("a", rtp(i, 160 * i), 0.02 * i)
        assert len(call._queue) <= 100
    assert call.summary()["a"]["packets"] == 1000


def test_keys_are_the_relays_legs() -> None:
    from pbx.media.relay import Leg

    call = CallQuality((Leg.A, Leg.B))
    tap = call.chain(None)
    for i in range(20):
        tap(Leg.B, rtp(i, 160 * i, ssrc=0xB2), 0.02 * i)
    summary = call.summary()
    assert set(summary) == {Leg.A, Leg.B}
    assert summary[Leg.B]["packets"] == 20 and summary[Leg.A]["packets"] == 0
