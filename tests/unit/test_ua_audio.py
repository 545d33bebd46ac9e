"""Audio port, sources and sinks of the user agent (pbx.ua.audio)."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from pbx.ua.audio import (
    FRAME_SAMPLES,
    AudioPort,
    FrameRecorder,
    TeeSink,
    ToneSource,
    WavRecorder,
    WavSource,
    dominant_frequency,
    read_wav,
    resample,
)


def test_default_source_is_silence():
    port = AudioPort()
    frame = port.next_frame()
    assert frame.dtype == np.int16 and frame.shape == (FRAME_SAMPLES,) and not frame.any()


def test_an_iterator_source_runs_dry_into_silence():
    frames = [np.full(160, 5, np.int16), np.full(160, 7, np.int16)]
    port = AudioPort(iter(frames))
    assert [int(port.next_frame()[0]) for _ in range(3)] == [5, 7, 0]


def test_a_list_source_and_short_or_float_frames_are_fitted():
    port = AudioPort([np.array([1.4, -2.6, 99999.0])])
    frame = port.next_frame()
    assert frame.tolist()[:4] == [1, -3, 32767, 0] and frame.size == 160


def test_a_callable_source_returning_none_gives_silence():
    port = AudioPort(lambda: None)
    assert not port.next_frame().any()


def test_the_sink_gets_frames_and_can_be_swapped():
    first, second = FrameRecorder(), FrameRecorder()
    port = AudioPort(sink=first)
    port.deliver(np.ones(160, np.int16))
    port.sink = second
    port.deliver(np.full(160, 2, np.int16))
    assert (len(first.frames), len(second.frames)) == (1, 1)
    assert int(second.samples()[0]) == 2


def test_tone_source_is_phase_continuous_at_its_frequency():
    tone = ToneSource(1000.0, 10000.0)
    samples = np.concatenate([tone() for _ in range(25)])
    assert abs(dominant_frequency(samples) - 1000.0) < 5
    assert 9900 <= np.abs(samples).max() <= 10000
    whole = np.round(10000 * np.sin(2 * np.pi * 1000 * np.arange(4000) / 8000)).astype(np.int16)
    assert np.array_equal(samples, whole)


def _write(path, samples, rate, channels=1, width=2):
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def test_read_wav_resamples_stereo_44k1_to_8k_mono(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    left = np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2")
    stereo = np.column_stack([left, left]).reshape(-1)
    _write(tmp_path / "s.wav", stereo, rate, channels=2)
    mono = read_wav(tmp_path / "s.wav")
    assert mono.size == 8000
    assert abs(dominant_frequency(mono) - 500.0) < 5
    assert 7000 < np.abs(mono).max() <= 8100


def test_read_wav_takes_8_bit(tmp_path):
    _write(tmp_path / "b.wav", np.array([128, 255, 0], np.uint8), 8000, width=1)
    assert read_wav(tmp_path / "b.wav").tolist() == [0, 32512, -32768]


def test_read_wav_refuses_24_bit(tmp_path):
    _write(tmp_path / "c.wav", np.zeros(6, np.uint8), 8000, width=3)
    with pytest.raises(ValueError, match="24-bit"):
        read_wav(tmp_path / "c.wav")


def test_wav_source_plays_once_then_silence_or_loops(tmp_path):
    _write(tmp_path / "p.wav", np.arange(200, dtype="<i2"), 8000)
    once = WavSource(tmp_path / "p.wav")
    assert once().tolist()[:2] == [0, 1]
    second = once()
    assert second.tolist()[:40] == list(range(160, 200)) and not second[40:].any()
    assert once.finished and once() is None
    looped = WavSource(tmp_path / "p.wav", loop=True)
    looped(), looped()
    assert looped().tolist()[:2] == [0, 1]


def test_wav_recorder_round_trips_what_it_heard(tmp_path):
    recorder = WavRecorder(tmp_path / "r.wav")
    frames = [np.full(160, i, np.int16) for i in range(-3, 3)]
    for frame in frames:
        recorder(frame)
    recorder.close()
    recorder(frames[0])  # after close: ignored
    assert recorder.frames == 6
    assert np.array_equal(read_wav(tmp_path / "r.wav"), np.concatenate(frames))


def test_tee_sink_feeds_all():
    a, b = FrameRecorder(), FrameRecorder()
    TeeSink(a, b)(np.ones(160, np.int16))
    assert len(a.frames) == len(b.frames) == 1


def test_frame_recorder_is_bounded():
    recorder = FrameRecorder(max_seconds=0.04)
    for _ in range(5):
        recorder(np.zeros(160, np.int16))
    assert len(recorder.frames) == 2


def test_resample_keeps_the_same_rate_untouched():
    data = np.arange(10.0)
    assert resample(data, 8000) is data
    assert resample(np.arange(16000.0), 16000).size == 8000
