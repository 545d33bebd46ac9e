"""RTCP SR/RR/SDES/BYE: hand-built packets from the RFC 3550 layout, byte-exact round trips."""

from __future__ import annotations

import pytest

from pbx.media.rtcp import (
    Bye,
    OtherRtcp,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesType,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_middle,
    ntp_time,
    parse_compound,
    round_trip,
    to_units,
)
from pbx.media.rtp import RtcpError, rtcp_packet_types

# An SR with one report block, field by field as RFC 3550 §6.4.1 lays it out.
SR_HEX = (
    "81c8000c"  # V=2 P=0 RC=1, PT=200, length 12 words (52 bytes)
    "11223344"  # SSRC of sender
    "e9a51f00"  # NTP timestamp, most significant word
    "80000000"  # NTP timestamp, least significant word (0.5 s)
    "0001f400"  # RTP timestamp 128000
    "00000064"  # sender's packet count 100
    "00003e80"  # sender's octet count 16000
    "55667788"  # SSRC_1 (source being reported)
    "40000005"  # fraction lost 64/256, cumulative lost 5
    "00010010"  # extended highest sequence: 1 cycle, seq 16
    "00000020"  # interarrival jitter 32
    "1f008000"  # last SR (LSR)
    "00018000"  # delay since last SR (DLSR) 1.5 s
)
SR = bytes.fromhex(SR_HEX)

# An RR with two blocks; the second has a negative cumulative loss (duplicates).
RR = bytes.fromhex(
    "82c9000d"  # V=2 RC=2 PT=201, 13 words (56 bytes)
    "0a0b0c0d"
    "11223344"
    "1a00002a"  # fraction 26, lost 42
    "0000ffff"
    "000000a0"
    "00000000"
    "00000000"
    "99999999"
    "00fffffe"  # fraction 0, lost -2
    "00000100"
    "00000003"
    "e9a51f00"
    "00004000"
)


def test_sender_report_fields_from_hand_built_packet() -> None:
    sr = SenderReport.parse(SR)
    assert sr.ssrc == 0x11223344
    assert sr.sender == SenderInfo(0xE9A51F00, 0x80000000, 128000, 100, 16000)
    assert sr.sender.middle == 0x1F008000
    (block,) = sr.reports
    assert block == ReportBlock(0x55667788, 64, 5, 0x10010, 32, 0x1F008000, 0x18000)
    assert block.dlsr / 65536 == 1.5
    assert bytes(sr) == SR


def test_receiver_report_fields_and_negative_loss() -> None:
    rr = ReceiverReport.parse(RR)
    assert rr.ssrc == 0x0A0B0C0D
    assert [b.cumulative_lost for b in rr.reports] == [42, -2]
    assert [b.fraction_lost for b in rr.reports] == [26, 0]
    assert rr.reports[1].highest_sequence == 256
    assert bytes(rr) == RR


def test_built_packets_carry_the_right_length_field() -> None:
    rr = ReceiverReport(0x1234, (ReportBlock(0x5678, 3, -1, 70000, 12, 0xABCD0000, 655),))
    data = bytes(rr)
    assert len(data) == 32
    assert data[:4] == bytes.fromhex("81c90007")
    assert data[12:16] == bytes.fromhex("03ffffff")
    assert ReceiverReport.parse(data) == rr


def test_empty_rr_is_eight_bytes() -> None:
    assert bytes(ReceiverReport(0xCAFEBABE)) == bytes.fromhex("80c90001cafebabe")


def test_padding_round_trips() -> None:
    data = bytes.fromhex("a0c90002cafebabe00000004")  # P bit, 4 padding octets
    rr = ReceiverReport.parse(data)
    assert rr.padding == b"\0\0\0\x04" and rr.reports == ()
    assert bytes(rr) == data


def test_sr_with_profile_extension_round_trips() -> None:
    sr = SenderReport(7, SenderInfo(1, 2, 3, 4, 5), (), b"\x01\x02\x03\x04")
    assert SenderReport.parse(bytes(sr)) == sr
    assert bytes(sr)[2:4] == b"\x00\x07"


