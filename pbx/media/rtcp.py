"""RTCP reports: SR, RR, SDES and BYE packets, and the receiver statistics behind them.

This module owns the bodies of the four RTCP packet types a voice endpoint
needs (RFC 3550 §6.4.1 SR, §6.4.2 RR, §6.5 SDES, §6.6 BYE); `pbx.media.rtp`
owns the common header walk of a compound datagram. Every packet class
parses with `Cls.parse(bytes)` and builds with `bytes(obj)`, byte for byte
including padding (RFC 3550 §6.4.1: the P bit, the last octet counts the
padding). Errors are `RtcpError` with text that names the field.

`SourceStats` keeps what a receiver knows about one sender, exactly as the
RFC's sample code does it: sequence validation and extension (Appendix A.1),
expected / lost / fraction lost per reporting interval (A.3), the
interarrival jitter with the integer estimator of A.8 (jitter scaled by 16,
so the 1/16 gain costs no precision), and LSR / DLSR for the sender's round
trip time (§6.4.1). `round_trip` turns LSR / DLSR of a received block into
the RTT, RFC 3550 §6.4.1 fig. 2: A - LSR - DLSR in 1/65536 s units.

Pure: no sockets, no clock. `now`/`arrival` are seconds on the caller's
clock (monotonic for intervals; `ntp_time` converts a wall-clock time).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pbx.media.rtp import RTCP_HEADER_SIZE, RTP_VERSION, RtcpError, RtcpType

_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IIIII")
_BLOCK = struct.Struct("!IIIIII")
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
_MAX_DROPOUT = 3000  # A.1: jumps larger than this restart the sequence
_MAX_MISORDER = 100
_MIN_SEQUENTIAL = 2
_SEQ_MOD = 1 << 16


# ---- NTP timestamps (RFC 3550 §4) ---------------------------------------------------


def ntp_time(unix_seconds: float) -> tuple[int, int]:
    """The 64-bit NTP timestamp (seconds, fraction) of a Unix wall-clock time."""
    seconds = int(unix_seconds) + NTP_EPOCH_OFFSET
    fraction = int((unix_seconds - int(unix_seconds)) * (1 << 32)) & 0xFFFFFFFF
    return seconds & 0xFFFFFFFF, fraction


def ntp_middle(seconds: int, fraction: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR carries (RFC 3550 §6.4.1)."""
    return ((seconds & 0xFFFF) << 16) | (fraction >> 16)


def to_units(seconds: float) -> int:
    """Seconds as a 32-bit count of 1/65536 s, the unit of DLSR and of LSR arithmetic."""
    return int(round(seconds * 65536)) & 0xFFFFFFFF


