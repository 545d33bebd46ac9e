"""Recording many calls at once: one vectorised numpy pass over every recorder's packets.

`flush_recorders(recorders, now)` is what `pbx.recording.RecordingManager.tick`
calls every 200 ms. In the steady state of a call (both streams anchored,
plain 12-byte RTP headers (RFC 3550 §5.1), PCMU/PCMA (RFC 3551 §6), the
stream's SSRC, timestamps that agree with arrival times) the packets of all
recorders of a tick are handled together (`_Batch`):

- the datagrams are joined once and their header fields read as columns
  through one record view (no copy);
- the 32-bit timestamps are unwrapped per stream (RFC 3550 §5.1) with a
  segmented cumulative sum, giving each packet its file position exactly as
  `Recorder._place` computes it packet by packet;
- payloads are decoded by table (two octets per lookup when one law is in
  use) a group of calls at a time (`_GROUP` packets: one lookup for many
  calls, yet scratch small enough for the allocator to reuse: call-wide
  multi-megabyte temporaries cost fresh pages, i.e. page faults, every
  tick), and each recorder's packets land in its buffer of frames ahead of
  the file with one row assignment through a strided window over it; late packets are
  counted and dropped.

Costs that stay per call and tick: the file append (one pwrite of the final
stretch of the buffer, which is the kernel's page-cache work) and a handful of
numpy calls; everything else is per packet and vectorised.

A recorder whose queue holds anything else this tick (its first packets, a
DTMF event, a new SSRC, a resync, a pause, another payload size) takes the
per-packet path of `pbx.media.recorder` for that tick, which gives the same
file: tests/unit/media/test_recorder_batch.py compares the two byte for byte.
The batch checks first and changes nothing until every packet passed, so a
refused recorder simply goes the other way.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable

import numpy as np

from pbx.media.recorder import PCMA, PCMU, Recorder, _Stream, g711_decoders

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
_LAW_ROW = np.zeros(128, dtype=np.uint16)
_LAW_ROW[PCMA] = 256
_BATCH_TYPES = np.zeros(128, dtype=bool)
_BATCH_TYPES[[PCMU, PCMA]] = True
_LITTLE = sys.byteorder == "little"


def flush_recorders(recorders: Iterable[Recorder], now: float) -> dict[Recorder, OSError]:
    """Flush many recorders at once: the steady-state packets of all of them in one
    vectorised pass, the others one by one (see the module docstring).

    Returns the recorders whose file write failed (disk full, gone) with the error;
    the others are flushed whatever happened to those.
    """
    batch: list[Recorder] = []
    slow: list[Recorder] = []
    for r in recorders:
        if r.closed:
            continue
        queues = r._queues
        if (queues[0] or queues[1]) and r._batchable and r.recording and not r._ingesting:
            batch.append(r)
        else:
            slow.append(r)
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
    for recorder in batch:
        try:
            recorder._write_horizon(now)
        except OSError as exc:
            failed[recorder] = exc
    return failed


class _Batch:
    """One vectorised ingest of several recorders' queues; see `flush_recorders`."""

    def __init__(self, recorders: list[Recorder]) -> None:
        self.recorders = recorders

    def run(self) -> list[Recorder]:
        """Place every queued packet, or change nothing and return the recorders whose
        queues need the per-packet path."""
        recorders = self.recorders
        queues = [queue for r in recorders for queue in r._queues]
        counts = [len(queue) >> 1 for queue in queues]  # datagram, arrival, datagram, ...
        entries = list(itertools.chain.from_iterable(queues))
        datas: list[bytes] = entries[0::2]  # type: ignore[assignment]
        total = len(datas)
        size = len(datas[0])
        joined = b"".join(datas)
        # entries come stream by stream (recorder, then channel): key is already sorted
        key = np.repeat(np.arange(len(queues)), counts)
        owner = key >> 1
        if len(joined) != size * total or min(map(len, datas)) != size:
            return _odd_sizes(recorders, datas, owner)
        if size <= 12:
            return recorders
        head = np.frombuffer(joined, dtype=_header_type(size))
        ts = head["ts"].astype(np.int64)
        pt = head["second"] & 0x7F
        arrival = np.array(entries[1::2], dtype=np.float64)
        state = _State(recorders)
        origin, offset = state.origin[owner], state.offset[owner]
        # an unanchored stream has ssrc -1, which no 32-bit SSRC equals
        good = (head["first"] == 0x80) & _BATCH_TYPES[pt] & (head["ssrc"] == state.ssrc[key])
        good &= arrival >= origin
        ext = _unwrap(ts, key, state.last_ts, state.ext_ts)
        payload = size - 12
        position = state.base[key] + ext
        heard = offset + np.rint((arrival - origin) * state.rate[owner]).astype(np.int64)
        good &= np.abs(position - (heard - payload)) <= state.resync[owner]
        good &= position >= offset
        if not good.all():
            return _pick(recorders, owner[~good])
        # the packets are taken: empty the tap's lists and move each stream on
        for queue in queues:
            queue.clear()
        bounds = [0, *itertools.accumulate(counts)]
        _move_streams(state.streams, counts, ts, ext, bounds)
        raw = np.frombuffer(joined, dtype=np.uint8).reshape(total, size)
        _Placement(state, owner, key & 1, position, payload).apply(recorders, raw, pt, bounds)
        return []


