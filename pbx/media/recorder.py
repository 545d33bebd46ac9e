"""The call recorder: relay packets in, a time-aligned stereo WAV out.

Theory of operation
-------------------
The relay calls `Recorder.tap(leg, datagram, arrival)` for every RTP packet
of a tapped call (pbx.media.relay `Tap`). That is the relay's hot path, so
`tap` only appends a tuple to a list and returns. Everything else happens in
`flush_recorders(recorders, now)` (or `Recorder.flush(now)` for one), which
the owner (pbx.recording.RecordingManager) calls every ~200 ms from a
periodic task, never per packet:

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
   most `window` plus `write_every` plus one flush interval: with
   `write_every` a flush appends only once that much audio is final, which
   saves the two write system calls of an append on most flushes.

Batching: in the steady state of a call (both streams anchored, plain
12-byte headers, PCMU/PCMA, same SSRC, timestamps that agree with arrivals)
the packets of *all* recorders of a tick are handled in one vectorised numpy
pass (`_Batch`): one join of the datagrams, header fields read as columns,
the 32-bit timestamps unwrapped per stream with a segmented cumulative sum,
payloads decoded through a (payload type, octet) -> sample table, and each
recorder gets one block of placed samples that `_write_until` scatters into
its frames. A recorder whose queue holds anything else this tick (its first
packets, a DTMF event, a new SSRC, a resync, a pause) takes the per-packet
path below for that tick, which has the same results.

Recording can be paused and resumed (on-demand recording, RFC-free feature
codes): while paused, audio is discarded but digits are still reported, and a
resumed segment continues the same file. `close(now)` writes everything up to
`now` and closes the file. All times are monotonic seconds of the relay's
clock (the `arrival` the tap gets), never read here.
"""

from __future__ import annotations