def round_trip(arrival_middle: int, lsr: int, dlsr: int) -> float | None:
    """The RTT in seconds from a report block, RFC 3550 §6.4.1: A - LSR - DLSR.

    `arrival_middle` is the middle 32 bits of the NTP time the report arrived.
    None when the block carries no SR reference (LSR = 0) or the result is
    negative (clock steps or a stale LSR), since neither measures anything.
    """
    if lsr == 0:
        return None
    rtt = (arrival_middle - lsr - dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return None
    return rtt / 65536


# ---- packets ----------------------------------------------------------------------------


def _signed24(value: int) -> int:
    return value - (1 << 24) if value & 0x800000 else value


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1), about the source `ssrc`.

    `fraction_lost` is the 8-bit fixed-point fraction (lost/expected * 256)
    of the last interval; `cumulative_lost` is signed 24-bit (duplicates can
    drive it negative); `jitter` is in RTP timestamp units; `lsr` the middle
    32 bits of the last SR's NTP time; `dlsr` the delay since it in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        if offset + _BLOCK.size > len(data):
            raise RtcpError(f"RTCP report block at byte {offset} is truncated")
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        return cls(ssrc, lost >> 24, _signed24(lost & 0xFFFFFF), highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"RTCP fraction lost {self.fraction_lost} out of range 0..255")
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise RtcpError(f"RTCP cumulative lost {self.cumulative_lost} does not fit 24 bits")
        lost = self.fraction_lost << 24 | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The sender information of an SR (RFC 3550 §6.4.1): NTP and RTP time, counts."""

    ntp_seconds: int
    ntp_fraction: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    @property
    def middle(self) -> int:
        """The middle 32 bits of the NTP timestamp, which a receiver echoes as LSR."""
        return ntp_middle(self.ntp_seconds, self.ntp_fraction)


def _header(packet_type: int, count: int, body: bytes, padding: bytes) -> bytes:
    if len(body) % 4 or len(padding) % 4:
        raise RtcpError("RTCP body and padding must be whole 32-bit words (RFC 3550 §6.4.1)")
    if padding and padding[-1] != len(padding):
        raise RtcpError("RTCP padding must end with its own length (RFC 3550 §6.4.1)")
    if not 0 <= count <= 31:
        raise RtcpError(f"RTCP count {count} out of range 0..31")
    first = RTP_VERSION << 6 | (0x20 if padding else 0) | count
    return _HEADER.pack(first, packet_type, (len(body) + len(padding)) // 4) + body + padding


def _split(data: bytes, expected: RtcpType) -> tuple[int, bytes, bytes]:
    """Check one packet's header; return (count, body after the header, padding)."""
    if len(data) < RTCP_HEADER_SIZE:
        raise RtcpError(f"RTCP packet too short: {len(data)} bytes, the header is 4")
    first, packet_type, words = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtcpError(f"RTCP version {first >> 6}, expected 2")
    if packet_type != expected:
        raise RtcpError(
            f"RTCP packet type {packet_type}, expected {int(expected)} ({expected.name})"
        )
    size = 4 * (words + 1)
    if size != len(data):
        raise RtcpError(f"RTCP length field says {size} bytes, the packet has {len(data)}")
    end = size
    if first & 0x20:
        count = data[-1]
        if count == 0 or count > size - RTCP_HEADER_SIZE:
            raise RtcpError(f"RTCP padding count {count} does not fit a {size}-byte packet")
        end -= count
    return first & 0x1F, bytes(data[RTCP_HEADER_SIZE:end]), bytes(data[end:])


def _blocks(body: bytes, offset: int, count: int) -> tuple[tuple[ReportBlock, ...], bytes]:
    stop = offset + count * _BLOCK.size
    if stop > len(body):
        raise RtcpError(f"RTCP says {count} report blocks, the packet holds fewer")
    blocks = tuple(ReportBlock.parse(body, offset + i * _BLOCK.size) for i in range(count))
    return blocks, body[stop:]


