"""The RTCP an endpoint sends: SR while sending, RR otherwise, SDES CNAME, BYE, the interval."""

from __future__ import annotations

import random

from pbx.media.rtcp import (
    Bye,
    ReceiverReport,
    RtcpReporter,
    SenderReport,
    SourceDescription,
    ntp_time,
    parse_compound,
)


def reporter() -> RtcpReporter:
    return RtcpReporter(0x5EED, b"rec@deskpbx", rng=random.Random(1))


def test_sender_report_while_sending_with_a_block_per_source() -> None:
    rtcp = reporter()
    for i in range(50):
        rtcp.sent(160, 1000 + 160 * i, 10.0 + 0.02 * i)
    remote = rtcp.source(0xAB)
    for i in range(20):
        if i != 7:
            remote.received(300 + i, 160 * i, 10.0 + 0.02 * i)
    data = rtcp.report(now=11.0, wall=1_700_000_000.5)
    sr, sdes = parse_compound(data)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert sr.ssrc == 0x5EED
    assert (sr.sender.packet_count, sr.sender.octet_count) == (50, 8000)
    assert (sr.sender.ntp_seconds, sr.sender.ntp_fraction) == ntp_time(1_700_000_000.5)
    # the last packet (ts 1000 + 49 * 160) left at 10.98 s; 20 ms later the clock is 160 further
    assert sr.sender.rtp_timestamp == 1000 + 50 * 160
    (block,) = sr.reports
    assert block.ssrc == 0xAB and block.cumulative_lost == 1 and block.highest_sequence == 319
    assert sdes.cname(0x5EED) == b"rec@deskpbx"


def test_receiver_report_when_not_sending() -> None:
    rtcp = reporter()
    rtcp.sent(160, 0, 0.0)
    rtcp.report(now=1.0, wall=1.0)
    rr, _ = parse_compound(rtcp.report(now=6.0, wall=6.0))
    assert isinstance(rr, ReceiverReport) and rr.reports == ()


def test_interval_is_randomised_around_five_seconds() -> None:
    rtcp = reporter()
    first = rtcp.next_deadline(100.0)
    assert 101.25 <= first <= 103.75 and rtcp.next_deadline(100.5) == first
    gaps = []
    now = first
    for _ in range(50):
        rtcp.report(now, now)
        following = rtcp.next_deadline(now)
        gaps.append(following - now)
        now = following
    assert min(gaps) >= 2.5 and max(gaps) <= 7.5 and len(set(gaps)) > 40


def test_bye_compound() -> None:
    rr, sdes, bye = parse_compound(reporter().bye(b"hangup"))
    assert isinstance(rr, ReceiverReport) and isinstance(sdes, SourceDescription)
    assert isinstance(bye, Bye) and bye.ssrcs == (0x5EED,) and bye.reason == b"hangup"