class _State:
    """Per-recorder and per-stream (index recorder * 2 + channel) state as arrays."""

    __slots__ = ("origin", "rate", "resync", "offset", "written", "frames", "streams", "ssrc",
                 "last_ts", "ext_ts", "base")  # fmt: skip

    def __init__(self, recorders: list[Recorder]) -> None:
        count = len(recorders)
        floats = [(r._origin, r.rate, r.resync * r.rate) for r in recorders]
        floats_array = np.fromiter(_flat(floats), dtype=np.float64, count=3 * count)
        self.origin, self.rate, self.resync = floats_array.reshape(count, 3).T
        ints = [(r._offset, r.written, r._frames) for r in recorders]
        ints_array = np.fromiter(_flat(ints), dtype=np.int64, count=3 * count)
        self.offset, self.written, self.frames = ints_array.reshape(count, 3).T
        self.streams = [s for r in recorders for s in r._streams]
        rows = [
            _UNANCHORED if s is None else (s.ssrc, s.last_ts, s.ext_ts, s.base_pos - s.base_ts)
            for s in self.streams
        ]
        streams = np.fromiter(_flat(rows), dtype=np.int64, count=8 * count)
        self.ssrc, self.last_ts, self.ext_ts, self.base = streams.reshape(2 * count, 4).T


_flat = itertools.chain.from_iterable


_UNANCHORED = (-1, 0, 0, 0)


def _move_streams(
    streams: list[_Stream | None], counts: list[int], ts: np.ndarray, ext: np.ndarray,
    bounds: list[int],
) -> None:  # fmt: skip
    """Each stream that had packets continues from its last one (RFC 3550 §5.1)."""
    ends = [end - 1 for end in bounds[1:]]
    last_ts, last_ext = ts[ends].tolist(), ext[ends].tolist()
    for stream, count, last, extended in zip(streams, counts, last_ts, last_ext, strict=True):
        if count:
            assert stream is not None
            stream.last_ts, stream.ext_ts = last, extended


