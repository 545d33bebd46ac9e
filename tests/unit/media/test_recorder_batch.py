"""The vectorised multi-recorder flush writes exactly what the per-packet path writes.

Each trace is fed twice: to recorders flushed together by `flush_recorders`
(the batch) and to twins flushed one by one through the per-packet path. The
files and the statistics must be identical, and the batch must really have
taken most packets (counted by spying on `_Batch.run`).
"""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import numpy as np
import pytest

from pbx.media import recorder_batch as recorder_module
from pbx.media.g711 import alaw_encode, ulaw_encode
from pbx.media.recorder import Recorder
from pbx.media.recorder_batch import flush_recorders
from pbx.media.relay import Leg
from pbx.media.wavfile import read_frames, read_info

Packet = tuple[Leg, bytes, float]


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, first: int = 0x80) -> bytes:
    return struct.pack("!BBHII", first, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def tone(freq: float, n: int, start: int) -> np.ndarray:
    t = np.arange(start, start + n) / 8000
    return (9000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def trace(
    seed: int, *, ts0: int = 1000, events: bool = False, resize: bool = False, late: bool = True
) -> list[Packet]:
    """Two legs of 20 ms packets for 3 s with jitter, reordering, loss and a late packet;
    leg B starts 0.5 s late and changes SSRC at 2 s."""
    rng = np.random.default_rng(seed)
    out: list[tuple[float, Packet]] = []
    for leg, pt, encode, freq in ((Leg.A, 0, ulaw_encode, 440.0), (Leg.B, 8, alaw_encode, 1000.0)):
        ssrc, base = (0xA0 + seed, ts0) if leg is Leg.A else (0xB0 + seed, ts0 + 777)
        for k in range(150):
            if leg is Leg.B and k < 25:
                continue
            if k == 100 and leg is Leg.B:
                ssrc, base = ssrc + 1, base + 5_000_000  # a new source with a jump
            if rng.random() < 0.05:
                continue  # lost
            size = 240 if resize and leg is Leg.A and k == 70 else 160
            payload = encode(tone(freq, size, k * 160))
            at = 10.0 + (k + 1) * 0.02 + rng.uniform(0, 0.03)
            if k == 60 and late:
                at += 0.5  # arrives after its stretch was written: late
            data = rtp(pt, k, base + k * 160, ssrc, payload)
            out.append((at, (leg, data, at)))
            if events and leg is Leg.A and k in (80, 81, 82):  # RFC 4733 "#" end x3
                event = rtp(101, 1000 + k, base + 80 * 160, ssrc, bytes.fromhex("0b8003 20"))
                out.append((at, (leg, event, at)))
    out.sort(key=lambda item: item[0])
    return [packet for _, packet in out]


def play(recorders: list[Recorder], traces: list[list[Packet]], batch: bool) -> None:
    for recorder in recorders:
        recorder.start(10.0)
    queues = [list(t) for t in traces]
    for tick in range(1, 20):
        now = 10.0 + tick * 0.2
        for recorder, queue in zip(recorders, queues, strict=True):
            while queue and queue[0][2] <= now:
                recorder.tap(*queue.pop(0))
        if batch:
            assert flush_recorders(recorders, now) == {}
        else:
            for recorder in recorders:
                recorder._flush_slow(now)
    for recorder in recorders:
        recorder.close(14.0)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many packets each successful batch took."""
    taken: list[int] = []
    real = recorder_module._Batch.run

    def run(self: recorder_module._Batch) -> list[Recorder]:
        before = sum(len(q) // 2 for r in self.recorders for q in r._queues)  # datagram, time
        refused = real(self)
        if not refused:
            taken.append(before)
        return refused

    monkeypatch.setattr(recorder_module._Batch, "run", run)
    return taken


@pytest.mark.parametrize(
    ("ts0", "events", "resize", "group"),
    [
        (1000, False, False, None),
        (0xFFFFF000, False, False, None),
        (7, True, True, None),
        (1000, False, False, 45),  # decoded a few calls at a time: groups split the calls
    ],
    ids=["plain", "timestamp-wrap", "events-and-odd-size", "small-decode-groups"],
)
def test_batch_writes_the_same_files_as_the_per_packet_path(
    tmp_path: Path,
    spy: list[int],
    monkeypatch: pytest.MonkeyPatch,
    ts0: int,
    events: bool,
    resize: bool,
    group: int | None,
) -> None:
    if group is not None:
        monkeypatch.setattr(recorder_module, "_GROUP", group)
    traces = [trace(seed, ts0=ts0, events=events, resize=resize) for seed in range(3)]
    digits: list[str] = []
    batched = [
        Recorder(tmp_path / f"batch-{i}.wav", on_digit=lambda e: digits.append(e.digit))
        for i in range(3)
    ]
    single = [Recorder(tmp_path / f"single-{i}.wav") for i in range(3)]
    play(batched, traces, batch=True)
    play(single, traces, batch=False)
    packets = sum(len(t) for t in traces)
    assert sum(spy) > packets * 0.6  # the batch did most of the work
    for one, other in zip(batched, single, strict=True):
        assert one.path.read_bytes() == other.path.read_bytes()
        assert one.stats == other.stats
        assert one.stats.late >= 1  # the k == 60 packet on each leg
        frames, rate = read_frames(one.path)
        assert rate == 8000 and len(frames) == round(4.0 * 8000) == read_info(one.path).frames
        assert np.abs(frames[: 8000 // 2, 1]).max() == 0  # leg B started 0.5 s late
        assert np.abs(frames[8000:16000]).max(axis=0).min() > 8000  # both tones present
    assert digits == (["#"] * 3 if events else [])


def test_a_paused_recorder_and_a_running_one_flush_together(tmp_path: Path, spy: list[int]) -> None:
    traces = [trace(5), trace(6)]
    paused, running = Recorder(tmp_path / "p.wav"), Recorder(tmp_path / "r.wav")
    paused.start(10.0)
    running.start(10.0)
    for leg, data, at in traces[0]:
        if at < 11.0:
            paused.tap(leg, data, at)
    for leg, data, at in traces[1]:
        if at < 11.0:
            running.tap(leg, data, at)
    flush_recorders([paused, running], 10.5)
    paused.stop(10.5)
    for recorder, packets in ((paused, traces[0]), (running, traces[1])):
        for leg, data, at in packets:
            if 11.0 <= at < 12.0:
                recorder.tap(leg, data, at)
    assert flush_recorders([paused, running], 12.0) == {}
    assert paused.written == round(0.5 * 8000)  # nothing after the pause point
    assert running.written == round((12.0 - 0.2 - 10.0) * 8000)
    assert spy  # the running one went through the batch at least once


def test_a_write_error_is_reported_for_that_recorder_only(tmp_path: Path) -> None:
    good, bad = Recorder(tmp_path / "good.wav"), Recorder(tmp_path / "bad.wav")
    for recorder in (good, bad):
        recorder.start(10.0)
    assert bad._writer is not None

    def full(data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    bad._writer.append_bytes = full  # type: ignore[method-assign]
    failed = flush_recorders([good, bad], 11.0)
    assert list(failed) == [bad] and failed[bad].errno == errno.ENOSPC
    assert good.written == round(0.8 * 8000)


def test_a_stalled_flush_grows_the_ring_and_loses_nothing(tmp_path: Path) -> None:
    """A loop stall of 3 s (longer than the 2 s ring) between flushes: the same file as
    flushing every 200 ms, and the ring grew instead of dropping audio."""
    packets = trace(9, late=False)  # a stall makes a late packet on time: leave it out
    steady, stalled = Recorder(tmp_path / "steady.wav"), Recorder(tmp_path / "stalled.wav")
    frames_before = stalled._frames
    for recorder, ticks in ((steady, range(1, 20)), (stalled, [1, 2, 3, 19])):
        recorder.start(10.0)
        queue = list(packets)
        for tick in ticks:
            now = 10.0 + tick * 0.2
            while queue and queue[0][2] <= now:
                recorder.tap(*queue.pop(0))
            recorder.flush(now)
        recorder.close(14.0)
    assert stalled._frames > frames_before
    assert steady.path.read_bytes() == stalled.path.read_bytes()
    assert steady.stats == stalled.stats and steady.stats.late == 0
    frames, _rate = read_frames(stalled.path)
    assert np.abs(frames[8000:24000]).max(axis=0).min() > 8000  # audio through the stall
