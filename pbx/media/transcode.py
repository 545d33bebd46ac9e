"""PCMU <-> PCMA transcoding of whole RTP packets, for a relay whose legs chose different laws.

Theory of operation
-------------------
When the caller's SDP answer settled on PCMU and the callee's on PCMA (or
the other way round), the relay cannot forward the packets untouched: each
phone would hear noise. Both laws sample at 8000 Hz with one octet per
sample (RFC 3551 §4.5.14), so the timestamp, sequence number, SSRC, marker
and packet length all stay as they are; only two things change:

* the payload type in the second octet (RFC 3550 §5.1), e.g. 0 -> 8, and
* each payload octet, mapped by G.711 Tables 3/4 with one `bytes.translate`
  (see `pbx.media.g711`), which never goes through linear samples.

Other payload types are renumbered by `pt_map` if the two legs numbered
them differently (a dynamic RFC 4733 telephone-event type, 101 on one leg
and 96 on the other) and are otherwise forwarded as they are: comfort noise
(13) and telephone-events carry no G.711 octets. The CSRC list, the header
extension and the padding (RFC 3550 §5.1, §5.3.1) are kept byte for byte;
only the octets between them are translated.

Relay hook: a `PayloadTranscoder` is a plain callable `bytes -> bytes`, one
per direction; `transcoders_for_call(a_codec, b_codec, a_event_pt,
b_event_pt)` gives the pair for a call from the codecs each leg answered
(`pbx.sip.sdp.Codec` fits). The relay's hot path calls it on every RTP
datagram arriving on a leg that needs it and sends the result to the other
leg; RTCP is never passed to it (RTCP carries no payload type of the media,
and its counts stay valid because the packet sizes do not change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pbx.media.g711 import A_TO_MU, MU_TO_A

__all__ = [
    "CodecLike",
    "PayloadTranscoder",
    "TranscodeError",
    "transcoders_for_call",
    "transcoder_between",
]

_RTP_HEADER = 12


class TranscodeError(ValueError):
    """The two legs' codecs cannot be bridged by this module."""


class CodecLike(Protocol):
    """What one leg agreed on in its SDP; `pbx.sip.sdp.Codec` is one."""

    @property
    def name(self) -> str: ...

    @property
    def payload_type(self) -> int: ...


_TABLES: dict[tuple[str, str], bytes] = {
    ("PCMU", "PCMA"): MU_TO_A,
    ("PCMA", "PCMU"): A_TO_MU,
}


@dataclass(slots=True)
class PayloadTranscoder:
    """Rewrites RTP packets of `source` codec into `target` codec; see the module docstring.

    `packets` and `passed` count what was translated and what was forwarded
    as it came (other payload types, non-RTP, malformed), for the leg's stats.
    """

    source_pt: int
    target_pt: int
    table: bytes
    pt_map: Mapping[int, int] = field(default_factory=dict)
    packets: int = 0
    passed: int = 0
    _heads: tuple[bytes, bytes] = field(init=False, repr=False, default=(b"", b""))

    def __call__(self, data: bytes) -> bytes:
        # Fast path: V=2, no padding, no extension, no CSRC, our payload type.
        if len(data) >= _RTP_HEADER and data[0] == 0x80 and data[1] & 0x7F == self.source_pt:
            self.packets += 1
            return b"".join(
                (self._heads[data[1] >> 7], data[2:12], data[12:].translate(self.table))
            )
        return self._slow(data)

    def __post_init__(self) -> None:
        # The first two octets of a rewritten fast-path packet, indexed by the marker bit.
        self._heads = (bytes((0x80, self.target_pt)), bytes((0x80, 0x80 | self.target_pt)))

    def _slow(self, data: bytes) -> bytes:
        if len(data) < _RTP_HEADER or data[0] >> 6 != 2:
            self.passed += 1
            return data
        pt = data[1] & 0x7F
        if pt != self.source_pt:
            self.passed += 1
            return _renumber(data, self.pt_map.get(pt, pt))
        bounds = _payload_bounds(data)
        if bounds is None:
            self.passed += 1
            return data
        start, end = bounds
        self.packets += 1
        second = (data[1] & 0x80) | self.target_pt
        return b"".join(
            (
                data[:1],
                bytes((second,)),
                data[2:start],
                data[start:end].translate(self.table),
                data[end:],
            )
        )


def _renumber(data: bytes, pt: int) -> bytes:
    if pt == data[1] & 0x7F:
        return data
    return data[:1] + bytes(((data[1] & 0x80) | pt,)) + data[2:]


def _payload_bounds(data: bytes) -> tuple[int, int] | None:
    """Start and end of the payload past CSRCs and extension, before padding; None if broken."""
    start = _RTP_HEADER + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if start + 4 > len(data):
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = len(data)
    if data[0] & 0x20:
        end -= data[-1]
    if start > end or end > len(data) or (data[0] & 0x20 and data[-1] == 0):
        return None
    return start, end


def transcoder_between(
    source: CodecLike, target: CodecLike, pt_map: Mapping[int, int] | None = None
) -> PayloadTranscoder | None:
    """The transcoder for packets from a `source` leg to a `target` leg, None when not needed.

    None means forward untouched: same encoding and the same payload type
    number (and no other type to renumber). Raises `TranscodeError` for a
    pair of encodings other than PCMU/PCMA, which the B2BUA must then avoid
    in its offer/answer (RFC 3264 §6: answer only codecs both legs have).
    """
    a, b = source.name.upper(), target.name.upper()
    renumber = {k: v for k, v in (pt_map or {}).items() if k != v}
    if a == b:
        if source.payload_type == target.payload_type and not renumber:
            return None
        table = bytes(range(256))
    elif (a, b) in _TABLES:
        table = _TABLES[(a, b)]
    else:
        raise TranscodeError(f"cannot transcode {source.name} to {target.name}")
    return PayloadTranscoder(source.payload_type, target.payload_type, table, renumber)


def transcoders_for_call(
    a: CodecLike,
    b: CodecLike,
    a_events: int | None = None,
    b_events: int | None = None,
) -> tuple[PayloadTranscoder | None, PayloadTranscoder | None]:
    """(A -> B, B -> A) transcoders for a call whose legs answered `a` and `b`.

    `a_events` / `b_events` are each leg's telephone-event payload type
    (RFC 4733 §7.1.1 "a=rtpmap:<pt> telephone-event/8000"), None if that
    leg has none; when both have one under different numbers the events
    are renumbered on the way through.
    """
    forward: dict[int, int] = {}
    backward: dict[int, int] = {}
    if a_events is not None and b_events is not None:
        forward[a_events] = b_events
        backward[b_events] = a_events
    return transcoder_between(a, b, forward), transcoder_between(b, a, backward)