import itertools
import logging
import operator
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

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
_Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # channels (n,), positions (n,), samples (n, k)
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
        write_every: float = 0.0,
    ) -> None:
        self.path = path
        # a flush appends only once this much audio is final (fewer writes per second)
        self.min_frames = round(write_every * rate)
        self.on_digit = on_digit
        self.decoders = decoders if decoders is not None else g711_decoders()
        self._tables = {pt: byte_tables(decode) for pt, decode in self.decoders.items()}
        self._batchable = decoders is None  # the batch decodes with the G.711 table only
        self.event_types = event_types
        self.window = window
        self.resync = resync
        self.rate = rate
        self.recording = False
        self.closed = False
        self.written = 0
        # per channel (A, B), in arrival order, filled by `tap`: datagrams and arrival times
        self._queues: tuple[list[bytes], list[bytes]] = ([], [])
        self._times: tuple[list[float], list[float]] = ([], [])
        self._writer: WavWriter | None = None
        self._origin = 0.0
        self._offset = 0
        self._limit: int | None = None
        self._streams: list[_Stream | None] = [None, None]  # by channel
        self._chunks: list[_Chunk | _Block] = []  # placed, not yet written, in placing order
        self._events: dict[Leg, int] = {}
        self._counts = {"packets": 0, "decoded": 0, "late": 0, "malformed": 0}
        self._ingesting = False

    # ---- the relay's side: the hot path ------------------------------------

    def tap(self, leg: Leg, data: bytes, arrival: float) -> None:
        """The relay `Tap`: queue the packet on its leg's list and return (an append is
        atomic). Per-leg lists let the batch take each stream without sorting."""
        channel = leg is _LEG_B
        self._queues[channel].append(data)
        self._times[channel].append(arrival)

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
            horizon = self._position(now - self.window)
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
        self._chunks.clear()
        self._queues, self._times = ([], []), ([], [])
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
        (first, second), (first_at, second_at) = self._queues, self._times
        self._queues, self._times = ([], []), ([], [])
        merged = [(Leg.A, data, at) for data, at in zip(first, first_at, strict=True)]
        merged += [(Leg.B, data, at) for data, at in zip(second, second_at, strict=True)]
        if first and second:
            merged.sort(key=_ARRIVAL)
        return merged

    def _ingest_queue(self) -> None:
        """The per-packet loop, written flat: on the PBX's loop every call saved counts."""
        decodable, counts = self._tables, self._counts
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

        Frames are built in a bytearray. A per-packet chunk is decoded by two
        `bytes.translate` tables (low and high byte of the 16-bit sample) straight
        into every fourth byte of its channel: four C calls per packet, cheaper than
        numpy for one packet. A batch block (already decoded) is scattered with one
        numpy assignment. Both kinds are written in the order they were placed, so a
        re-anchored stream overwrites what it overlaps exactly as it would packet by
        packet.
        """
        if self._writer is None or horizon <= self.written:
            return
        start = self.written
        frames = bytearray(4 * (horizon - start))
        view: np.ndarray | None = None
        keep: list[_Chunk | _Block] = []
        for item in self._chunks:
            if len(item) == 4:
                self._write_chunk(frames, start, horizon, item, keep)  # type: ignore[arg-type]
            else:
                if view is None:
                    view = np.frombuffer(frames, dtype="<i2")
                _write_block(view, start, horizon, item, keep)  # type: ignore[arg-type]
        self._chunks = keep
        self._writer.append_bytes(bytes(frames))
        self.written = horizon

    def _write_chunk(
        self, frames: bytearray, start: int, horizon: int, chunk: _Chunk, keep: list
    ) -> None:
        channel, pos, pt, payload = chunk
        end = pos + len(payload)
        if pos < start or end > horizon:  # straddles an edge: the part inside, if any
            if end > horizon:
                keep.append(chunk)
            lo, hi = max(pos, start), min(end, horizon)
            if lo >= hi:
                return
            payload, pos, end = payload[lo - pos : hi - pos], lo, hi
        low, high = self._tables[pt]
        at = 4 * (pos - start) + 2 * channel
        stop = at + 4 * (end - pos)
        frames[at:stop:4] = payload.translate(low)
        frames[at + 1 : stop : 4] = payload.translate(high)


def _write_block(flat: np.ndarray, start: int, horizon: int, block: _Block, keep: list) -> None:
    """Scatter a batch block's samples into the interleaved frames `flat` (2 samples per
    frame); keep its rows that reach past the horizon for the next write."""
    channels, positions, samples = block
    size = samples.shape[1]
    if int(positions.min()) >= horizon:  # all of it is still to come
        keep.append(block)
        return
    ends = positions + size
    whole = (positions >= start) & (ends <= horizon)
    if whole.all():
        _windows(flat, size)[2 * (positions - start) + channels] = samples
        return
    if whole.any():
        _windows(flat, size)[2 * (positions[whole] - start) + channels[whole]] = samples[whole]
    edge = ~whole & (ends > start) & (positions < horizon)
    if edge.any():  # the part of a straddling packet that falls inside
        at = (positions[edge] - start)[:, None] + _RAMP[:size]
        inside = (at >= 0) & (at < horizon - start)
        index = 2 * at + channels[edge][:, None]
        flat[index[inside]] = samples[edge][inside]
    later = ends > horizon
    if later.any():
        keep.append((channels[later], positions[later], samples[later]))


def _windows(flat: np.ndarray, size: int) -> np.ndarray:
    """A writable view whose row q is the `size` samples of one channel starting at
    interleaved sample q (q = 2 * frame + channel): a packet is one row assignment."""
    step = flat.strides[0]
    rows = len(flat) - 2 * (size - 1)
    return as_strided(flat, shape=(rows, size), strides=(step, 2 * step))


_RAMP = np.arange(2048, dtype=np.int64)  # sample offsets inside a payload (<= one MTU)
_WRAP = 1 << 32


def _g711_lut() -> np.ndarray:
    """(payload type, octet) -> 16-bit sample, for the static G.711 types only."""
    lut = np.zeros((128, 256), dtype=np.int16)
    for pt, decode in g711_decoders().items():
        lut[pt] = decode(bytes(range(256)))
    return lut


_LUT = _g711_lut()
# (payload type, two octets as a little-endian uint16) -> both samples as one uint32
_PAIRS: dict[int, np.ndarray] = {}
for _pt in (PCMU, PCMA):
    _sample = _LUT[_pt].view(np.uint16).astype(np.uint32)  # index [second, first] octet
    _PAIRS[_pt] = (_sample[:, None] << 16 | _sample[None, :]).reshape(-1)
_BOTH = np.concatenate([_LUT[PCMU], _LUT[PCMA]])
_LEG_B = Leg.B
_ARRIVAL = operator.itemgetter(2)
_BATCH_TYPES = np.zeros(128, dtype=bool)
_BATCH_TYPES[[PCMU, PCMA]] = True


def flush_recorders(recorders: Iterable[Recorder], now: float) -> dict[Recorder, OSError]:
    """Flush many recorders at once: the steady-state packets of all of them in one
    vectorised pass, the others one by one (see the module docstring).

    Returns the recorders whose file write failed (disk full, gone) with the error;
    the others are flushed whatever happened to those.
    """
    todo = [r for r in recorders if not r.closed]
    batch = [r for r in todo if _queued(r) and r._batchable and r.recording and not r._ingesting]
    ready = set(map(id, batch))
    slow = [r for r in todo if id(r) not in ready]
    while batch:
        refused = _Batch(batch).run()
        if not refused:
            break
        slow.extend(refused)
        batch = [r for r in batch if r not in refused]
    failed: dict[Recorder, OSError] = {}
    for recorder in slow:
        try:
            recorder._flush_slow(now)
        except OSError as exc:
            failed[recorder] = exc
    _write_together(batch, now, failed)
    return failed


def _queued(recorder: Recorder) -> bool:
    return bool(recorder._queues[0] or recorder._queues[1])


def _write_together(recorders: list[Recorder], now: float, failed: dict[Recorder, OSError]) -> None:
    """Write the batch recorders' frames up to their horizons: every recorder whose pending
    audio is batch blocks of one payload size is scattered into one shared buffer with one
    numpy assignment, then gets one append of its slice; the others write on their own."""
    group: list[tuple[Recorder, int]] = []
    size = 0
    for recorder in recorders:
        horizon = recorder._position(now - recorder.window)
        if recorder._writer is None or horizon - recorder.written < max(1, recorder.min_frames):
            continue
        sizes = {item[2].shape[1] if len(item) == 3 else -1 for item in recorder._chunks}
        size = size or next(iter(sizes), 0)
        if sizes <= {size} and size > 0:
            group.append((recorder, horizon))
            continue
        try:
            recorder._write_until(horizon)
        except OSError as exc:
            failed[recorder] = exc
    if group:
        _scatter(group, size, failed)


def _scatter(group: list[tuple[Recorder, int]], size: int, failed: dict[Recorder, OSError]) -> None:
    written = np.array([r.written for r, _ in group], dtype=np.int64)
    counts = np.array([h for _, h in group], dtype=np.int64) - written
    base = np.zeros(len(group) + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    frames = np.zeros(2 * int(base[-1]), dtype="<i2")
    blocks: list[_Block] = [item for r, _ in group for item in r._chunks]  # type: ignore[misc]
    kept: list[list[_Block]] = [[] for _ in group]
    if blocks:
        rows = [sum(len(item[0]) for item in r._chunks) for r, _ in group]
        owner = np.repeat(np.arange(len(group)), rows)
        channels = np.concatenate([b[0] for b in blocks])
        positions = np.concatenate([b[1] for b in blocks])
        samples = np.concatenate([b[2] for b in blocks])
        at = positions - written[owner]
        limit = counts[owner]
        slot = 2 * (base[owner] + at) + channels
        whole = (at >= 0) & (at + size <= limit)
        if whole.all():
            _windows(frames, size)[slot] = samples
        else:
            _windows(frames, size)[slot[whole]] = samples[whole]
            edge = ~whole & (at + size > 0) & (at < limit)
            if edge.any():  # the part of a straddling packet that falls inside its file
                inner = at[edge][:, None] + _RAMP[:size]
                inside = (inner >= 0) & (inner < limit[edge][:, None])
                index = slot[edge][:, None] + 2 * _RAMP[:size]
                frames[index[inside]] = samples[edge][inside]
            later = at + size > limit  # rows sorted by owner: one split for all
            left = (channels[later], positions[later], samples[later])
            bounds = np.searchsorted(owner[later], np.arange(len(group) + 1)).tolist()
            for index, (first, end) in enumerate(itertools.pairwise(bounds)):
                if first < end:
                    kept[index].append((left[0][first:end], left[1][first:end], left[2][first:end]))
    data = memoryview(frames.view(np.uint8))
    for index, (recorder, horizon) in enumerate(group):
        recorder._chunks = kept[index]  # type: ignore[assignment]
        try:
            assert recorder._writer is not None
            recorder._writer.append_bytes(data[4 * int(base[index]) : 4 * int(base[index + 1])])
            recorder.written = horizon
        except OSError as exc:
            failed[recorder] = exc


class _Batch:
    """One vectorised ingest of several recorders' queues; see `flush_recorders`."""

    def __init__(self, recorders: list[Recorder]) -> None:
        self.recorders = recorders

    def run(self) -> list[Recorder]:
        """Place every queued packet, or change nothing and return the recorders whose
        queues need the per-packet path."""
        recorders = self.recorders
        queues = [queue for r in recorders for queue in r._queues]
        datas = list(itertools.chain.from_iterable(queues))
        total = len(datas)
        # entries come stream by stream (recorder, then channel): key is already sorted
        key = np.repeat(np.arange(len(queues)), [len(queue) for queue in queues])
        owner, channel = key >> 1, key & 1
        lengths = np.fromiter(map(len, datas), dtype=np.int64, count=total)
        size = int(np.bincount(lengths).argmax())
        if size <= 12 or size - 12 > len(_RAMP):
            return recorders
        if not (lengths == size).all():
            return _pick(recorders, owner[lengths != size])
        raw = np.frombuffer(b"".join(datas), dtype=np.uint8).reshape(total, size)
        words = np.ascontiguousarray(raw[:, :12]).view(">u4").astype(np.int64)
        pt = raw[:, 1] & 0x7F
        times = itertools.chain.from_iterable(t for r in recorders for t in r._times)
        arrival = np.fromiter(times, dtype=np.float64, count=total)
        fields = _recorder_fields(recorders)
        good = (raw[:, 0] == 0x80) & _BATCH_TYPES[pt] & fields["anchored"][key]
        good &= arrival >= fields["origin"][owner]
        good &= words[:, 2] == fields["ssrc"][key]
        ts = words[:, 1]
        ext = _unwrap(ts, key, fields["last_ts"], fields["ext_ts"])
        payload = size - 12
        position = fields["base"][key] + ext
        heard = (
            fields["offset"][owner]
            + np.rint((arrival - fields["origin"][owner]) * fields["rate"][owner]).astype(np.int64)
            - payload
        )
        good &= np.abs(position - heard) <= fields["resync"][owner]
        good &= position >= fields["offset"][owner]
        if not good.all():
            return _pick(recorders, owner[~good])
        self._commit(key, ts, ext)
        late = position + payload <= fields["written"][owner]
        samples = _decode(raw[:, 12:], pt)
        self._place(owner, channel, position, samples, late)
        return []

    def _commit(self, key: np.ndarray, ts: np.ndarray, ext: np.ndarray) -> None:
        """Empty the queues, count the packets and move each stream to its last packet."""
        for recorder in self.recorders:
            count = len(recorder._queues[0]) + len(recorder._queues[1])
            recorder._queues, recorder._times = ([], []), ([], [])
            recorder._counts["packets"] += count
            recorder._counts["decoded"] += count
        ends = np.flatnonzero(np.r_[key[1:] != key[:-1], True])
        for stream_key, last, extended in zip(
            key[ends].tolist(), ts[ends].tolist(), ext[ends].tolist(), strict=True
        ):
            stream = self.recorders[stream_key // 2]._streams[stream_key % 2]
            assert stream is not None
            stream.last_ts, stream.ext_ts = last, extended

    def _place(
        self,
        owner: np.ndarray,
        channel: np.ndarray,
        position: np.ndarray,
        samples: np.ndarray,
        late: np.ndarray,
    ) -> None:
        """Hand each recorder its block of on-time rows; count the late ones."""
        if late.any():
            for index, dropped in enumerate(
                np.bincount(owner[late], minlength=len(self.recorders))
            ):
                self.recorders[index]._counts["late"] += int(dropped)
            keep = ~late
            owner, channel, position, samples = (
                owner[keep],
                channel[keep],
                position[keep],
                samples[keep],
            )
        bounds = np.searchsorted(owner, np.arange(len(self.recorders) + 1)).tolist()
        for index, recorder in enumerate(self.recorders):
            first, end = bounds[index], bounds[index + 1]
            if first < end:
                recorder._chunks.append(
                    (channel[first:end], position[first:end], samples[first:end])
                )


def _decode(payloads: np.ndarray, types: np.ndarray) -> np.ndarray:
    """G.711 octets (n, k) of PCMU/PCMA -> int16 samples by table. With one law, two octets
    at a time (one 32-bit entry holds both samples) when k is even on a little-endian host."""
    present = np.unique(types).tolist()
    if len(present) == 1:
        pt = present[0]
        if payloads.shape[1] % 2 == 0 and sys.byteorder == "little":
            pairs = np.ascontiguousarray(payloads).view(np.uint16)
            return _PAIRS[pt].take(pairs, mode="clip").view(np.int16)
        return _LUT[pt].take(payloads, mode="clip")
    index = payloads.astype(np.uint16)  # both laws: one table of (law, octet), 512 entries
    index |= ((types == PCMA).astype(np.uint16) << 8)[:, None]
    return _BOTH.take(index, mode="clip")


def _pick(recorders: list[Recorder], owners: np.ndarray) -> list[Recorder]:
    return [recorders[index] for index in np.unique(owners).tolist()]


def _recorder_fields(recorders: list[Recorder]) -> dict[str, np.ndarray]:
    """Per-recorder and per-stream (index recorder * 2 + channel) state as arrays."""
    streams = [stream for r in recorders for stream in r._streams]
    return {
        "origin": np.array([r._origin for r in recorders], dtype=np.float64),
        "offset": np.array([r._offset for r in recorders], dtype=np.int64),
        "written": np.array([r.written for r in recorders], dtype=np.int64),
        "rate": np.array([r.rate for r in recorders], dtype=np.float64),
        "resync": np.array([r.resync * r.rate for r in recorders], dtype=np.float64),
        "anchored": np.array([s is not None for s in streams], dtype=bool),
        "ssrc": np.array([s.ssrc if s else -1 for s in streams], dtype=np.int64),
        "last_ts": np.array([s.last_ts if s else 0 for s in streams], dtype=np.int64),
        "ext_ts": np.array([s.ext_ts if s else 0 for s in streams], dtype=np.int64),
        "base": np.array([s.base_pos - s.base_ts if s else 0 for s in streams], dtype=np.int64),
    }


def _unwrap(ts: np.ndarray, key: np.ndarray, last_ts: np.ndarray, ext_ts: np.ndarray) -> np.ndarray:
    """Extended timestamps of packets sorted by stream (RFC 3550 §5.1 wraps at 2**32): each
    stream continues from its last timestamp; a step of 2**31 or more goes backwards."""
    count = len(ts)
    first = np.r_[True, key[1:] != key[:-1]]
    previous = np.empty(count, dtype=np.int64)
    previous[1:] = ts[:-1]
    previous[first] = last_ts[key[first]]
    step = (ts - previous) % _WRAP
    step[step >= _WRAP // 2] -= _WRAP
    total = np.cumsum(step)
    start = np.maximum.accumulate(np.where(first, np.arange(count), 0))
    return ext_ts[key] + total - total[start] + step[start]