@dataclass(frozen=True, slots=True)
class SenderReport:
    """An SR (RFC 3550 §6.4.1). `extension` holds profile-specific words after the blocks."""

    ssrc: int
    sender: SenderInfo
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        count, body, padding = _split(data, RtcpType.SR)
        if len(body) < 4 + _SENDER_INFO.size:
            raise RtcpError(f"RTCP SR body of {len(body)} bytes, sender info needs 24")
        ssrc = _SSRC.unpack_from(body)[0]
        sender = SenderInfo(*_SENDER_INFO.unpack_from(body, 4))
        blocks, extension = _blocks(body, 4 + _SENDER_INFO.size, count)
        return cls(ssrc, sender, blocks, extension, padding)

    def __bytes__(self) -> bytes:
        info = self.sender
        body = [_SSRC.pack(self.ssrc)]
        body.append(
            _SENDER_INFO.pack(
                info.ntp_seconds,
                info.ntp_fraction,
                info.rtp_timestamp,
                info.packet_count,
                info.octet_count,
            )
        )
        body.extend(bytes(block) for block in self.reports)
        body.append(self.extension)
        return _header(RtcpType.SR, len(self.reports), b"".join(body), self.padding)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """An RR (RFC 3550 §6.4.2): the same blocks as an SR, without sender info."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        count, body, padding = _split(data, RtcpType.RR)
        if len(body) < 4:
            raise RtcpError("RTCP RR has no sender SSRC")
        blocks, extension = _blocks(body, 4, count)
        return cls(_SSRC.unpack_from(body)[0], blocks, extension, padding)

    def __bytes__(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + b"".join(bytes(b) for b in self.reports) + self.extension
        return _header(RtcpType.RR, len(self.reports), body, self.padding)


class SdesType:
    """SDES item types (RFC 3550 §6.5, §12.2)."""

    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its (type, value) items, CNAME first by convention.

    `tail` holds the null octets that end the item list and pad the chunk to
    a 32-bit boundary (RFC 3550 §6.5: at least one, up to four), kept so a
    parsed chunk builds back byte for byte; empty means the minimum.
    """

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()
    tail: bytes = b""

    def _bytes(self) -> bytes:
        parts = [_SSRC.pack(self.ssrc)]
        for kind, value in self.items:
            if not 1 <= kind <= 255 or len(value) > 255:
                raise RtcpError(f"SDES item type {kind} or {len(value)}-byte value is invalid")
            parts.append(bytes((kind, len(value))) + value)
        raw = b"".join(parts)
        tail = self.tail or b"\0" * (4 - len(raw) % 4)
        if (len(raw) + len(tail)) % 4 or tail.strip(b"\0"):
            raise RtcpError("SDES chunk must end in null octets up to a 32-bit boundary")
        return raw + tail


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """An SDES packet (RFC 3550 §6.5): one chunk per source."""

    chunks: tuple[SdesChunk, ...] = ()
    padding: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> SourceDescription:
        count, body, padding = _split(data, RtcpType.SDES)
        chunks = []
        offset = 0
        for _ in range(count):
            chunk, offset = _parse_chunk(body, offset)
            chunks.append(chunk)
        if offset != len(body):
            raise RtcpError(f"SDES has {len(body) - offset} bytes after its {count} chunks")
        return cls(tuple(chunks), padding)

    def __bytes__(self) -> bytes:
        body = b"".join(chunk._bytes() for chunk in self.chunks)
        return _header(RtcpType.SDES, len(self.chunks), body, self.padding)

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME of a source, which ties its SSRCs together across restarts (§6.5.1)."""
        for chunk in self.chunks:
            if chunk.ssrc == ssrc:
                for kind, value in chunk.items:
                    if kind == SdesType.CNAME:
                        return value
        return None


def _parse_chunk(body: bytes, offset: int) -> tuple[SdesChunk, int]:
    if offset + 4 > len(body):
        raise RtcpError(f"SDES chunk at byte {offset} has no SSRC")
    ssrc = _SSRC.unpack_from(body, offset)[0]
    pos = offset + 4
    items = []
    while pos < len(body) and body[pos] != SdesType.END:
        if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
            raise RtcpError(f"SDES item at byte {pos} runs past the packet end")
        length = body[pos + 1]
        items.append((body[pos], bytes(body[pos + 2 : pos + 2 + length])))
        pos += 2 + length
    if pos >= len(body):
        raise RtcpError("SDES chunk has no terminating null octet (RFC 3550 §6.5)")
    stop = pos + 1
    while stop % 4:
        stop += 1
    if stop > len(body):
        raise RtcpError("SDES chunk padding runs past the packet end")
    if body[pos:stop].strip(b"\0"):
        raise RtcpError("SDES chunk padding must be null octets (RFC 3550 §6.5)")
    return SdesChunk(ssrc, tuple(items), bytes(body[pos:stop])), stop


@dataclass(frozen=True, slots=True)
class Bye:
    """A BYE packet (RFC 3550 §6.6): the sources leaving, and an optional reason.

    `tail` is the null padding after the reason, kept for byte-exact builds.
    """

    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None
    tail: bytes = b""
    padding: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> Bye:
        count, body, padding = _split(data, RtcpType.BYE)
        if 4 * count > len(body):
            raise RtcpError(f"BYE says {count} sources, the packet holds fewer")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        rest = body[4 * count :]
        if not rest:
            return cls(ssrcs, None, b"", padding)
        length = rest[0]
        if 1 + length > len(rest):
            raise RtcpError(f"BYE reason of {length} bytes runs past the packet end")
        return cls(ssrcs, bytes(rest[1 : 1 + length]), bytes(rest[1 + length :]), padding)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise RtcpError("BYE reason longer than 255 bytes")
            raw = bytes((len(self.reason),)) + self.reason
            body += raw + (self.tail or b"\0" * (-len(raw) % 4))
        return _header(RtcpType.BYE, len(self.ssrcs), body, self.padding)


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """A packet of a type this module does not model (APP, feedback, XR), kept whole."""

    packet_type: int
    data: bytes

    def __bytes__(self) -> bytes:
        return self.data


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | OtherRtcp
_PARSERS = {
    RtcpType.SR: SenderReport.parse,
    RtcpType.RR: ReceiverReport.parse,
    RtcpType.SDES: SourceDescription.parse,
    RtcpType.BYE: Bye.parse,
}


def iter_packets(data: bytes) -> Iterator[RtcpPacket]:
    """The packets of a compound datagram (RFC 3550 §6.1), each parsed or kept as OtherRtcp."""
    if not data:
        raise RtcpError("RTCP datagram is empty")
    offset = 0
    while offset < len(data):
        if offset + RTCP_HEADER_SIZE > len(data):
            raise RtcpError(f"RTCP header truncated at byte {offset}")
        size = 4 * (_HEADER.unpack_from(data, offset)[2] + 1)
        if offset + size > len(data):
            raise RtcpError(
                f"RTCP packet at byte {offset} claims {size} bytes, only {len(data) - offset} left"
            )
        chunk = bytes(data[offset : offset + size])
        parser = _PARSERS.get(chunk[1])  # type: ignore[call-overload]
        yield parser(chunk) if parser is not None else OtherRtcp(chunk[1], chunk)
        offset += size


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """All packets of a compound RTCP datagram, in order."""
    return list(iter_packets(data))


def build_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """A compound datagram: the packets' bytes back to back (RFC 3550 §6.1)."""
    return b"".join(bytes(packet) for packet in packets)


