"""Recording many calls at once: one vectorised numpy pass over every recorder's packets.

`flush_recorders(recorders, now)` is what `pbx.recording.RecordingManager.tick`
calls every 200 ms. In the steady state of a call (both streams anchored,
plain 12-byte RTP headers (RFC 3550 §5.1), PCMU/PCMA (RFC 3551 §6), the
stream's SSRC, timestamps that agree with arrival times) the packets of all
recorders of a tick are handled together (`_Batch`):

- the datagrams are joined once and their header fields read as columns;
- the 32-bit timestamps are unwrapped per stream (RFC 3550 §5.1) with a
  segmented cumulative sum, giving each packet its file position exactly as
  `Recorder._place` computes it packet by packet;
- payloads are decoded by table (two octets per lookup when one law is in
  use), and each recorder's packets land in its frame ring with one row
  assignment through a strided window over the ring.

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

from pbx.media.recorder import PCMA, PCMU, Recorder, g711_decoders

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
    for recorder in batch:
        try:
            recorder._write_horizon(now)
        except OSError as exc:
            failed[recorder] = exc
    return failed


def _queued(recorder: Recorder) -> bool:
    return bool(recorder._queues[0] or recorder._queues[1])


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
        if size <= 12:
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
        self._place(owner, channel, position, samples, late, fields)
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
        fields: dict[str, np.ndarray],
    ) -> None:
        """Put the on-time rows into the recorders' rings; count the late ones."""
        recorders = self.recorders
        if late.any():
            dropped = np.bincount(owner[late], minlength=len(recorders)).tolist()
            for recorder, count in zip(recorders, dropped, strict=True):
                recorder._counts["late"] += count
            keep = ~late
            owner, channel, position = owner[keep], channel[keep], position[keep]
            samples = samples[keep]
        size = samples.shape[1]
        frames, written = fields["frames"][owner], fields["written"][owner]
        slot = position % frames
        # a row that wraps round the ring or starts inside the file goes one by one
        fits = (slot + size <= frames) & (position >= written)
        fits &= position + size <= written + frames
        odd = [
            (int(owner[i]), int(channel[i]), int(position[i]), samples[i])
            for i in np.flatnonzero(~fits).tolist()
        ]
        if odd:
            owner, channel, slot, samples = owner[fits], channel[fits], slot[fits], samples[fits]
        row = 2 * slot + channel
        bounds = np.searchsorted(owner, np.arange(len(recorders) + 1)).tolist()
        for index, (first, end) in enumerate(itertools.pairwise(bounds)):
            if first < end:
                recorders[index]._window(size)[row[first:end]] = samples[first:end]
        for index, lane, at, values in odd:
            recorders[index]._ring_put(lane, at, values)


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
        "frames": np.array([r._frames for r in recorders], dtype=np.int64),
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
