"""The recorder on synthetic RTP: placement, alignment, loss, jitter, reordering, length, DTMF.

Streams are generated here (tones encoded with a reference G.711 coder written
from ITU-T G.711's segment rules), fed through `Recorder.tap` in arrival
order with `flush` every 200 ms of a fake clock, and the WAV file is read
back. Because the recorder places audio by RTP timestamp, a channel must equal
the decoded source sample for sample, with zeros exactly where packets were
lost: that is the alignment check.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pbx.media.recorder import DigitReceived, Recorder, rtp_payload
from pbx.media.relay import Leg
from pbx.media.wavfile import read_frames, read_info

RATE = 8000
PTIME = 160  # samples per 20 ms packet


# ---- a reference G.711 coder (ITU-T G.711 segment tables, Sun's g711.c arithmetic) ----


def ulaw_encode(samples: np.ndarray) -> bytes:
    x = samples.astype(np.int32) >> 2  # G.711 mu-law works on 14-bit samples
    sign = np.where(x < 0, 0x80, 0x00)
    mag = np.minimum(np.abs(x), 8159) + 33
    seg = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 5, 0, 7)
    mantissa = (mag >> (seg + 1)) & 0x0F
    return ((sign | (seg << 4) | mantissa) ^ 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def alaw_encode(samples: np.ndarray) -> bytes:
    x = samples.astype(np.int32) >> 3  # A-law works on 13-bit samples
    sign = np.where(x >= 0, 0x80, 0x00)
    mag = np.where(x >= 0, x, -x - 1)
    seg = np.clip(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4, 0, 7)
    mantissa = np.where(seg < 2, mag >> 1, mag >> seg) & 0x0F
    return ((sign | (seg << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << (seg - 1)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


DECODERS = {0: ulaw_decode, 8: alaw_decode}
ENCODERS = {0: ulaw_encode, 8: alaw_encode}


def test_reference_coder_round_trips_its_own_codes():
    codes = bytes(range(256))
    assert ulaw_encode(ulaw_decode(codes)) == bytes(c if c != 0x7F else 0xFF for c in codes)
    assert alaw_encode(alaw_decode(codes)) == codes


# ---- synthetic streams --------------------------------------------------------------


@dataclass
class Packet:
    leg: Leg
    data: bytes
    arrival: float
    index: int  # packet number in the stream


def tone(freq: float, count: int, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(count) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    second = pt | (0x80 if marker else 0)
    return struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def stream(
    leg: Leg, signal: np.ndarray, start: float, *, pt: int = 0, ssrc: int = 0x1234,
    ts0: int = 1000, seq0: int = 7,
) -> list[Packet]:  # fmt: skip
    """Packet k carries signal[k*160:(k+1)*160] and arrives when its 20 ms are over."""
    packets = []
    for k in range(len(signal) // PTIME):
        payload = ENCODERS[pt](signal[k * PTIME : (k + 1) * PTIME])
        data = rtp(pt, seq0 + k, ts0 + k * PTIME, ssrc, payload)
        packets.append(Packet(leg, data, start + (k + 1) * PTIME / RATE, k))
    return packets


def expected(signal: np.ndarray, pt: int = 0) -> np.ndarray:
    return DECODERS[pt](ENCODERS[pt](signal))


def run(recorder: Recorder, packets: list[Packet], end: float, step: float = 0.2) -> None:
    """Feed packets in arrival order, flushing every `step` s of fake clock; close at `end`."""
    ordered = sorted(packets, key=lambda p: p.arrival)
    now = step
    for packet in ordered:
        while packet.arrival > now:
            recorder.flush(now)
            now += step
        recorder.tap(packet.leg, packet.data, packet.arrival)
    while now < end:
        recorder.flush(now)
        now += step
    recorder.close(end)


def new_recorder(tmp_path: Path, **kw) -> Recorder:
    recorder = Recorder(tmp_path / "rec" / "call.wav", decoders=DECODERS, **kw)
    recorder.start(0.0)
    return recorder


def dominant(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])


def band_energy(samples: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[np.abs(freqs - freq) < 20].sum())


# ---- tests ----------------------------------------------------------------------------


def test_caller_left_callee_right_by_fft_and_length_matches_the_call(tmp_path):
    a, b = tone(440, 5 * RATE), tone(1000, 5 * RATE)
    recorder = new_recorder(tmp_path)
    packets = stream(Leg.A, a, 0.0, pt=0) + stream(Leg.B, b, 0.0, pt=8, ssrc=99)
    run(recorder, packets, end=5.0)
    frames, rate = read_frames(recorder.path)
    assert rate == RATE and frames.shape == (5 * RATE, 2)
    left, right = frames[:, 0], frames[:, 1]
    assert dominant(left[RATE:]) == pytest.approx(440, abs=2)
    assert dominant(right[RATE:]) == pytest.approx(1000, abs=2)
    assert band_energy(left, 1000) < band_energy(left, 440) / 1000
    assert band_energy(right, 440) < band_energy(right, 1000) / 1000
    # sample-exact: packet k of each leg sits at k*160
    np.testing.assert_array_equal(left, expected(a, 0))
    np.testing.assert_array_equal(right, expected(b, 8))


def test_lost_packets_become_silence_and_the_rest_stays_in_place(tmp_path):
    a = tone(440, 4 * RATE)
    lost = {3, 4, 50, 51, 52, 99, 150}
    packets = [p for p in stream(Leg.A, a, 0.0) if p.index not in lost]
    packets += stream(Leg.B, tone(700, 4 * RATE), 0.0, ssrc=5)
    recorder = new_recorder(tmp_path)
    run(recorder, packets, end=4.0)
    frames, _ = read_frames(recorder.path)
    want = expected(a).copy()
    for k in lost:
        want[k * PTIME : (k + 1) * PTIME] = 0
    assert len(frames) == 4 * RATE
    np.testing.assert_array_equal(frames[:, 0], want)
    assert recorder.stats.decoded == 2 * 200 - len(lost)


def test_jitter_and_reordering_within_the_window_do_not_move_audio(tmp_path):
    rng = np.random.default_rng(7)
    a = tone(440, 3 * RATE)
    packets = stream(Leg.A, a, 0.0)
    for p in packets[1:]:  # the first packet anchors the stream: keep it on time
        p.arrival += float(rng.uniform(0.0, 0.08))  # up to 80 ms jitter: packets overtake
    order = [p.index for p in sorted(packets, key=lambda p: p.arrival)]
    assert order != sorted(order), "the jitter must reorder some packets"
    recorder = new_recorder(tmp_path)
    run(recorder, packets, end=3.0)
    frames, _ = read_frames(recorder.path)
    np.testing.assert_array_equal(frames[:, 0], expected(a))
    assert recorder.stats.late == 0


def test_a_packet_later_than_the_window_is_dropped_as_late(tmp_path):
    a = tone(440, 2 * RATE)
    packets = stream(Leg.A, a, 0.0)
    packets[40].arrival += 0.5  # written long before it arrives
    recorder = new_recorder(tmp_path)
    run(recorder, packets, end=2.0)
    frames, _ = read_frames(recorder.path)
    want = expected(a).copy()
    want[40 * PTIME : 41 * PTIME] = 0
    np.testing.assert_array_equal(frames[:, 0], want)
    assert recorder.stats.late == 1


def test_a_leg_that_starts_late_is_silent_until_it_starts(tmp_path):
    recorder = new_recorder(tmp_path)
    a, b = tone(440, 6 * RATE), tone(1000, 4 * RATE)
    packets = stream(Leg.A, a, 0.0) + stream(Leg.B, b, 2.0, ts0=555_555, ssrc=3)
    run(recorder, packets, end=6.0)
    frames, _ = read_frames(recorder.path)
    assert len(frames) == 6 * RATE
    assert not frames[: 2 * RATE, 1].any()
    np.testing.assert_array_equal(frames[2 * RATE :, 1], expected(b))
    np.testing.assert_array_equal(frames[:, 0], expected(a))


def test_silence_suppression_gap_is_filled_and_audio_resumes_at_its_timestamp(tmp_path):
    a = tone(440, 6 * RATE)
    packets = [p for p in stream(Leg.A, a, 0.0) if not 100 <= p.index < 200]  # 2 s..4 s unsent
    recorder = new_recorder(tmp_path)
    run(recorder, packets, end=6.0)
    frames, _ = read_frames(recorder.path)
    want = expected(a).copy()
    want[2 * RATE : 4 * RATE] = 0
    np.testing.assert_array_equal(frames[:, 0], want)


def test_network_delay_shifts_both_legs_alike_and_the_file_keeps_the_call_length(tmp_path):
    a, b = tone(440, 3 * RATE), tone(1000, 3 * RATE)
    pa, pb = stream(Leg.A, a, 0.0), stream(Leg.B, b, 0.0, ssrc=2)
    for p in pa + pb:
        p.arrival += 0.05  # 50 ms one-way delay on both legs
    recorder = new_recorder(tmp_path)
    run(recorder, pa + pb, end=3.1)
    frames, _ = read_frames(recorder.path)
    assert len(frames) == round(3.1 * RATE)
    delay = round(0.05 * RATE)
    np.testing.assert_array_equal(frames[delay : delay + 3 * RATE, 0], expected(a))
    np.testing.assert_array_equal(frames[delay : delay + 3 * RATE, 1], expected(b))
    assert not frames[:delay].any()


def test_timestamps_that_wrap_around_32_bits_keep_their_place(tmp_path):
    a = tone(440, 2 * RATE)
    packets = stream(Leg.A, a, 0.0, ts0=0xFFFFFFFF - 50 * PTIME, seq0=0xFFF0)
    packets[60].arrival, packets[61].arrival = packets[61].arrival, packets[60].arrival
    recorder = new_recorder(tmp_path)
    run(recorder, packets, end=2.0)
    frames, _ = read_frames(recorder.path)
    np.testing.assert_array_equal(frames[:, 0], expected(a))


def test_a_new_ssrc_or_a_timestamp_jump_is_anchored_at_its_arrival(tmp_path):
    a = tone(440, 4 * RATE)
    first = stream(Leg.A, a[: 2 * RATE], 0.0, ssrc=1, ts0=1000)
    second = stream(Leg.A, a[2 * RATE :], 2.0, ssrc=2, ts0=9_000_000)  # new source, new clock
    recorder = new_recorder(tmp_path)
    run(recorder, first + second, end=4.0)
    frames, _ = read_frames(recorder.path)
    np.testing.assert_array_equal(frames[:, 0], expected(a))


def test_the_header_is_valid_after_every_flush(tmp_path):
    recorder = new_recorder(tmp_path)
    packets = stream(Leg.A, tone(440, 2 * RATE), 0.0) + stream(Leg.B, tone(900, 2 * RATE), 0.0)
    packets.sort(key=lambda p: p.arrival)
    seen = []
    now = 0.2
    for packet in packets:
        if packet.arrival > now:
            recorder.flush(now)
            with wave.open(str(recorder.path), "rb") as reader:
                assert (reader.getnchannels(), reader.getsampwidth()) == (2, 2)
                assert reader.getframerate() == RATE
                assert reader.getnframes() == recorder.written
                assert len(reader.readframes(reader.getnframes())) == 4 * recorder.written
            assert recorder.written == round((now - 0.2) * RATE)
            seen.append(recorder.written)
            now += 0.2
        recorder.tap(packet.leg, packet.data, packet.arrival)
    assert len(seen) >= 8 and seen == sorted(seen) and seen[-1] > 0
    recorder.close(2.0)
    assert read_info(recorder.path).frames == 2 * RATE


def test_pause_and_resume_leave_out_the_paused_stretch(tmp_path):
    a = tone(440, 6 * RATE)
    packets = sorted(stream(Leg.A, a, 0.0), key=lambda p: p.arrival)
    recorder = new_recorder(tmp_path)
    now = 0.2
    for packet in packets:
        while packet.arrival > now:
            recorder.flush(now)
            if abs(now - 2.0) < 1e-9:
                recorder.stop(2.0)
            if abs(now - 4.0) < 1e-9:
                recorder.start(4.0)
            now = round(now + 0.2, 6)
        recorder.tap(packet.leg, packet.data, packet.arrival)
    recorder.close(6.0)
    frames, _ = read_frames(recorder.path)
    want = expected(a)
    assert len(frames) == 4 * RATE
    np.testing.assert_array_equal(frames[: 2 * RATE, 0], want[: 2 * RATE])
    # the resumed segment re-anchors at its first packet: 20 ms after the resume
    np.testing.assert_array_equal(frames[2 * RATE :, 0], want[4 * RATE :])


def event(code: int, end: bool, duration: int) -> bytes:
    return struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)


def test_telephone_events_are_reported_once_per_digit_and_are_not_audio(tmp_path):
    digits: list[DigitReceived] = []
    recorder = new_recorder(tmp_path, on_digit=digits.append)
    packets = stream(Leg.A, tone(440, 2 * RATE), 0.0)
    # '*' then '1' as RFC 4733 §2.5 sends them: start, continuation, three end packets
    for number, (code, at) in enumerate(((10, 0.5), (1, 1.0))):
        ts = 50_000 + number * 8000
        bodies = [event(code, False, 160), event(code, False, 320)] + [event(code, True, 480)] * 3
        for i, body in enumerate(bodies):
            data = rtp(101, 900 + 10 * number + i, ts, 0x1234, body, marker=i == 0)
            packets.append(Packet(Leg.B, data, at + 0.02 * i, -1))
    run(recorder, packets, end=2.0)
    assert [(d.leg, d.digit) for d in digits] == [(Leg.B, "*"), (Leg.B, "1")]
    assert digits[0].at == pytest.approx(0.54) and digits[1].at == pytest.approx(1.04)
    frames, _ = read_frames(recorder.path)
    assert not frames[:, 1].any()  # events never turn into samples


def test_unknown_payloads_and_malformed_packets_are_skipped(tmp_path):
    recorder = new_recorder(tmp_path)
    recorder.tap(Leg.A, b"\x80\x00", 0.01)  # shorter than a header
    recorder.tap(Leg.A, rtp(13, 1, 160, 1, b"\x40"), 0.02)  # comfort noise (RFC 3389)
    recorder.tap(Leg.A, rtp(18, 2, 320, 1, b"\x00" * 10), 0.04)  # G.729: not decoded
    recorder.close(1.0)
    stats = recorder.stats
    assert (stats.packets, stats.malformed, stats.decoded, stats.frames) == (3, 1, 0, RATE)
    assert not read_frames(recorder.path)[0].any()


def test_rtp_payload_skips_csrc_extension_and_padding():
    body = b"\x01\x02\x03"
    data = (
        struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 1, 0, 1, 2, 3)
        + struct.pack("!I", 77)  # one CSRC
        + struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"  # one extension word
        + body + b"\x00\x00\x03"  # three octets of padding
    )  # fmt: skip
    assert rtp_payload(data) == (0, 1, 2, 3, False, body)
    assert rtp_payload(data[:14]) is None
    assert rtp_payload(b"\x40" + data[1:]) is None


def test_nothing_is_written_before_start_and_a_never_started_recorder_leaves_no_file(tmp_path):
    recorder = Recorder(tmp_path / "x.wav", decoders=DECODERS)
    for p in stream(Leg.A, tone(440, RATE), 0.0):
        recorder.tap(p.leg, p.data, p.arrival)
    recorder.flush(1.0)
    recorder.close(1.0)
    assert not recorder.path.exists() and recorder.stats.decoded == 0


def test_default_decoders_are_the_g711_module():
    g711 = pytest.importorskip("pbx.media.g711", reason="pbx.media.g711 has not landed")
    recorder = Recorder(Path("/nonexistent.wav"))
    assert recorder.decoders[0] is g711.ulaw_decode and recorder.decoders[8] is g711.alaw_decode
    codes = bytes(range(256))
    np.testing.assert_array_equal(g711.ulaw_decode(codes), ulaw_decode(codes))
    np.testing.assert_array_equal(g711.alaw_decode(codes), alaw_decode(codes))
