"""RTP and RTCP headers: parse and build, byte-exact (RFC 3550).

This module owns the wire format of RTP (RFC 3550 §5.1: version, padding,
extension, CSRC list, marker, payload type, sequence number, timestamp,
SSRC; §5.3.1 header extension) and the common header of RTCP packets inside a
compound datagram (§6.4-§6.7, RFC 4585 feedback, RFC 3611 XR). It is pure:
no sockets, no clock. The relay never parses a packet it forwards (that would
cost an allocation per packet); it only peeks at the version bits with
`rtp_version`. The recorder, jitter buffer and tests use the full parser.

`RtpPacket.parse(data)` and `bytes(packet)` round-trip every valid packet
byte for byte, including the padding octets (RFC 3550 §5.1: the last padding
octet counts the padding, the others may hold anything) and the extension
words. Errors are `RtpError` / `RtcpError` (both `ValueError`) whose text
says which field is wrong and why.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTCP_HEADER_SIZE = 4

_FIXED = struct.Struct("!BBHII")
_EXT = struct.Struct("!HH")
_RTCP = struct.Struct("!BBH")


class RtpError(ValueError):
    """A datagram that is not a valid RTP packet, or a packet that cannot be built."""


class RtcpError(ValueError):
    """A datagram that is not a valid RTCP (compound) packet."""


class RtcpType(enum.IntEnum):
    """RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2)."""

    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204
    RTPFB = 205
    PSFB = 206
    XR = 207


def rtp_version(data: bytes) -> int | None:
    """The version bits of an RTP or RTCP datagram, None for an empty one.

    Cheap enough for a per-packet check: one index, one shift, no allocation.
    """
    return data[0] >> 6 if data else None


def is_rtcp(data: bytes) -> bool:
    """True if a version-2 datagram carries RTCP rather than RTP.

    RFC 5761 §4: with RTP and RTCP on one port, the second octet of RTCP is
    a packet type in 192..223, which RTP cannot produce as long as payload
    types 64..95 stay unused (they do for audio: §4 forbids them).
    """
    return len(data) >= RTCP_HEADER_SIZE and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


def looks_like_rtp(data: bytes) -> bool:
    """True if a datagram has a full fixed RTP header with version 2 and is not RTCP."""
    return len(data) >= RTP_HEADER_SIZE and data[0] >> 6 == RTP_VERSION and not is_rtcp(data)


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): 16 profile-defined bits and whole 32-bit words.

    RFC 8285 one-byte (`0xBEDE`) and two-byte (`0x100x`) element lists live
    inside `data`; the relay and recorder do not need to look inside.
    """

    profile: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1). The version is always 2.

    `padding` holds the padding octets exactly as sent; its last octet is the
    padding count (so `padding[-1] == len(padding)`), empty means no P bit.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: bytes = b""

    @property
    def version(self) -> int:
        return RTP_VERSION

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP datagram or raise `RtpError` saying what is wrong."""
        if len(data) < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {len(data)} bytes, the fixed header is 12")
        first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6}, expected 2 (RFC 3550 §5.1)")
        end = len(data)
        if first & 0x20:
            count = data[-1]
            if count == 0 or count > end - RTP_HEADER_SIZE:
                raise RtpError(f"RTP padding count {count} does not fit a {end}-byte packet")
            end -= count
        offset = RTP_HEADER_SIZE + 4 * (first & 0x0F)
        if offset > end:
            raise RtpError(f"RTP CSRC list of {first & 0x0F} entries runs past the packet end")
        csrc = struct.unpack_from(f"!{first & 0x0F}I", data, RTP_HEADER_SIZE)
        extension = None
        if first & 0x10:
            offset, extension = _parse_extension(data, offset, end)
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=csrc,
            extension=extension,
            padding=bytes(data[end:]),
        )

    def __bytes__(self) -> bytes:
        self._check()
        first = RTP_VERSION << 6 | len(self.csrc)
        first |= 0x20 if self.padding else 0
        first |= 0x10 if self.extension is not None else 0
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT.pack(ext.profile, len(ext.data) // 4) + ext.data)
        parts.append(self.payload)
        parts.append(self.padding)
        return b"".join(parts)

    def _check(self) -> None:
        """Refuse to build a packet a receiver would misparse."""
        limits = (
            ("payload_type", self.payload_type, 0x7F),
            ("sequence", self.sequence, 0xFFFF),
            ("timestamp", self.timestamp, 0xFFFFFFFF),
            ("ssrc", self.ssrc, 0xFFFFFFFF),
        )
        for name, value, top in limits:
            if not 0 <= value <= top:
                raise RtpError(f"RTP {name} {value} out of range 0..{top}")
        if len(self.csrc) > 15:
            raise RtpError(f"RTP CSRC list has {len(self.csrc)} entries, at most 15 fit")
        if self.padding and self.padding[-1] != len(self.padding):
            raise RtpError("RTP padding must end with its own length (RFC 3550 §5.1)")
        if self.extension is not None:
            ext = self.extension
            if len(ext.data) % 4 or not 0 <= ext.profile <= 0xFFFF:
                raise RtpError("RTP extension data must be whole 32-bit words (RFC 3550 §5.3.1)")


def _parse_extension(data: bytes, offset: int, end: int) -> tuple[int, RtpExtension]:
    if offset + 4 > end:
        raise RtpError("RTP extension header runs past the packet end")
    profile, words = _EXT.unpack_from(data, offset)
    start = offset + 4
    stop = start + 4 * words
    if stop > end:
        raise RtpError(f"RTP extension of {words} words runs past the packet end")
    return stop, RtpExtension(profile, bytes(data[start:stop]))


@dataclass(frozen=True, slots=True)
class RtcpHeader:
    """The common header of one RTCP packet inside a compound datagram (RFC 3550 §6.4.1).

    `count` is the 5-bit RC/SC/FMT field; `size` is the packet's length in
    bytes (the wire length field is in 32-bit words minus one); `ssrc` is the
    sender SSRC that every defined packet type carries after the header.
    """

    packet_type: int
    count: int
    size: int
    padding: bool
    ssrc: int | None

    @property
    def kind(self) -> RtcpType | None:
        """The known packet type, or None for a type this module does not name."""
        try:
            return RtcpType(self.packet_type)
        except ValueError:
            return None


def iter_rtcp(data: bytes) -> Iterator[RtcpHeader]:
    """Walk the packets of a compound RTCP datagram (RFC 3550 §6.1), checking each length."""
    offset = 0
    if not data:
        raise RtcpError("RTCP datagram is empty")
    while offset < len(data):
        if offset + RTCP_HEADER_SIZE > len(data):
            raise RtcpError(f"RTCP header truncated at byte {offset}")
        first, packet_type, words = _RTCP.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtcpError(f"RTCP version {first >> 6} at byte {offset}, expected 2")
        size = 4 * (words + 1)
        if offset + size > len(data):
            raise RtcpError(
                f"RTCP packet at byte {offset} claims {size} bytes, only {len(data) - offset} left"
            )
        ssrc = struct.unpack_from("!I", data, offset + 4)[0] if size >= 8 else None
        yield RtcpHeader(packet_type, first & 0x1F, size, bool(first & 0x20), ssrc)
        offset += size


def rtcp_packet_types(data: bytes) -> list[int]:
    """The packet types of a compound RTCP datagram in order, e.g. [200, 202] for SR+SDES."""
    return [header.packet_type for header in iter_rtcp(data)]


def rtcp_packet_type(data: bytes) -> int:
    """The type of the first RTCP packet; RFC 3550 §6.1 says it is SR or RR in a compound."""
    if len(data) < RTCP_HEADER_SIZE:
        raise RtcpError(f"RTCP datagram too short: {len(data)} bytes, the header is 4")
    if data[0] >> 6 != RTP_VERSION:
        raise RtcpError(f"RTCP version {data[0] >> 6}, expected 2")
    return data[1]


def build_rtcp(packet_type: int, count: int, body: bytes) -> bytes:
    """One RTCP packet with a correct length field; `body` (after the header) is whole words."""
    if len(body) % 4:
        raise RtcpError(f"RTCP body of {len(body)} bytes is not whole 32-bit words")
    if not 0 <= count <= 31 or not 0 <= packet_type <= 255:
        raise RtcpError(f"RTCP count {count} or packet type {packet_type} out of range")
    return _RTCP.pack(RTP_VERSION << 6 | count, packet_type, len(body) // 4) + body
