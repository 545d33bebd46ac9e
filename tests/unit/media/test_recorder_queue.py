"""The recorder's storage: the tap's per-leg queues and the buffer of audio ahead of the file.

`Recorder.tap` queues each leg's datagram and then its arrival time on that
leg's list; the flushes place the audio into a buffer that starts at the end
of the file and slides after every append. These tests check that nothing is
lost or moved by that storage: both legs and both G.711 laws land sample for
sample, audio placed past a flush's horizon survives the slide, a recording
many times the buffer's length is exact, reordering within the window changes
nothing, a late packet is dropped and counted, and a packet longer than 20 ms
lands whole. Packet k of a stream carries RTP timestamp k * 160 and arrives
at 10.02 + 0.02 k (plus jitter), so with `start(10.0)` it belongs at frame
k * 160 of the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pbx.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from pbx.media.recorder import AHEAD, Recorder
from pbx.media.recorder_batch import flush_recorders
from pbx.media.relay import Leg
from pbx.media.wavfile import read_frames

PCMU, PCMA = 0, 8
SSRC = {Leg.A: 0x1111, Leg.B: 0x2222}
LAW = {PCMU: (ulaw_encode, ulaw_decode), PCMA: (alaw_encode, alaw_decode)}

Packet = tuple[Leg, bytes, float]


def rtp(pt: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, ts // 160 & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def payload(pt: int, k: int, size: int = 160) -> bytes:
    """`size` samples of a tone (a different pitch per law) from sample k * 160 on."""
    t = np.arange(k * 160, k * 160 + size) / 8000
    freq = 440.0 if pt == PCMU else 1000.0
    return LAW[pt][0]((9000 * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def stream(leg: Leg, pt: int, count: int, seed: int = 0, jitter: float = 0.0) -> list[Packet]:
    rng = np.random.default_rng(seed)
    return [
        (leg, rtp(pt, k * 160, SSRC[leg], payload(pt, k)),
         10.02 + 0.02 * k + (rng.uniform(0, jitter) if k else 0.0))
        for k in range(count)
    ]  # fmt: skip


def record(path: Path, packets: list[Packet], flushes: list[float], end: float) -> Recorder:
    """Tap `packets` in list order, each before the first flush time at or after its
    arrival, flushing (the batch) at each of `flushes`; close at `end`."""
    recorder = Recorder(path)
    recorder.start(10.0)
    queue = list(packets)
    for now in flushes:
        while queue and queue[0][2] <= now:
            recorder.tap(*queue.pop(0))
        assert flush_recorders([recorder], now) == {}
    for packet in queue:
        recorder.tap(*packet)
    recorder.close(end)
    return recorder


def expected(pt: int, count: int) -> np.ndarray:
    return np.concatenate([LAW[pt][1](payload(pt, k)) for k in range(count)])


def by_arrival(*streams: list[Packet]) -> list[Packet]:
    return sorted((p for s in streams for p in s), key=lambda p: p[2])


def test_the_tap_queues_each_legs_datagram_then_its_arrival(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "q.wav")
    a1, b1, a2 = b"\x80\x00first-a", b"\x80\x08first-b", b"\x80\x00second-a"
    recorder.tap(Leg.A, a1, 10.02)
    recorder.tap(Leg.B, b1, 10.02)
    recorder.tap(Leg.A, a2, 10.04)
    assert recorder._queues == ([a1, 10.02, a2, 10.04], [b1, 10.02])
    assert recorder._take_queue() == [(Leg.A, a1, 10.02), (Leg.B, b1, 10.02), (Leg.A, a2, 10.04)]
    assert recorder._queues == ([], [])
    recorder.tap(Leg.B, b1, 10.06)  # the tap still appends to the emptied lists
    assert recorder._queues == ([], [b1, 10.06])


def test_both_legs_and_both_laws_land_sample_for_sample(tmp_path: Path) -> None:
    packets = by_arrival(stream(Leg.A, PCMU, 60, 1, 0.01), stream(Leg.B, PCMA, 60, 2, 0.01))
    recorder = record(tmp_path / "laws.wav", packets, [10.0 + 0.2 * i for i in range(1, 7)], 11.3)
    frames, _rate = read_frames(recorder.path)
    assert len(frames) == 10400  # up to the close, 1.3 s
    assert np.array_equal(frames[:9600, 0], expected(PCMU, 60))
    assert np.array_equal(frames[:9600, 1], expected(PCMA, 60))
    assert not frames[9600:].any()
    assert recorder.stats.decoded == 120 and recorder.stats.late == 0


@pytest.mark.parametrize("step", [0.2, 0.0125 * 7, 0.37])
def test_audio_placed_past_a_flush_horizon_slides_intact(tmp_path: Path, step: float) -> None:
    """Flush horizons that fall inside packets, with jitter placing packets well past
    them: the same file as one write at the end."""
    packets = by_arrival(stream(Leg.A, PCMU, 100, 3, 0.04), stream(Leg.B, PCMA, 100, 4, 0.04))
    flushes = [10.0 + step * i for i in range(1, int(2.0 / step) + 1)]
    sliced = record(tmp_path / "sliced.wav", packets, flushes, 12.1)
    once = record(tmp_path / "once.wav", packets, [], 12.1)
    assert sliced.path.read_bytes() == once.path.read_bytes()
    frames, _rate = read_frames(sliced.path)
    assert np.array_equal(frames[:16000, 0], expected(PCMU, 100))
    assert np.array_equal(frames[:16000, 1], expected(PCMA, 100))


def test_a_recording_many_times_the_buffer_long_is_exact(tmp_path: Path) -> None:
    count = int(3.5 * AHEAD / 0.02)  # 7 s: the buffer's front is reused some 20 times
    packets = by_arrival(stream(Leg.A, PCMA, count, 5, 0.01), stream(Leg.B, PCMU, count, 6))
    flushes = [10.0 + 0.33 * i for i in range(1, int(count * 0.02 / 0.33) + 1)]
    recorder = record(tmp_path / "long.wav", packets, flushes, 10.0 + count * 0.02 + 0.1)
    frames, _rate = read_frames(recorder.path)
    assert np.array_equal(frames[: count * 160, 0], expected(PCMA, count))
    assert np.array_equal(frames[: count * 160, 1], expected(PCMU, count))
    assert recorder._frames == round(AHEAD * 8000)  # it never needed to grow


def test_reordering_within_the_window_changes_nothing(tmp_path: Path) -> None:
    packets = by_arrival(stream(Leg.A, PCMU, 50), stream(Leg.B, PCMA, 50))
    swapped = list(packets)
    for i in range(2, len(swapped) - 4, 6):  # swap pairs of packets; A's first stays first
        swapped[i], swapped[i + 3] = swapped[i + 3], swapped[i]
    flushes = [10.0 + 0.2 * i for i in range(1, 6)]
    in_order = record(tmp_path / "in.wav", packets, flushes, 11.1)
    reordered = record(tmp_path / "re.wav", swapped, flushes, 11.1)
    assert in_order.path.read_bytes() == reordered.path.read_bytes()
    assert reordered.stats.late == 0


def test_a_packet_for_a_written_stretch_is_dropped_and_counted(tmp_path: Path) -> None:
    packets = stream(Leg.A, PCMU, 40)
    lost = packets.pop(10)  # packet 10 (frames 1600-1760) comes 0.5 s late
    packets.append((lost[0], lost[1], lost[2] + 0.5))
    packets.sort(key=lambda p: p[2])
    recorder = record(tmp_path / "late.wav", packets, [10.0 + 0.2 * i for i in range(1, 5)], 10.9)
    frames, _rate = read_frames(recorder.path)
    assert recorder.stats.late == 1 and recorder.stats.decoded == 40
    assert not frames[1600:1760, 0].any()  # silence where it belonged
    assert np.array_equal(frames[1760:6400, 0], expected(PCMU, 40)[1760:])


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "per-packet"])
def test_a_packet_longer_than_20_ms_lands_whole(tmp_path: Path, batch: bool) -> None:
    """A 40 ms packet (320 octets) in place of packets 10 and 11 of a 20 ms stream, on the
    batch and on the per-packet path: the file is the tone without a gap."""
    packets = [p for k, p in enumerate(stream(Leg.A, PCMA, 30)) if k not in (10, 11)]
    big = (Leg.A, rtp(PCMA, 1600, SSRC[Leg.A], payload(PCMA, 10, 320)), 10.02 + 0.02 * 11)
    packets = sorted([*packets, big], key=lambda p: p[2])
    flushes = [10.0 + 0.2 * i for i in range(1, 4)]
    if batch:
        recorder = record(tmp_path / "big.wav", packets, flushes, 10.7)
    else:
        recorder = Recorder(tmp_path / "big.wav")
        recorder.start(10.0)
        for now in flushes:
            while packets and packets[0][2] <= now:
                recorder.tap(*packets.pop(0))
            recorder._flush_slow(now)
        for packet in packets:
            recorder.tap(*packet)
        recorder.close(10.7)
    frames, _rate = read_frames(recorder.path)
    assert len(frames) == 5600
    assert np.array_equal(frames[:4800, 0], expected(PCMA, 30))
    assert not frames[4800:].any() and not frames[:, 1].any()
    assert recorder.stats.decoded == 29
