"""The adaptive jitter buffer on simulated traces: order, loss, lateness, adaptation, resets.

Every trace is a list of packets with an arrival time on a fake clock; the
simulator pushes what has arrived and pops once per 20 ms, never sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from pbx.media.jitter import Concealer, Frame, FrameKind, JitterBuffer, Push

PERIOD = 0.020


@dataclass(frozen=True)
class Sent:
    seq: int
    ts: int
    arrival: float
    ssrc: int = 0x1234
    payload: bytes = b""


def stream(
    count: int,
    delays: list[float] | None = None,
    *,
    seq0: int = 1000,
    ts0: int = 0,
    start: float = 10.0,
    drift: float = 0.0,
) -> list[Sent]:
    """`count` 20 ms packets sent at start + i * 20 ms * (1 + drift), arriving after delays[i]."""
    out = []
    for i in range(count):
        delay = 0.050 if delays is None else delays[i]
        seq = (seq0 + i) & 0xFFFF
        out.append(
            Sent(
                seq,
                (ts0 + 160 * i) & 0xFFFFFFFF,
                start + i * PERIOD * (1 + drift) + delay,
                payload=i.to_bytes(4, "big"),
            )
        )
    return out


def run(
    jb: JitterBuffer, packets: list[Sent], *, phase: float = 0.007, tail: float = 1.0
) -> list[tuple[float, Frame]]:
    """Push by arrival, pop every 20 ms; returns (pop time, frame) for every frame."""
    pending = sorted(packets, key=lambda p: p.arrival)
    end = pending[-1].arrival + tail
    frames = []
    index = 0
    now = pending[0].arrival + phase
    for _ in range(int((end - now) / PERIOD) + 1):
        while index < len(pending) and pending[index].arrival <= now:
            p = pending[index]
            jb.push(p.seq, p.ts, p.payload, p.arrival, ssrc=p.ssrc)
            index += 1
        frame = jb.pop(now)
        if frame is not None:
            frames.append((now, frame))
        now += PERIOD
    return frames


def numbered(frames: list[tuple[float, Frame]]) -> list[tuple[FrameKind, int]]:
    return [(f.kind, f.sequence) for _, f in frames if f.sequence is not None]


def assert_in_order(
    frames: list[tuple[float, Frame]], first: int, count: int, jb: JitterBuffer
) -> None:
    """Sequence numbers play in order, and every packet sent is accounted for once."""
    index = [(s - first) & 0xFFFF for _, s in numbered(frames)]
    assert index == sorted(index) and len(set(index)) == len(index)
    voice = [(s - first) & 0xFFFF for kind, s in numbered(frames) if kind is FrameKind.VOICE]
    assert voice[0] == 0 and voice[-1] == count - 1
    assert accounted(jb) == count


def accounted(jb: JitterBuffer) -> int:
    """Every packet sent is played, skipped to shrink the delay, dropped late, or lost."""
    s = jb.stats
    return s.played + s.skipped + s.late + s.lost


def test_constant_delay_plays_everything_in_order() -> None:
    jb = JitterBuffer()
    frames = run(jb, stream(500))
    assert_in_order(frames, 1000, 500, jb)
    kinds = [f.kind for _, f in frames]
    assert kinds[:-3] == [FrameKind.VOICE] * (len(frames) - 3)  # then the stream stops
    assert [f.payload for _, f in frames if f.payload][:3] == [
        b"\0\0\0\0",
        b"\0\0\0\1",
        b"\0\0\0\2",
    ]
    # the initial 60 ms shrinks to the 20 ms floor: two frames skipped, nothing else lost
    assert (jb.stats.played, jb.stats.skipped, jb.stats.lost, jb.stats.late) == (498, 2, 0, 0)
    assert jb.stats.stretched == 0 and jb.stats.duplicate == 0
    assert jb.jitter < 1e-6
    assert jb.delay is not None and 0.020 <= jb.delay < 0.045


def test_first_frame_waits_for_the_initial_target_delay() -> None:
    jb = JitterBuffer(initial_delay=0.060)
    jb.push(1, 0, b"x", 0.0)
    assert jb.pop(0.03) is None
    assert jb.pop(0.059) is None
    frame = jb.pop(0.061)
    assert frame == Frame(FrameKind.VOICE, 0, b"x", 1)


def test_gaussian_jitter_keeps_order_and_few_late_packets() -> None:
    rng = random.Random(1)
    delays = [0.050 + max(0.0, rng.gauss(0.020, 0.010)) for _ in range(3000)]
    jb = JitterBuffer()
    frames = run(jb, stream(3000, delays))
    assert_in_order(frames, 1000, 3000, jb)
    assert jb.stats.late / 3000 < 0.02
    assert jb.stats.lost == 0  # every late packet did arrive, so none is lost for good
    assert accounted(jb) == 3000
    assert 0.005 < jb.jitter < 0.015
    assert jb.delay is not None and jb.delay > 0.030


def test_random_loss_is_counted_exactly() -> None:
    rng = random.Random(2)
    packets = stream(2000)
    kept = [p for p in packets if rng.random() > 0.05 or p.seq in (1000, 2999)]
    dropped = 2000 - len(kept)
    jb = JitterBuffer()
    frames = run(jb, kept)
    assert_in_order(frames, 1000, 2000, jb)
    missing = {p.seq for p in packets} - {p.seq for p in kept}
    assert jb.stats.lost == dropped == len(missing)
    # a loss shows as a LOST frame with its number, or (buffer dry) one without
    lost = {s for kind, s in numbered(frames) if kind is FrameKind.LOST}
    voice = {s for kind, s in numbered(frames) if kind is FrameKind.VOICE}
    assert lost <= missing and not voice & missing
    unnumbered = [f for _, f in frames if f.lost and f.sequence is None]
    assert len(lost) + len(unnumbered) >= dropped
    assert jb.stats.late == 0 and jb.stats.played + jb.stats.skipped == len(kept)


def test_bursty_loss_including_long_bursts() -> None:
    rng = random.Random(3)
    packets = stream(3000)
    kept, bad = [], False
    for p in packets:  # Gilbert model: 2 % into a burst, 30 % out of it
        bad = rng.random() < (0.70 if bad else 0.02)
        if not bad or p.seq == 3999:
            kept.append(p)
    burst = [p for p in kept if not 2000 <= p.seq < 2015]  # and one 300 ms burst
    jb = JitterBuffer()
    frames = run(jb, burst)
    voice = [s for kind, s in numbered(frames) if kind is FrameKind.VOICE]
    assert set(voice) <= {p.seq for p in burst} and voice == sorted(voice)
    assert len(voice) + jb.stats.skipped == len(burst)
    assert jb.stats.lost == 3000 - len(burst)
    assert jb.stats.late == 0 and accounted(jb) == 3000


def test_reordered_pairs_come_out_in_order() -> None:
    packets = stream(400)
    swapped = []
    for i, p in enumerate(packets):
        if i % 10 == 3:  # the packet overtakes its predecessor by 5 ms
            swapped.append(Sent(p.seq, p.ts, p.arrival - 0.025, payload=p.payload))
        else:
            swapped.append(p)
    jb = JitterBuffer()
    frames = run(jb, swapped)
    assert_in_order(frames, 1000, 400, jb)
    assert (jb.stats.played + jb.stats.skipped, jb.stats.lost, jb.stats.late) == (400, 0, 0)


def test_sequence_and_timestamp_wrap_around() -> None:
    jb = JitterBuffer()
    packets = stream(300, seq0=65400, ts0=0xFFFFFFFF - 160 * 100)
    frames = run(jb, packets)
    assert_in_order(frames, 65400, 300, jb)
    assert accounted(jb) == 300 and jb.stats.lost == 0 and jb.stats.resets == 0
    stamps = {f.sequence: f.timestamp for _, f in frames if f.kind is FrameKind.VOICE}
    assert stamps[65500] == 0xFFFFFFFF and stamps[65501] == 159
    assert stamps[65535] == 159 + 160 * 34 and stamps[0] == 159 + 160 * 35


def test_duplicates_are_dropped() -> None:
    packets = stream(200)
    doubled = packets + [Sent(p.seq, p.ts, p.arrival + 0.001, payload=p.payload) for p in packets]
    jb = JitterBuffer()
    frames = run(jb, doubled)
    assert_in_order(frames, 1000, 200, jb)
    assert jb.stats.duplicate == 200 and accounted(jb) == 200 and jb.stats.lost == 0


def test_push_reports_duplicate_and_late() -> None:
    jb = JitterBuffer(initial_delay=0.020)
    assert jb.push(10, 0, b"a", 0.0) is Push.ACCEPTED
    assert jb.push(10, 0, b"a", 0.001) is Push.DUPLICATE
    assert jb.push(12, 320, b"c", 0.040) is Push.ACCEPTED
    assert jb.pop(0.041).sequence == 10  # type: ignore[union-attr]
    assert jb.pop(0.061).kind is FrameKind.LOST  # type: ignore[union-attr]
    assert jb.push(11, 160, b"b", 0.070) is Push.LATE
    assert jb.push(10, 0, b"a", 0.071) is Push.DUPLICATE
    assert (jb.stats.lost, jb.stats.late, jb.stats.duplicate) == (0, 1, 2)


def test_one_very_late_packet_is_dropped_and_concealed() -> None:
    packets = stream(300)
    late = [
        p if p.seq != 1100 else Sent(p.seq, p.ts, p.arrival + 0.5, payload=p.payload)
        for p in packets
    ]
    jb = JitterBuffer()
    frames = run(jb, late)
    assert_in_order(frames, 1000, 300, jb)
    voice = [s for kind, s in numbered(frames) if kind is FrameKind.VOICE]
    assert 1100 not in voice and voice[voice.index(1099) + 1] == 1101
    assert FrameKind.LOST in [f.kind for _, f in frames[:200]]
    assert jb.stats.late == 1 and jb.stats.lost == 0 and accounted(jb) == 300


def test_delay_grows_under_jitter_and_shrinks_back() -> None:
    rng = random.Random(4)
    calm, rough = 500, 750
    delays = [0.050] * calm
    delays += [0.050 + abs(rng.gauss(0.0, 0.040)) for _ in range(rough)]
    delays += [0.050] * 1000
    jb = JitterBuffer()
    frames = run(jb, stream(len(delays), delays))
    played_at = {f.sequence: (now, jb) for now, f in frames if f.kind is FrameKind.VOICE}
    assert len(played_at) > 2000

    def delay_of(seq_index: int) -> float:
        seq = 1000 + seq_index
        now = next(now for now, f in frames if f.sequence == seq and f.kind is FrameKind.VOICE)
        return now - (10.0 + seq_index * PERIOD + 0.050)  # beyond the fastest transit

    before = delay_of(calm - 10)
    during = delay_of(calm + rough - 10)
    after = delay_of(len(delays) - 10)
    assert before < 0.045
    assert during > 0.100
    assert after < 0.045
    assert jb.stats.stretched > 0 and jb.stats.skipped > 0
    assert jb.target == jb.min_delay


def test_small_clock_drift_either_way() -> None:
    """A sender clock 1000 ppm fast or slow over two minutes: 6 frames of surplus or deficit."""
    for drift, surplus in ((-0.001, 6), (0.001, -6)):
        jb = JitterBuffer()
        frames = run(jb, stream(6000, drift=drift))
        voice = [s for kind, s in numbered(frames) if kind is FrameKind.VOICE]
        assert voice == sorted(voice)
        assert (jb.stats.late, jb.stats.lost) == (0, 0)
        assert jb.stats.played + jb.stats.skipped == 6000
        # the 60 ms start shrinks by two frames; then the drift's surplus is skipped,
        # or its deficit stretched, never more than a frame beyond it
        assert jb.stats.skipped - 2 - jb.stats.stretched in (surplus - 1, surplus, surplus + 1)
        assert abs(jb.stats.skipped - 2) + jb.stats.stretched <= abs(surplus) + 1
        assert len(jb) == 0


def test_timestamp_jump_with_marker_is_absorbed() -> None:
    first = stream(100)
    second = [
        Sent(p.seq + 100, (p.ts + 5_000_000) & 0xFFFFFFFF, p.arrival + 2.0 + 0.2, payload=p.payload)
        for p in first
    ]
    jb = JitterBuffer()
    frames = run(jb, first + second)
    assert_in_order(frames, 1000, 200, jb)
    assert jb.stats.timestamp_jumps == 1
    assert (jb.stats.lost, jb.stats.late, jb.stats.resets) == (0, 0, 0)
    assert accounted(jb) == 200


def test_silence_gap_dtx_plays_silence_not_loss() -> None:
    first = stream(50)
    # the next talkspurt: sequence continues, timestamps and arrival jump 40 ms (DTX)
    second = [
        Sent(p.seq + 50, p.ts + 50 * 160 + 320, p.arrival + 1.0 + 0.04, payload=p.payload)
        for p in first
    ]
    jb = JitterBuffer()
    frames = run(jb, first + second)
    assert_in_order(frames, 1000, 100, jb)
    assert jb.stats.lost == 0 and accounted(jb) == 100 and jb.stats.timestamp_jumps == 0
    assert jb.stats.silence > 0


def test_ssrc_change_resets_the_stream() -> None:
    old = stream(100)
    new = [
        Sent(p.seq, p.ts, p.arrival + 2.1, ssrc=0x9999, payload=p.payload)
        for p in stream(100, seq0=7, ts0=123456)
    ]
    jb = JitterBuffer()
    frames = run(jb, old + new)
    voice = [s for kind, s in numbered(frames) if kind is FrameKind.VOICE]
    assert voice[0] == 1000 and voice[-1] == 106 and 1099 in voice and 7 in voice
    assert voice.index(1099) + 1 == voice.index(7)
    assert jb.stats.resets == 1 and accounted(jb) == 200 and jb.stats.lost == 0


def test_sequence_jump_beyond_max_dropout_resets() -> None:
    jb = JitterBuffer()
    frames = run(jb, stream(50) + stream(50, seq0=30000, start=11.5))
    assert jb.stats.resets == 1
    voice = [s for kind, s in numbered(frames) if kind is FrameKind.VOICE]
    assert voice[voice.index(1049) + 1] == 30000 and voice[-1] == 30049


def test_idle_when_the_stream_stops() -> None:
    jb = JitterBuffer()
    frames = run(jb, stream(20), tail=1.0)
    kinds = [f.kind for _, f in frames]
    assert kinds == [FrameKind.VOICE] * (20 - jb.stats.skipped) + [FrameKind.LOST] * 3
    assert [f.sequence for _, f in frames[-3:]] == [None] * 3  # concealed, then idle
    assert jb.stats.lost == 0  # trailing frames of a stopped stream are not loss
    assert not jb.playing


def test_overflow_drops_the_oldest() -> None:
    jb = JitterBuffer(max_delay=0.1)
    for i in range(jb.capacity + 5):
        jb.push(i, i * 160, b"", 0.0)
    assert len(jb) == jb.capacity and jb.stats.overflow == 5


def test_concealer_repeats_with_fading_gain_then_silence() -> None:
    plc = Concealer()
    frame = np.full(160, 1000, dtype=np.int16)
    assert plc.good(frame) is frame
    first = plc.conceal()
    assert first[0] == 1000 and first[80] == round(1000 * (1 - 80 / 480))
    second = plc.conceal()
    assert second[0] == round(1000 * (1 - 160 / 480))
    third = plc.conceal()
    assert third[-1] == round(1000 * (1 - 479 / 480)) == 2
    assert not plc.conceal().any()  # after 60 ms of loss: silence
    plc.good(np.full(160, -500, dtype=np.int16))
    assert plc.conceal()[0] == -500  # a good frame restarts the fade


def test_timestamp_jump_mid_stream_either_way_is_seamless() -> None:
    for jump in (5_000_000, -5_000_000):
        packets = stream(200)
        rebased = [
            p if i < 100 else Sent(p.seq, (p.ts + jump) & 0xFFFFFFFF, p.arrival, payload=p.payload)
            for i, p in enumerate(packets)
        ]
        jb = JitterBuffer()
        frames = run(jb, rebased)
        assert_in_order(frames, 1000, 200, jb)
        assert jb.stats.timestamp_jumps == 1
        assert (jb.stats.lost, jb.stats.late, jb.stats.silence, jb.stats.resets) == (0, 0, 0, 0)
        kinds = [f.kind for _, f in frames[:-3]]
        assert FrameKind.LOST not in kinds and FrameKind.SILENCE not in kinds


def test_marker_bit_lets_the_delay_grow_in_silence_not_in_speech() -> None:
    kinds = {}
    for marker in (True, False):
        jb = JitterBuffer(initial_delay=0.020)
        for i in range(10):
            jb.push(i, 160 * i, b"v", 0.02 * i)
            assert jb.pop(0.02 * i + 0.027).kind is FrameKind.VOICE  # type: ignore[union-attr]
        jb.min_delay = 0.100  # as if the jitter had just risen: the target is 100 ms
        for i in range(10, 14):
            jb.push(i, 160 * i, b"v", 0.02 * i, marker=marker and i == 10)
        kinds[marker] = [jb.pop(0.02 * i + 0.027).kind for i in range(10, 14)]  # type: ignore[union-attr]
    assert kinds[True] == [FrameKind.SILENCE] * 4  # waits for packet 10's due time, 0.300 s
    assert kinds[False][0] is FrameKind.STRETCH and FrameKind.SILENCE not in kinds[False]


def test_render_decodes_conceals_and_silences() -> None:
    from pbx.media.g711 import ulaw_decode, ulaw_encode

    plc = Concealer()
    tone = np.full(160, 4000, dtype=np.int16)
    voice = plc.render(Frame(FrameKind.VOICE, 0, ulaw_encode(tone), 1), ulaw_decode)
    assert voice.shape == (160,) and abs(int(voice[0]) - 4000) < 150
    lost = plc.render(Frame(FrameKind.LOST, 160, None, 2), ulaw_decode)
    assert lost[0] == voice[0] and abs(int(lost[-1])) < abs(int(voice[-1]))
    stretched = plc.render(Frame(FrameKind.STRETCH, 320), ulaw_decode)
    assert 0 < stretched[0] < lost[0]  # the fade carries on
    assert not plc.render(Frame(FrameKind.SILENCE, 480), ulaw_decode).any()
    assert not plc.render(None, ulaw_decode).any()
    assert not plc.render(Frame(FrameKind.LOST, 640), ulaw_decode).any()  # nothing to repeat
