"""RTP/RTCP headers: exact fields, byte-exact round trips, and the error text for bad input."""

from __future__ import annotations

import struct

import pytest

from pbx.media.rtp import (
    RtcpError,
    RtcpType,
    RtpError,
    RtpExtension,
    RtpPacket,
    build_rtcp,
    is_rtcp,
    iter_rtcp,
    looks_like_rtp,
    rtcp_packet_type,
    rtcp_packet_types,
    rtp_version,
)

# A G.711 µ-law packet as a Yealink phone sends it: V=2, PT=0, seq 0x1234,
# ts 0xA0B0C0D0, SSRC 0xDEADBEEF, 160 bytes of 0xFF (silence).
PCMU = bytes.fromhex("80001234a0b0c0d0deadbeef") + b"\xff" * 160


def test_parse_plain_pcmu_fields() -> None:
    packet = RtpPacket.parse(PCMU)
    assert packet.version == 2
    assert packet.payload_type == 0
    assert packet.sequence == 0x1234
    assert packet.timestamp == 0xA0B0C0D0
    assert packet.ssrc == 0xDEADBEEF
    assert packet.marker is False
    assert packet.csrc == ()
    assert packet.extension is None
    assert packet.padding == b""
    assert packet.payload == b"\xff" * 160
    assert bytes(packet) == PCMU
    assert len(PCMU) == 172


def test_marker_csrc_extension_padding_round_trip() -> None:
    wire = (
        bytes([0x80 | 0x20 | 0x10 | 2, 0x80 | 101])  # V=2 P X CC=2, M PT=101
        + struct.pack("!HII", 65535, 0xFFFFFFFF, 1)
        + struct.pack("!II", 0x11111111, 0x22222222)  # CSRCs
        + struct.pack("!HH", 0xBEDE, 1)
        + bytes.fromhex("10aa0000")  # one RFC 8285 element, padded to a word
        + bytes.fromhex("0b0a00a0")  # RFC 4733 event 11, end bit, volume 10, duration 160
        + b"\x07\x00\x03"  # three padding octets, the last is the count
    )
    packet = RtpPacket.parse(wire)
    assert packet.marker is True
    assert packet.payload_type == 101
    assert packet.sequence == 65535
    assert packet.timestamp == 0xFFFFFFFF
    assert packet.csrc == (0x11111111, 0x22222222)
    assert packet.extension == RtpExtension(0xBEDE, bytes.fromhex("10aa0000"))
    assert packet.payload == bytes.fromhex("0b0a00a0")
    assert packet.padding == b"\x07\x00\x03"
    assert bytes(packet) == wire


def test_build_from_fields() -> None:
    packet = RtpPacket(payload_type=8, sequence=1, timestamp=160, ssrc=7, payload=b"\xd5" * 4)
    assert bytes(packet) == bytes.fromhex("80080001000000a000000007d5d5d5d5")


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"", "RTP packet too short: 0 bytes, the fixed header is 12"),
        (PCMU[:11], "RTP packet too short: 11 bytes, the fixed header is 12"),
        (b"\x40" + PCMU[1:], "RTP version 1, expected 2 (RFC 3550 §5.1)"),
        (b"\xc0" + PCMU[1:], "RTP version 3, expected 2 (RFC 3550 §5.1)"),
        (b"\xa0" + PCMU[1:-1] + b"\x00", "RTP padding count 0 does not fit a 172-byte packet"),
        (b"\xa0" + PCMU[1:12] + b"\xc8", "RTP padding count 200 does not fit a 13-byte packet"),
        (b"\x83" + PCMU[1:12] + b"\x00" * 8, "RTP CSRC list of 3 entries runs past the packet end"),
        (b"\x90" + PCMU[1:12] + b"\xbe\xde", "RTP extension header runs past the packet end"),
        (
            b"\x90" + PCMU[1:12] + b"\xbe\xde\x00\x02" + b"\x00" * 4,
            "RTP extension of 2 words runs past the packet end",
        ),
    ],
)
def test_parse_errors_say_what_is_wrong(wire: bytes, message: str) -> None:
    with pytest.raises(RtpError) as caught:
        RtpPacket.parse(wire)
    assert str(caught.value) == message