class _Placement:
    """Where each accepted packet lands: its buffer row, and whether it is late or odd."""

    def __init__(
        self,
        state: _State,
        owner: np.ndarray,
        channel: np.ndarray,
        position: np.ndarray,
        payload: int,
    ) -> None:
        written, frames = state.written[owner], state.frames[owner]
        self.payload = payload
        self.channel, self.position = channel, position
        self.late = position + payload <= written
        ahead = position - written  # the packet's first frame in the buffer
        # a row that starts inside the file or ends past the buffer goes one by one
        self.fits = (ahead >= 0) & (ahead + payload <= frames)
        self.end = position + payload
        self.row = 2 * ahead + channel

    def apply(
        self, recorders: list[Recorder], raw: np.ndarray, pt: np.ndarray, bounds: list[int]
    ) -> None:
        """Count each recorder's packets, decode them a group of recorders at a time (one
        table lookup per group of up to `_GROUP` packets: few numpy calls, and scratch
        small enough that the allocator reuses it instead of mapping fresh pages every
        tick) and put each recorder's rows into its buffer with one assignment."""
        starts = bounds[0:-1:2]
        clean = np.logical_and.reduceat(self.fits, starts).tolist()
        late = np.add.reduceat(self.late, starts).tolist() if self.late.any() else None
        ends = np.maximum.reduceat(self.end, starts).tolist()  # where each one's audio ends
        size = self.payload
        self._payloads, self._types = raw[:, 12:], pt
        self._pairs = self._payloads.view(np.uint16) if size % 2 == 0 and _LITTLE else None
        groups = _groups(bounds)
        heads = [starts[lo] for lo, _hi in groups]
        low, high = np.minimum.reduceat(pt, heads).tolist(), np.maximum.reduceat(pt, heads).tolist()
        row = self.row
        for (lo, hi), least, most in zip(groups, low, high, strict=True):
            base = starts[lo]
            samples = self._decode(slice(base, bounds[2 * hi]), least if least == most else None)
            for index in range(lo, hi):
                recorder = recorders[index]
                first, end = starts[index], bounds[2 * index + 2]
                counted = recorder._counts
                counted["packets"] += end - first
                counted["decoded"] += end - first
                window = recorder._windows.get(size)
                if window is None:
                    window = recorder._window(size)
                if clean[index]:
                    window[row[first:end]] = samples[first - base : end - base]
                    if ends[index] > recorder._high:
                        recorder._high = ends[index]
                    continue
                if late is not None:
                    counted["late"] += late[index]
                self._place_odd(recorder, window, first, end, samples[first - base : end - base])

    def _decode(self, rows: slice, law: int | None) -> np.ndarray:
        """G.711 octets of the selected packets -> int16 samples by table (RFC 3551
        §4.5.14): with one law, two octets per lookup when the payload size is even."""
        if law is None:
            return _decode_both(self._payloads[rows], self._types[rows])
        if self._pairs is not None:
            return _PAIRS[law].take(self._pairs[rows], mode="clip").view(np.int16)
        return _LUT[law].take(self._payloads[rows], mode="clip")

    def _place_odd(
        self, recorder: Recorder, window: np.ndarray, first: int, end: int, samples: np.ndarray
    ) -> None:
        """A recorder with late packets or packets past its buffer: late ones are dropped,
        the rows that fit go in one assignment, then the others one by one (the buffer
        may grow for them, so the rows placed already count in `_high` first)."""
        keep = np.flatnonzero(~self.late[first:end])
        fits = keep[self.fits[first:end][keep]]
        if len(fits):
            window[self.row[first:end][fits]] = samples[fits]
            recorder._high = max(recorder._high, int(self.end[first:end][fits].max()))
        keep = keep[~self.fits[first:end][keep]]
        for i in keep.tolist():
            at = first + i
            recorder._put(int(self.channel[at]), int(self.position[at]), samples[i])


def _groups(bounds: list[int]) -> list[tuple[int, int]]:
    """Consecutive recorders (index ranges [lo, hi)) of up to `_GROUP` packets in all; a
    recorder with more than that is a group of its own. `bounds` are the stream bounds."""
    groups: list[tuple[int, int]] = []
    lo, base = 0, 0
    for index, end in enumerate(bounds[2::2]):
        if end - base > _GROUP and index > lo:
            groups.append((lo, index))
            lo, base = index, bounds[2 * index]
    groups.append((lo, len(bounds) // 2))
    return groups


_GROUP = 512  # packets decoded per table lookup: 160 KB of 20 ms G.711 samples


def _header_type(size: int) -> np.dtype:
    """The RTP fixed header fields the batch reads (RFC 3550 §5.1), one record per
    datagram of `size` octets."""
    found = _HEADER_TYPES.get(size)
    if found is None:
        found = _HEADER_TYPES[size] = np.dtype(
            {
                "names": ["first", "second", "ts", "ssrc"],
                "formats": ["u1", "u1", ">u4", ">u4"],
                "offsets": [0, 1, 4, 8],
                "itemsize": size,
            }
        )
    return found


_HEADER_TYPES: dict[int, np.dtype] = {}


def _odd_sizes(recorders: list[Recorder], datas: list[bytes], owner: np.ndarray) -> list[Recorder]:
    """Datagrams of several sizes: the recorders with any other than the most common size
    (or all, if that size has no payload) take the per-packet path."""
    lengths = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
    size = int(np.bincount(lengths).argmax())
    if size <= 12:
        return recorders
    return _pick(recorders, owner[lengths != size])


def _decode_both(payloads: np.ndarray, types: np.ndarray) -> np.ndarray:
    """G.711 octets (n, k) of a recorder whose packets mix PCMU and PCMA -> int16 samples,
    through one table of (law, octet), 512 entries (RFC 3551 §4.5.14)."""
    law = _LAW_ROW[types]  # 256 for a PCMA packet: its half of the table
    return _BOTH.take(np.add(payloads, law[:, None], dtype=np.uint16), mode="clip")


def _pick(recorders: list[Recorder], owners: np.ndarray) -> list[Recorder]:
    return [recorders[index] for index in np.unique(owners).tolist()]


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
