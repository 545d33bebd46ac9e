"""The call recorder: relay packets in, a time-aligned stereo WAV out.

Theory of operation
-------------------
The relay calls `Recorder.tap(leg, datagram, arrival)` for every RTP packet
of a tapped call (pbx.media.relay `Tap`). That is the relay's hot path, so
`tap` only appends the datagram and its arrival to its leg's list and returns
(see `Recorder._new_tap` for why it is shaped as it is). Everything else happens in
`pbx.media.recorder_batch.flush_recorders(recorders, now)` (or
`Recorder.flush(now)` for one), which the owner (pbx.recording.
RecordingManager) calls every FLUSH_INTERVAL (0.5 s) from a periodic task,
never per packet:

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
3. *The buffer ahead*: a placed packet is decoded at once into a buffer of
   frames that starts at the end of the file and holds a few seconds ahead
   (`AHEAD`; it grows if a stall ever needs more), so overlapping packets
   overwrite in arrival order and nothing waits in per-packet objects. After
   each append the audio still ahead (about `window`) slides to the buffer's
   start. Why not a ring: with a ring each stream's packets straddle its end
   every few seconds (the batch then places those recorders packet by
   packet), the write is two stretches, and every flush touches a new part
   of it, so 200 calls cycle 25 MB of rings through the caches; the buffer's
   front is the only part in use, some 20 KB a call, warm from the last flush.
4. *Writing*: audio up to `now - window` is final: frames from the end of
   the file to there are written with silence wherever no packet landed (loss,
   a leg that starts late, silence suppression), so both channels stay in
   step and the file is as long as the recorded time. A packet that arrives
   for an already written stretch is late and dropped (`late` counts them).
   Every append leaves a valid header (pbx.media.wavfile), so a crash loses at
   most `window` plus `write_every` plus one flush interval: with
   `write_every` a flush appends only once that much audio is final, which
   saves the two write system calls of an append on most flushes.

Batching (pbx.media.recorder_batch): in the steady state of a call the
packets of *all* recorders of a tick are parsed, placed and decoded in one
vectorised numpy pass, and land in each buffer with one assignment per
recorder; a recorder whose queue holds anything else that tick takes the
per-packet path below, with the same results.

Recording can be paused and resumed (on-demand recording, RFC-free feature
codes): while paused, audio is discarded but digits are still reported, and a
resumed segment continues the same file. `close(now)` writes everything up to
`now` and closes the file. All times are monotonic seconds of the relay's
clock (the `arrival` the tap gets), never read here.
"""

from __future__ import annotations

import logging
import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from pbx.media.relay import Leg, Tap
from pbx.media.wavfile import RATE, WavWriter

log = logging.getLogger(__name__)

PCMU = 0
PCMA = 8
WINDOW = 0.2
RESYNC = 1.0
AHEAD = 2.0  # seconds of audio a recorder holds past the end of its file (grows when needed)
EVENT_TYPES = frozenset(range(96, 128))
EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15
_FIXED = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")
_TS_SSRC = struct.Struct("!II")
_LEG_B = Leg.B
_ARRIVAL = operator.itemgetter(2)