def test_sdes_cname_chunk() -> None:
    data = bytes.fromhex("81ca0004") + bytes.fromhex("11223344") + b"\x01\x09user@host" + b"\0"
    assert len(data) == 20
    sdes = SourceDescription.parse(data)
    assert sdes.chunks == (SdesChunk(0x11223344, ((SdesType.CNAME, b"user@host"),), b"\0"),)
    assert sdes.cname(0x11223344) == b"user@host"
    assert sdes.cname(1) is None
    assert bytes(sdes) == data
    built = SourceDescription((SdesChunk(0x11223344, ((SdesType.CNAME, b"user@host"),)),))
    assert bytes(built) == data


def test_sdes_two_chunks_with_extra_items_and_four_null_tail() -> None:
    chunks = (
        SdesChunk(1, ((SdesType.CNAME, b"ab"), (SdesType.TOOL, b"DeskPBX"))),
        SdesChunk(2, ((SdesType.CNAME, b"x@y"),)),
    )
    sdes = SourceDescription(chunks)
    data = bytes(sdes)
    assert data[0] & 0x1F == 2
    again = SourceDescription.parse(data)
    assert [c.items for c in again.chunks] == [c.items for c in chunks]
    assert bytes(again) == data
    # a chunk whose items end exactly on a word boundary takes four null octets
    exact = SourceDescription((SdesChunk(3, ((SdesType.CNAME, b"ab"),)),))
    assert bytes(exact)[-4:] == b"\0\0\0\0"


def test_bye_with_reason() -> None:
    data = bytes.fromhex("82cb00040000000100000002") + b"\x06hangup\0"
    bye = Bye.parse(data)
    assert bye.ssrcs == (1, 2) and bye.reason == b"hangup"
    assert bytes(bye) == data
    assert bytes(Bye((1, 2), b"hangup")) == data
    assert bytes(Bye((9,))) == bytes.fromhex("81cb000100000009")


def test_compound_sr_sdes_bye_round_trip() -> None:
    sdes = SourceDescription((SdesChunk(0x11223344, ((SdesType.CNAME, b"pbx"),)),))
    app = bytes.fromhex("80cc0002") + b"\0\0\0\x01" + b"TEST"
    data = SR + bytes(sdes) + app + bytes(Bye((0x11223344,)))
    packets = parse_compound(data)
    assert [type(p) for p in packets] == [SenderReport, SourceDescription, OtherRtcp, Bye]
    assert rtcp_packet_types(data) == [200, 202, 204, 203]
    assert build_compound(packets) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (SR[:-4], "claims 52 bytes"),
        (b"\x41" + SR[1:], "version 1"),
        (bytes.fromhex("81c90001cafebabe"), "report blocks"),
        (bytes.fromhex("80c80001cafebabe"), "sender info needs 24"),
        (bytes.fromhex("81ca000200000001010961"), "claims 12 bytes, only 11"),
        (bytes.fromhex("a0c90001cafebab9"), "padding count 185"),
    ],
)
def test_errors_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(RtcpError, match=message):
        parse_compound(data)


def test_sdes_item_running_past_the_end() -> None:
    data = bytes.fromhex("81ca00020000000101096100")
    with pytest.raises(RtcpError, match="runs past"):
        SourceDescription.parse(data)


def test_build_refuses_out_of_range_fields() -> None:
    with pytest.raises(RtcpError, match="fraction lost 256"):
        bytes(ReportBlock(1, fraction_lost=256))
    with pytest.raises(RtcpError, match="24 bits"):
        bytes(ReportBlock(1, cumulative_lost=1 << 23))
    with pytest.raises(RtcpError, match="count 32"):
        bytes(Bye(tuple(range(32))))


def test_rtt_worked_example_of_rfc3550_section_6_4_1() -> None:
    # A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125 s),
    # DLSR = 0x0005:4000 (5.250 s) -> delay 0x0006:2000 (6.125 s).
    assert round_trip(0xB7108000, 0xB7052000, 0x00054000) == 6.125


def test_rtt_needs_an_sr_reference_and_a_positive_result() -> None:
    assert round_trip(0xB7108000, 0, 0) is None
    assert round_trip(0x00010000, 0x00020000, 0) is None


def test_rtt_across_the_32_bit_wrap() -> None:
    assert round_trip(0x00008000, 0xFFFF8000, 0x00008000) == 0.5


def test_ntp_conversion() -> None:
    seconds, fraction = ntp_time(1.75)
    assert seconds == 2208988801 and fraction == 0xC0000000
    assert ntp_middle(seconds, fraction) == ((2208988801 & 0xFFFF) << 16) | 0xC000
    assert to_units(1.5) == 0x18000
