"""Receiver statistics of RFC 3550 Appendix A: sequence checks, loss, fraction lost, A.8 jitter."""

from __future__ import annotations

import random

from pbx.media.rtcp import ReceiverReport, SenderInfo, SourceStats, round_trip


def reference_jitter(arrivals: list[float], timestamps: list[int], rate: int) -> float:
    """A.8 in floating point: J += (|D| - J) / 16, D the difference of transit times."""
    jitter = 0.0
    previous = None
    for arrival, ts in zip(arrivals, timestamps, strict=True):
        transit = round(arrival * rate) - ts
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
    return jitter


def test_probation_then_counting() -> None:
    stats = SourceStats(ssrc=1)
    assert stats.received(100, 0, 0.0) is False  # A.1: one packet is not yet a source
    assert stats.received(101, 160, 0.02) is True
    assert (stats.packets, stats.base_seq, stats.expected, stats.lost) == (1, 101, 1, 0)


def test_loss_and_fraction_lost_per_interval_across_wrap() -> None:
    stats = SourceStats(ssrc=7)
    seqs = [(65530 + i) & 0xFFFF for i in range(20)]  # 65530..65535, 0..13
    dropped = {65533, 1, 2, 9}
    for i, seq in enumerate(seqs):
        if seq not in dropped:
            stats.received(seq, i * 160, i * 0.02)
    block = stats.report_block(now=1.0)
    # probation took 65530; base is 65531, the highest is 13 in cycle 1
    assert block.highest_sequence == 65536 + 13
    assert block.cumulative_lost == 4
    assert block.fraction_lost == (4 << 8) // 19
    for i in range(20, 30):
        stats.received((65530 + i) & 0xFFFF, i * 160, i * 0.02)
    second = stats.report_block(now=2.0)
    assert second.fraction_lost == 0 and second.cumulative_lost == 4
    assert second.highest_sequence == 65536 + 23


def test_duplicates_drive_cumulative_loss_negative() -> None:
    stats = SourceStats(ssrc=7)
    for seq in (1, 2, 3, 3, 3, 4):
        stats.received(seq, seq * 160, seq * 0.02)
    assert stats.expected == 3 and stats.packets == 5 and stats.lost == -2
    block = stats.report_block(now=0.0)
    assert block.cumulative_lost == -2 and block.fraction_lost == 0


def test_a_wild_jump_restarts_after_two_sequential_packets() -> None:
    stats = SourceStats(ssrc=7)
    for seq in range(10, 20):
        stats.received(seq, seq * 160, seq * 0.02)
    assert stats.received(30000, 0, 1.0) is False
    assert stats.received(30001, 160, 1.02) is True
    assert stats.base_seq == 30001 and stats.packets == 1


def test_jitter_a8_on_alternating_delay() -> None:
    stats = SourceStats(ssrc=3)
    arrivals = [i * 0.02 + (0.010 if i % 2 else 0.0) for i in range(200)]
    timestamps = [i * 160 for i in range(200)]
    for i, (arrival, ts) in enumerate(zip(arrivals, timestamps, strict=True)):
        stats.received(i, ts, arrival)
    # |D| is always 80 units (10 ms at 8 kHz), so J converges to 80
    assert stats.jitter == 79 or stats.jitter == 80
    expected = reference_jitter(arrivals[1:], timestamps[1:], 8000)
    assert abs(stats.jitter16 / 16 - expected) < 1.0
    assert abs(stats.jitter_seconds - 0.010) < 0.0002


def test_jitter_a8_on_random_trace_matches_the_float_formula() -> None:
    rng = random.Random(5)
    stats = SourceStats(ssrc=3)
    arrivals = [1000.0 + i * 0.02 + rng.uniform(0, 0.03) for i in range(500)]
    timestamps = [(0xFFFFF000 + i * 160) & 0xFFFFFFFF for i in range(500)]  # wraps
    unwrapped = [0xFFFFF000 + i * 160 for i in range(500)]
    for i in range(500):
        stats.received(i, timestamps[i], arrivals[i])
    expected = reference_jitter(arrivals[1:], unwrapped[1:], 8000)
    assert expected > 50
    assert abs(stats.jitter16 / 16 - expected) < 1.0


def test_no_jitter_on_a_steady_stream() -> None:
    stats = SourceStats(ssrc=3)
    for i in range(100):
        stats.received(i, i * 160, 5.0 + i * 0.02)
    assert stats.jitter == 0


def test_lsr_dlsr_and_rtt_from_the_senders_side() -> None:
    receiver = SourceStats(ssrc=0xAAAA)
    sr = SenderInfo(
        ntp_seconds=0x0000B705,
        ntp_fraction=0x20000000,
        rtp_timestamp=0,
        packet_count=1,
        octet_count=160,
    )
    receiver.sender_report(sr, arrival=10.0)
    block = receiver.report_block(now=10.25)
    assert block.lsr == 0xB7052000
    assert block.dlsr == 0x4000  # 0.25 s in 1/65536 s
    rr = ReceiverReport.parse(bytes(ReceiverReport(0xBBBB, (block,))))
    # The SR left at 46853.125 s; the RR came back at 46853.475 s: 0.1 s each way
    arrival_middle = 0xB705_0000 + int(0.475 * 65536)
    rtt = round_trip(arrival_middle, rr.reports[0].lsr, rr.reports[0].dlsr)
    assert rtt is not None and abs(rtt - 0.1) < 2 / 65536


def test_min_sequential_one_counts_the_first_packet_even_at_the_wrap() -> None:
    stats = SourceStats(ssrc=1, min_sequential=1)
    for i, seq in enumerate((65534, 65535, 0, 1)):
        assert stats.received(seq, i * 160, i * 0.02) is True
    assert (stats.packets, stats.base_seq, stats.extended_max, stats.lost) == (4, 65534, 65537, 0)
