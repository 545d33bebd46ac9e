"""The call recorder: relay packets in, a time-aligned stereo WAV out.

Theory of operation
-------------------
The relay calls `Recorder.tap(leg, datagram, arrival)` for every RTP packet
of a tapped call (pbx.media.relay `Tap`). That is the relay's hot path, so
`tap` only appends a tuple to a deque and returns. Everything else happens in
`flush(now)`, which the owner (pbx.recording.RecordingManager) calls every
~200 ms from a periodic task, never per packet:

1. *Ingest*: each queued packet is parsed (RFC 3550 §5.1). PCMU (static
   payload type 0) and PCMA (8) are decoded to 16-bit samples (RFC 3551 §6);
   telephone-events (RFC 4733 §2.3, a dynamic type) are reported as digits
   once per event, at its first end packet (§2.5.1.4 repeats the end packet
   three times with one timestamp); anything else (comfort noise, unknown
   codecs) is ignored, so silence stands in for it.
2. *Placement*: leg A (the caller) is the left channel, leg B (the callee)
   the right. A stream's first packet is placed by its arrival time on the
   recording's clock (it ends when it arrived); the following packets by
   their RTP timestamps relative to that anchor (RFC 3550 §5.1: the
   timestamp is the sampling instant), so jitter and reordering do not move
   audio. When a stream's timestamps and arrival times disagree by more than
   `resync` seconds (a new SSRC, a timestamp jump after hold, a phone whose
   clock runs away) the stream is anchored again.
3. *Writing*: audio up to `now - window` is final: frames from the end of
   the file to there are written with silence wherever no packet landed (loss,
   a leg that starts late, silence suppression), so both channels stay in
   step and the file is as long as the recorded time. A packet that arrives
   for an already written stretch is late and dropped (`late` counts them).
   Every append leaves a valid header (pbx.media.wavfile), so a crash loses at
   most `window` plus one flush interval.

Recording can be paused and resumed (on-demand recording, RFC-free feature
codes): while paused, audio is discarded but digits are still reported, and a
resumed segment continues the same file. `close(now)` writes everything up to
`now` and closes the file. All times are monotonic seconds of the relay's
clock (the `arrival` the tap gets), never read here.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pbx.media.relay import Leg
from pbx.media.wavfile import RATE, WavWriter

log = logging.getLogger(__name__)

PCMU = 0
PCMA = 8
WINDOW = 0.2
RESYNC = 1.0
EVENT_TYPES = frozenset(range(96, 128))
EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15
_FIXED = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")
_TS_SSRC = struct.Struct("!II")

Decoder = Callable[[bytes], np.ndarray]
"""Payload octets -> int16 samples, one sample per octet (G.711, RFC 3551 §4.5.14)."""
_Chunk = tuple[int, int, int, bytes]  # channel, file position, payload type, payload
DigitHandler = Callable[["DigitReceived"], None]


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """A DTMF digit a leg sent as an RFC 4733 telephone-event, at its arrival time."""

    leg: Leg
    digit: str
    at: float


@dataclass(frozen=True, slots=True)
class RecorderStats:
    packets: int
    decoded: int
    late: int
    malformed: int
    frames: int


def g711_decoders() -> dict[int, Decoder]:
    """Payload type -> decoder for the static G.711 types (RFC 3551 §6, table 4)."""
    from pbx.media import g711

    return {PCMU: g711.ulaw_decode, PCMA: g711.alaw_decode}


def byte_tables(decode: Decoder) -> tuple[bytes, bytes]:
    """`bytes.translate` tables giving the low and high byte (little-endian, as WAV stores
    it) of each of the 256 G.711 octets' 16-bit sample."""
    samples = decode(bytes(range(256))).astype("<i2").view(np.uint8).reshape(256, 2)
    return samples[:, 0].tobytes(), samples[:, 1].tobytes()


class _Stream:
    """Where one leg's RTP timestamps land in the file: an anchor and the unwrapped clock.

    Position of timestamp ts = base_pos + ext(ts) - base_ts, where ext unwraps the
    32-bit timestamp (RFC 3550 §5.1); `Recorder._place` does the arithmetic inline.
    """

    __slots__ = ("ssrc", "base_ts", "base_pos", "last_ts", "ext_ts")

    def __init__(self, ssrc: int, ts: int, pos: int) -> None:
        self.ssrc = ssrc
        self.base_ts = ts
        self.base_pos = pos
        self.last_ts = ts
        self.ext_ts = ts