# ---- receiver statistics (RFC 3550 Appendix A.1, A.3, A.8) ------------------------------


@dataclass(slots=True)
class SourceStats:
    """What a receiver knows about one RTP source, to fill a report block about it.

    Feed every packet with `received(sequence, timestamp, arrival)`; arrival
    is in seconds and is converted to timestamp units with `clock_rate`
    (A.8: "arrival is the current time in the same units"). A source is valid
    after MIN_SEQUENTIAL packets in sequence (A.1 probation).
    """

    ssrc: int
    clock_rate: int = 8000
    min_sequential: int = _MIN_SEQUENTIAL  # A.1 probation; 1 counts the very first packet
    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = _SEQ_MOD + 1
    probation: int = _MIN_SEQUENTIAL
    packets: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    transit: int | None = None
    jitter16: int = 0  # A.8 integer estimator: the jitter times 16
    last_sr: int = 0
    last_sr_arrival: float | None = None
    started: bool = False

    def received(self, sequence: int, timestamp: int, arrival: float, timing: bool = True) -> bool:
        """Count one packet; False if A.1 rejects it (probation, a wild jump).

        `timing=False` counts the packet for loss but leaves it out of the
        jitter: RFC 4733 events repeat their start timestamp for the whole
        event, so their transit times say nothing about the network.
        """
        if not self._update_seq(sequence & 0xFFFF):
            return False
        if not timing:
            return True
        arrival_units = int(round(arrival * self.clock_rate))
        transit = (arrival_units - timestamp) & 0xFFFFFFFF
        if self.transit is not None:
            d = (transit - self.transit) & 0xFFFFFFFF  # modulo 2^32: timestamps wrap
            d = abs(d - (1 << 32) if d & 0x80000000 else d)
            # A.8: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16, kept times 16 in integers
            self.jitter16 += d - ((self.jitter16 + 8) >> 4)
        self.transit = transit
        return True

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.packets = 0
        self.expected_prior = 0
        self.received_prior = 0

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 update_seq(), line for line."""
        if not self.started:
            self.started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = self.min_sequential
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.packets += 1
                    return True
            else:
                self.probation = _MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)  # two sequential packets: the source restarted
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        self.packets += 1
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.packets else 0

    @property
    def lost(self) -> int:
        """A.3 cumulative lost: expected - received, clamped to the signed 24-bit field."""
        return max(-(1 << 23), min((1 << 23) - 1, self.expected - self.packets))

    @property
    def jitter(self) -> int:
        """The interarrival jitter in timestamp units, as a report block carries it."""
        return self.jitter16 >> 4

    @property
    def jitter_seconds(self) -> float:
        return self.jitter16 / 16 / self.clock_rate

    def sender_report(self, sender: SenderInfo, arrival: float) -> None:
        """Remember an SR from this source for LSR/DLSR (RFC 3550 §6.4.1)."""
        self.last_sr = sender.middle
        self.last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """A report block for this source; starts a new interval (A.3 fraction lost)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.packets - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.packets
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = to_units(max(0.0, now - self.last_sr_arrival))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=self.jitter & 0xFFFFFFFF,
            lsr=self.last_sr,
            dlsr=dlsr,
        )