def test_every_truncation_parses_or_raises_rtp_error() -> None:
    wire = bytes(
        RtpPacket(
            payload_type=0,
            sequence=5,
            timestamp=6,
            ssrc=7,
            payload=b"abcd",
            csrc=(9,),
            extension=RtpExtension(1, b"wxyz"),
            padding=b"\x00\x02",
        )
    )
    for end in range(len(wire)):
        try:
            packet = RtpPacket.parse(wire[:end])
        except RtpError:
            continue
        assert bytes(packet) == wire[:end]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"payload_type": 128}, "RTP payload_type 128 out of range 0..127"),
        ({"sequence": 65536}, "RTP sequence 65536 out of range 0..65535"),
        ({"ssrc": -1}, "RTP ssrc -1 out of range 0..4294967295"),
        ({"csrc": tuple(range(16))}, "RTP CSRC list has 16 entries, at most 15 fit"),
        ({"padding": b"\x00\x03"}, "RTP padding must end with its own length (RFC 3550 §5.1)"),
        (
            {"extension": RtpExtension(1, b"abc")},
            "RTP extension data must be whole 32-bit words (RFC 3550 §5.3.1)",
        ),
    ],
)
def test_build_refuses_bad_fields(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    base.update(fields)
    with pytest.raises(RtpError) as caught:
        bytes(RtpPacket(**base))  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_version_peek_and_classification() -> None:
    rr = build_rtcp(RtcpType.RR, 0, struct.pack("!I", 0x01020304))
    assert rtp_version(PCMU) == 2
    assert rtp_version(b"\x00") == 0
    assert rtp_version(b"") is None
    assert looks_like_rtp(PCMU) is True
    assert looks_like_rtp(PCMU[:11]) is False
    assert looks_like_rtp(b"\x40" + PCMU[1:]) is False
    assert looks_like_rtp(rr + b"\x00" * 4) is False
    assert is_rtcp(rr) is True
    assert is_rtcp(PCMU) is False
    # A marker bit on PT 72 makes octet 2 = 200: RFC 5761 §4 is why PTs 64-95 are banned.
    assert is_rtcp(b"\x80\xc8" + PCMU[2:]) is True


def test_compound_rtcp_types_and_headers() -> None:
    sr_body = struct.pack("!IIIIII", 0xCAFE, 1, 2, 3, 4, 5)  # SSRC + 20-byte sender info
    sdes_body = struct.pack("!I", 0xCAFE) + bytes([1, 2]) + b"ab" + b"\x00\x00\x00\x00"
    wire = build_rtcp(RtcpType.SR, 0, sr_body) + build_rtcp(RtcpType.SDES, 1, sdes_body)
    assert wire[:4] == bytes.fromhex("80c80006")
    assert rtcp_packet_type(wire) == 200
    assert rtcp_packet_types(wire) == [200, 202]
    headers = list(iter_rtcp(wire))
    assert [h.kind for h in headers] == [RtcpType.SR, RtcpType.SDES]
    assert [(h.count, h.size, h.ssrc, h.padding) for h in headers] == [
        (0, 28, 0xCAFE, False),
        (1, 16, 0xCAFE, False),
    ]
    bye = build_rtcp(RtcpType.BYE, 1, struct.pack("!I", 5))
    assert rtcp_packet_types(build_rtcp(RtcpType.RR, 0, struct.pack("!I", 5)) + bye) == [201, 203]
    assert list(iter_rtcp(build_rtcp(210, 0, b"")))[0].kind is None


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"", "RTCP datagram is empty"),
        (b"\x80\xc9", "RTCP header truncated at byte 0"),
        (b"\x40\xc9\x00\x00", "RTCP version 1 at byte 0, expected 2"),
        (b"\x80\xc9\x00\x01\x00\x00", "RTCP packet at byte 0 claims 8 bytes, only 6 left"),
        (b"\x80\xc9\x00\x00\x80", "RTCP header truncated at byte 4"),
    ],
)
def test_rtcp_errors(wire: bytes, message: str) -> None:
    with pytest.raises(RtcpError) as caught:
        rtcp_packet_types(wire)
    assert str(caught.value) == message


def test_rtcp_first_type_errors_and_build_checks() -> None:
    with pytest.raises(RtcpError, match="too short: 3 bytes"):
        rtcp_packet_type(b"\x80\xc8\x00")
    with pytest.raises(RtcpError, match="RTCP version 0, expected 2"):
        rtcp_packet_type(b"\x00\xc8\x00\x00")
    with pytest.raises(RtcpError, match="not whole 32-bit words"):
        build_rtcp(RtcpType.RR, 0, b"abc")
    with pytest.raises(RtcpError, match="count 32"):
        build_rtcp(RtcpType.RR, 32, b"")