Decoder = Callable[[bytes], np.ndarray]
"""Payload octets -> int16 samples, one sample per octet (G.711, RFC 3551 §4.5.14)."""
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
    """One call's recording; see the module docstring. Not thread-safe: `tap` (or the
    `sink` appends) and the flushes run on one thread, the relay's loop, because a flush
    empties the tap's lists in place once it has taken their packets."""

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
        write_every: float = 0.0,
    ) -> None:
        self.path = path
        # a flush appends only once this much audio is final (fewer writes per second)
        self.min_frames = round(write_every * rate)
        self.on_digit = on_digit
        self.decoders = decoders if decoders is not None else g711_decoders()
        self._batchable = decoders is None  # the batch decodes with the G.711 table only
        self.event_types = event_types
        self.window = window
        self.resync = resync
        self.rate = rate
        self.recording = False
        self.closed = False
        self.written = 0
        # per channel (A, B), in arrival order, filled by `tap`: datagram, arrival time,
        # datagram, arrival time, ...
        self._queues: tuple[list[bytes | float], list[bytes | float]] = ([], [])
        self.tap: Tap = self._new_tap()
        self._writer: WavWriter | None = None
        self._origin = 0.0
        self._offset = 0
        self._limit: int | None = None
        self._streams: list[_Stream | None] = [None, None]  # by channel
        # frame f of [written, written + _frames) lives at buffer frame f - written
        # (samples interleaved A, B); frames from `_high` on are silence
        self._frames = round(AHEAD * rate)
        self._buffer = np.zeros(2 * self._frames, dtype=np.int16)
        self._high = 0
        self._windows: dict[int, np.ndarray] = {}
        self._events: dict[Leg, int] = {}
        self._counts = {"packets": 0, "decoded": 0, "late": 0, "malformed": 0}
        self._ingesting = False

    # ---- the relay's side: the hot path ------------------------------------

    def _new_tap(self) -> Tap:
        """The relay `Tap` (`self.tap`): queue the packet and then its arrival on its leg's
        list and return. Per-leg lists let the batch take each stream without sorting.

        Why one list per leg, held as a default argument: the relay runs the taps of
        hundreds of calls in turn, so each packet finds its call's objects out of the CPU
        caches, and every object the tap touches costs a miss. With the datagram and its
        arrival on one list (emptied in place, never replaced), and the lists and the
        leg as defaults instead of closure cells over bound `append`s, a packet touches
        the function, its defaults and one list. In one relay of 200 recorded and 200
        plain calls (tests.bench recording, paired) each step saved CPU per recorded
        packet, same minutes: one list per leg instead of separate lists of datagrams
        and of times, and defaults instead of cells, about 0.3 us; the lists instead of
        their bound `append`s, about 0.2 us more."""
        first, second = self._queues

        def tap(
            leg: Leg,
            data: bytes,
            arrival: float,
            queue_a: list[bytes | float] = first,
            queue_b: list[bytes | float] = second,
            leg_b: Leg = _LEG_B,
        ) -> None:
            if leg is leg_b:
                queue_b.append(data)
                queue_b.append(arrival)
            else:
                queue_a.append(data)
                queue_a.append(arrival)

        return tap

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
        self._clear_ahead()  # audio after the pause point belongs to no segment

    def stop(self, now: float) -> None:
        """Pause: audio that arrives after `now` is not recorded; what came before is kept."""
        if self.closed or not self.recording:
            return
        self._ingest()
        self._limit = self._position(now)
        self.recording = False

    def flush(self, now: float) -> None:
        """Ingest queued packets and write every frame older than `now - window`."""
        from pbx.media.recorder_batch import flush_recorders

        error = flush_recorders((self,), now).get(self)
        if error is not None:
            raise error

    def _flush_slow(self, now: float) -> None:
        """flush() through the per-packet path."""
        if self.closed:
            return
        self._ingest()
        self._write_horizon(now)

    def _write_horizon(self, now: float) -> None:
        if self.recording:
            horizon = self._offset + round((now - self.window - self._origin) * self.rate)
            if horizon - self.written >= self.min_frames:
                self._write_until(horizon)
        elif self._limit is not None:
            self._write_until(self._limit)

    def close(self, now: float, sync: bool = True) -> None:
        """Write everything up to `now` (no window: the call is over) and close the file;
        `sync=False` leaves the fsync to the caller (pbx.recording does it off the loop)."""
        if self.closed:
            return
        self.stop(now)
        if self._limit is not None:
            self._write_until(self._limit)
        self._windows.clear()
        self._clear_queues()
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

    def _take_queue(self) -> list[tuple[Leg, bytes, float]]:
        """Both legs' queued packets merged in arrival order (A first on a tie), emptied."""
        first, second = self._queues
        merged: list[tuple[Leg, bytes, float]] = [
            (Leg.A, data, at)  # type: ignore[misc]
            for data, at in zip(first[0::2], first[1::2], strict=True)
        ]
        merged += [
            (Leg.B, data, at)  # type: ignore[misc]
            for data, at in zip(second[0::2], second[1::2], strict=True)
        ]
        if first and second:
            merged.sort(key=_ARRIVAL)
        self._clear_queues()
        return merged

    def _clear_queues(self) -> None:
        """Empty the tap's lists in place (the tap holds their `append`s)."""
        for queue in self._queues:
            queue.clear()

    def _ingest_queue(self) -> None:
        """The per-packet loop, written flat: on the PBX's loop every call saved counts."""
        decodable, counts = self.decoders, self._counts
        queue = self._take_queue()
        counts["packets"] += len(queue)
        for leg, data, arrival in queue:
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
        """Decode a packet's payload into the buffer at its file position."""
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
        self._put(channel, pos, np.asarray(self.decoders[pt](payload), dtype=np.int16))

    def _event(self, leg: Leg, ts: int, arrival: float, payload: bytes) -> None:
        code, flags, _duration = _EVENT.unpack_from(payload)
        if not flags & 0x80 or self._events.get(leg) == ts:  # not an end packet, or a repeat
            return
        self._events[leg] = ts
        if code < len(EVENT_DIGITS) and self.on_digit is not None:
            self.on_digit(DigitReceived(leg, EVENT_DIGITS[code], arrival))

    def _write_until(self, horizon: int) -> None:
        """Append frames [written, horizon) from the buffer (silence where nothing landed:
        loss, a late leg), then slide the audio already placed past `horizon` to the
        buffer's start and clear what it leaves behind.

        The stretch to write always starts at the buffer's start, so it is one slice
        and one pwrite; only [0, `_high`) ever holds audio, so the slide and the clearing
        touch the written stretch plus the `window` of audio still ahead, never the
        whole buffer."""
        writer, written = self._writer, self.written
        if writer is None or horizon <= written:
            return
        count, buffer = horizon - written, self._buffer
        if count <= self._frames:
            writer.append_bytes(buffer[: 2 * count])
        else:  # longer than the buffer: nothing can have landed past it (it grows first)
            writer.append_bytes(
                np.concatenate([buffer, np.zeros(2 * count - len(buffer), np.int16)])
            )
        held = self._high - written  # frames [0, held) of the buffer may hold audio
        if held > count:  # audio placed past the horizon: move it to the start
            buffer[: 2 * (held - count)] = buffer[2 * count : 2 * held]
            buffer[2 * (held - count) : 2 * held] = 0
        elif held > 0:
            buffer[: 2 * held] = 0
        self.written = horizon
        if self._high < horizon:
            self._high = horizon

    # ---- the buffer ahead of the file ----------------------------------------------

    def _clear_ahead(self) -> None:
        """Forget every frame placed past the file's end (a new segment starts)."""
        held = self._high - self.written
        if held > 0:
            self._buffer[: 2 * held] = 0
        self._high = self.written

    def _put(self, channel: int, pos: int, samples: np.ndarray) -> None:
        """Place one channel's samples for frames [pos, pos + n); frames already in the
        file are skipped (the part of a packet that is late)."""
        written = self.written
        lo, hi = max(pos, written), pos + len(samples)
        if hi <= lo:
            return
        if hi - written > self._frames:
            self._grow(hi - written)
        self._buffer[2 * (lo - written) + channel : 2 * (hi - written) : 2] = samples[lo - pos :]
        if hi > self._high:
            self._high = hi

    def _grow(self, needed: int) -> None:
        """Hold at least `needed` frames past the file's end (a stalled loop, a far anchor)."""
        old = self._buffer
        held = min(2 * max(self._high - self.written, 0), len(old))
        self._frames = max(2 * self._frames, needed + self.rate)
        self._buffer = np.zeros(2 * self._frames, dtype=np.int16)
        self._buffer[:held] = old[:held]
        self._windows.clear()
        log.info("recorder %s holds %d frames ahead", self.path.name, self._frames)

    def _window(self, size: int) -> np.ndarray:
        """A writable view whose row q is `size` samples of one channel from buffer sample q
        (q = 2 * (frame - written) + channel): the batch places a packet with one row
        assignment."""
        view = self._windows.get(size)
        if view is None:
            buffer = self._buffer
            step = buffer.strides[0]
            rows = len(buffer) - 2 * (size - 1)
            view = as_strided(buffer, shape=(rows, size), strides=(step, 2 * step))
            self._windows[size] = view
        return view