class RtcpReporter:
    """The RTCP an endpoint (recorder, softphone) sends: SR or RR plus SDES CNAME.

    RFC 3550 §6.4: an SR while this endpoint sent RTP since the last report,
    else an RR; blocks for at most 31 sources (§6.4.1 RC). Reports go out
    every `interval` seconds randomised by [0.5, 1.5] (§6.3.1), with the 5 s
    minimum of §6.2 as the default; two-party calls need no bandwidth scaling.
    `now` is monotonic seconds, `wall` Unix seconds for the NTP timestamp.
    """

    def __init__(
        self,
        ssrc: int,
        cname: bytes,
        clock_rate: int = 8000,
        interval: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.ssrc, self.cname, self.clock_rate, self.interval = ssrc, cname, clock_rate, interval
        self.sources: dict[int, SourceStats] = {}
        self.packets = self.octets = 0
        self._last_ts: tuple[int, float] | None = None  # (rtp timestamp, when) of the last sent
        self._sent_since_report = False
        self._rng = rng or random.Random()
        self._next: float | None = None

    def sent(self, payload_octets: int, rtp_timestamp: int, now: float) -> None:
        """Count one RTP packet this endpoint sent (§6.4.1: payload octets only)."""
        self.packets += 1
        self.octets += payload_octets
        self._last_ts = (rtp_timestamp, now)
        self._sent_since_report = True

    def source(self, ssrc: int) -> SourceStats:
        """The receiver statistics of a remote source; feed them its packets."""
        if ssrc not in self.sources:
            self.sources[ssrc] = SourceStats(ssrc=ssrc, clock_rate=self.clock_rate)
        return self.sources[ssrc]

    def next_deadline(self, now: float) -> float:
        """When the next report is due (the first one after half an interval, §6.2)."""
        if self._next is None:
            self._next = now + self.interval * self._rng.uniform(0.25, 0.75)
        return self._next

    def report(self, now: float, wall: float) -> bytes:
        """The compound to send now, and schedule the next one."""
        blocks = tuple(s.report_block(now) for s in list(self.sources.values())[:31] if s.packets)
        sdes = SourceDescription((SdesChunk(self.ssrc, ((SdesType.CNAME, self.cname),)),))
        first: RtcpPacket = ReceiverReport(self.ssrc, blocks)
        if self._sent_since_report and self._last_ts is not None:
            ts, at = self._last_ts
            rtp_ts = (ts + int(round((now - at) * self.clock_rate))) & 0xFFFFFFFF
            seconds, fraction = ntp_time(wall)
            info = SenderInfo(
                seconds, fraction, rtp_ts, self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF
            )
            first = SenderReport(self.ssrc, info, blocks)
        self._sent_since_report = False
        self._next = now + self.interval * self._rng.uniform(0.5, 1.5)
        return build_compound([first, sdes])

    def bye(self, reason: bytes | None = None) -> bytes:
        """RR + SDES + BYE, what a leaving endpoint sends (§6.1, §6.6)."""
        sdes = SourceDescription((SdesChunk(self.ssrc, ((SdesType.CNAME, self.cname),)),))
        return build_compound([ReceiverReport(self.ssrc), sdes, Bye((self.ssrc,), reason)])