def rtp_payload(data: bytes) -> tuple[int, int, int, int, bool, bytes] | None:
    """(payload type, sequence, timestamp, ssrc, marker, payload) or None if malformed."""
    if len(data) < 12:
        return None
    first, second, seq, ts, ssrc = _FIXED.unpack_from(data)
    if first >> 6 != 2:
        return None
    start = 12 + 4 * (first & 0x0F)
    end = len(data)
    if first & 0x10:
        if start + 4 > end:
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    if first & 0x20:
        end -= data[-1]
    if start > end:
        return None
    return second & 0x7F, seq, ts, ssrc, bool(second & 0x80), data[start:end]


class Recorder:
    """One call's recording; see the module docstring. Not thread-safe except `tap`."""

    def __init__(
        self,
        path: Path,
        *,
        on_digit: DigitHandler | None = None,
        decoders: dict[int, Decoder] | None = None,
        event_types: frozenset[int] = EVENT_TYPES,
        window: float = WINDOW,
        resync: float = RESYNC,
        rate: int = RATE,
    ) -> None:
        self.path = path
        self.on_digit = on_digit
        self.decoders = decoders if decoders is not None else g711_decoders()
        self._tables = {pt: byte_tables(decode) for pt, decode in self.decoders.items()}
        self.event_types = event_types
        self.window = window
        self.resync = resync
        self.rate = rate
        self.recording = False
        self.closed = False
        self.written = 0
        self._queue: deque[tuple[Leg, bytes, float]] = deque()
        self._writer: WavWriter | None = None
        self._origin = 0.0
        self._offset = 0
        self._limit: int | None = None
        self._streams: list[_Stream | None] = [None, None]  # by channel
        self._chunks: list[_Chunk] = []
        self._events: dict[Leg, int] = {}
        self._counts = {"packets": 0, "decoded": 0, "late": 0, "malformed": 0}
        self._ingesting = False

    # ---- the relay's side: the hot path ------------------------------------

    def tap(self, leg: Leg, data: bytes, arrival: float) -> None:
        """The relay `Tap`: queue the packet and return (a deque append is thread-safe)."""
        self._queue.append((leg, data, arrival))

    # ---- the owner's side ------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        return RecorderStats(frames=self.written, **self._counts)

    @property
    def duration(self) -> float:
        return self.written / self.rate

    @property
    def started(self) -> bool:
        """True once a file exists (the first start)."""
        return self._writer is not None

    def start(self, now: float) -> None:
        """Start (or resume) recording audio that arrives from `now` on."""
        if self.closed or self.recording:
            return
        self._ingest()
        self._write_until(self._limit if self._limit is not None else self.written)
        if self._writer is None:
            self._writer = WavWriter(self.path, self.rate)
        self.recording = True
        self._origin, self._offset, self._limit = now, self.written, None
        self._streams = [None, None]
        self._chunks.clear()  # audio after the pause point belongs to no segment

    def stop(self, now: float) -> None:
        """Pause: audio that arrives after `now` is not recorded; what came before is kept."""
        if self.closed or not self.recording:
            return
        self._ingest()
        self._limit = self._position(now)
        self.recording = False

    def flush(self, now: float) -> None:
        """Ingest queued packets and write every frame older than `now - window`."""
        if self.closed:
            return
        self._ingest()
        horizon = self._position(now - self.window) if self.recording else self._limit
        if horizon is not None:
            self._write_until(horizon)

    def close(self, now: float, sync: bool = True) -> None:
        """Write everything up to `now` (no window: the call is over) and close the file;
        `sync=False` leaves the fsync to the caller (pbx.recording does it off the loop)."""
        if self.closed:
            return
        self.stop(now)
        if self._limit is not None:
            self._write_until(self._limit)
        self._chunks.clear()
        self._queue.clear()
        self.closed = True
        if self._writer is not None:
            self._writer.close(sync)

    # ---- internals -------------------------------------------------------------

    def _position(self, at: float) -> int:
        return self._offset + round((at - self._origin) * self.rate)

    def _ingest(self) -> None:
        """Parse and place queued packets in arrival order. A digit handler may start or stop
        recording mid-way; the packets after the digit then see the new state."""
        if self._ingesting:
            return
        self._ingesting = True
        try:
            self._ingest_queue()
        finally:
            self._ingesting = False

    def _ingest_queue(self) -> None:
        """The per-packet loop, written flat: on the PBX's loop every call saved counts."""
        queue, decodable, counts = self._queue, self._tables, self._counts
        counts["packets"] += len(queue)
        while queue:
            leg, data, arrival = queue.popleft()
            if len(data) > 12 and data[0] == 0x80:  # no CSRC, extension or padding: inline
                pt = data[1] & 0x7F
                ts, ssrc = _TS_SSRC.unpack_from(data, 4)
                payload = data[12:]
            else:
                parsed = rtp_payload(data)
                if parsed is None:
                    counts["malformed"] += 1
                    continue
                pt, _seq, ts, ssrc, _marker, payload = parsed
            if pt in decodable:
                if self.recording and arrival >= self._origin and payload:
                    self._place(0 if leg is Leg.A else 1, pt, ts, ssrc, arrival, payload)
            elif pt in self.event_types and len(payload) >= 4:
                self._event(leg, ts, arrival, payload)

    def _place(
        self, channel: int, pt: int, ts: int, ssrc: int, arrival: float, payload: bytes
    ) -> None:
        """Queue a packet's payload at its file position; decoding waits for the write."""
        self._counts["decoded"] += 1
        offset = self._offset
        # the packet's audio ended when it arrived; G.711 has one octet per sample
        heard = offset + round((arrival - self._origin) * self.rate) - len(payload)
        stream = self._streams[channel]
        pos = None
        if stream is not None and stream.ssrc == ssrc:
            diff = (ts - stream.last_ts) & 0xFFFFFFFF  # RFC 3550 §5.1: unwrap 32-bit time
            stream.ext_ts += diff - 0x100000000 if diff >= 0x80000000 else diff
            stream.last_ts = ts
            pos = stream.base_pos + stream.ext_ts - stream.base_ts
            if abs(pos - heard) > self.resync * self.rate:
                pos = None
        if pos is None:
            self._streams[channel] = _Stream(ssrc, ts, heard)
            pos = heard
        if pos < offset:  # the anchor may put a first packet before the segment start
            payload, pos = payload[offset - pos :], offset
        if pos + len(payload) <= self.written:
            self._counts["late"] += 1
            return
        self._chunks.append((channel, pos, pt, payload))

    def _event(self, leg: Leg, ts: int, arrival: float, payload: bytes) -> None:
        code, flags, _duration = _EVENT.unpack_from(payload)
        if not flags & 0x80 or self._events.get(leg) == ts:  # not an end packet, or a repeat
            return
        self._events[leg] = ts
        if code < len(EVENT_DIGITS) and self.on_digit is not None:
            self.on_digit(DigitReceived(leg, EVENT_DIGITS[code], arrival))

    def _write_until(self, horizon: int) -> None:
        """Append frames [written, horizon): placed audio over silence.

        Frames are built in a bytearray: each payload is decoded by two
        `bytes.translate` tables (low and high byte of the 16-bit sample) straight
        into every fourth byte of its channel. That is four C calls per packet; a
        numpy call costs more than that, and there would be several per packet.
        """
        if self._writer is None or horizon <= self.written:
            return
        start = self.written
        frames = bytearray(4 * (horizon - start))
        keep = []
        tables = self._tables
        for chunk in self._chunks:
            channel, pos, pt, payload = chunk
            end = pos + len(payload)
            if pos < start or end > horizon:  # straddles an edge: the part inside, if any
                if end > horizon:
                    keep.append(chunk)
                lo, hi = max(pos, start), min(end, horizon)
                if lo >= hi:
                    continue
                payload, pos, end = payload[lo - pos : hi - pos], lo, hi
            low, high = tables[pt]
            at = 4 * (pos - start) + 2 * channel
            stop = at + 4 * (end - pos)
            frames[at:stop:4] = payload.translate(low)
            frames[at + 1 : stop : 4] = payload.translate(high)
        self._chunks = keep
        self._writer.append_bytes(bytes(frames))
        self.written = horizon
