"""Audio for the user agent: the per-call audio port, sources and sinks (no sockets, no Qt).

Every call has one `AudioPort`. Its `source` gives what we send: 8 kHz mono
int16 frames of 160 samples (20 ms), from a callable or an iterator; it
defaults to silence. Its `sink` takes every frame we play out, decoded and
after the jitter buffer, 160 samples each. The GUI's sound-card layer sets
both to its ring buffers; tests use `ToneSource` and `FrameRecorder`; a WAV
file goes in with `WavSource` (resampled to 8 kHz mono with numpy) and what
is heard goes out with `WavRecorder`.

A source that runs dry (iterator exhausted, callable returns None) is
answered with silence, so the RTP clock never stalls.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME_SAMPLES = 160
"""One 20 ms packet at 8 kHz (RFC 3551 4.5: G.711 default packetization)."""

Frame = npt.NDArray[np.int16]
Source = Callable[[], Frame | None] | Iterator[Frame] | Iterable[Frame]
Sink = Callable[[Frame], None]

SILENCE: Frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
SILENCE.setflags(write=False)


def _fit(frame: npt.ArrayLike) -> Frame:
    """Exactly 160 int16 samples: clipped, cut or zero-padded."""
    data = np.asarray(frame)
    if data.dtype != np.int16:
        data = np.clip(np.round(data.astype(np.float64)), -32768, 32767).astype(np.int16)
    if data.size == FRAME_SAMPLES:
        return data.reshape(FRAME_SAMPLES)
    out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    size = min(FRAME_SAMPLES, data.size)
    out[:size] = data.reshape(-1)[:size]
    return out


class AudioPort:
    """What one call sends and where what it receives goes; swap either at any time."""

    def __init__(self, source: Source | None = None, sink: Sink | None = None) -> None:
        self._pull: Callable[[], Frame | None] = _silence
        self.sink: Sink | None = sink
        self.source = source

    @property
    def source(self) -> Source | None:
        return self._source

    @source.setter
    def source(self, source: Source | None) -> None:
        self._source = source
        self._pull = _puller(source)

    def next_frame(self) -> Frame:
        """The next 20 ms to send (silence when the source has nothing)."""
        frame = self._pull()
        return SILENCE if frame is None else _fit(frame)

    def deliver(self, frame: Frame) -> None:
        if self.sink is not None:
            self.sink(frame)


def _silence() -> Frame | None:
    return None


def _puller(source: Source | None) -> Callable[[], Frame | None]:
    if source is None:
        return _silence
    if callable(source):
        return source
    iterator = iter(source)

    def pull() -> Frame | None:
        return next(iterator, None)

    return pull


class ToneSource:
    """An endless sine of `frequency` Hz at `amplitude` (0..32767), phase continuous.

    One second of samples is computed once and replayed when it holds a whole number
    of periods (any integer frequency), so a frame costs one slice, not a sine."""

    def __init__(self, frequency: float, amplitude: float = 8000.0) -> None:
        self.frequency = frequency
        self.amplitude = amplitude
        self._position = 0
        self._second: Frame | None = None
        if float(frequency).is_integer():
            self._second = np.concatenate([self._render(RATE), self._render(FRAME_SAMPLES)])
            self._position = 0

    def _render(self, count: int) -> Frame:
        n = np.arange(self._position, self._position + count, dtype=np.float64)
        self._position += count
        wave_ = self.amplitude * np.sin(2 * np.pi * self.frequency * n / RATE)
        return np.round(wave_).astype(np.int16)

    def __call__(self) -> Frame:
        if self._second is None:
            return self._render(FRAME_SAMPLES)
        start = self._position % RATE
        self._position += FRAME_SAMPLES
        return self._second[start : start + FRAME_SAMPLES].copy()


def resample(
    samples: npt.NDArray[np.float64], rate: int, target: int = RATE
) -> npt.NDArray[np.float64]:
    """Linear-interpolation resampling (good enough for prompts and test tones);
    a low-pass of the source first keeps aliasing down when decimating."""
    if rate == target or samples.size == 0:
        return samples
    if rate > target:
        width = max(1, int(round(rate / target)))
        kernel = np.ones(width) / width
        samples = np.convolve(samples, kernel, mode="same")
    count = int(round(samples.size * target / rate))
    positions = np.arange(count, dtype=np.float64) * rate / target
    return np.interp(positions, np.arange(samples.size, dtype=np.float64), samples)


def read_wav(path: str | Path) -> Frame:
    """A PCM WAV file (8/16/32-bit, any rate, any channels) as 8 kHz mono int16."""
    with wave.open(str(path), "rb") as wav:
        width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in dtypes:
        raise ValueError(f"{path}: {8 * width}-bit WAV is not supported (use 8, 16 or 32 bit PCM)")
    data = np.frombuffer(raw, dtype=dtypes[width]).astype(np.float64)
    if width == 1:
        data = (data - 128.0) * 256.0
    elif width == 4:
        data = data / 65536.0
    if channels > 1:
        data = data[: data.size - data.size % channels].reshape(-1, channels).mean(axis=1)
    out = resample(data, rate)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


class WavSource:
    """Plays a WAV file into a call, 20 ms at a time; silence after the end unless `loop`."""

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.samples = read_wav(path)
        self.loop = loop
        self.position = 0

    @property
    def finished(self) -> bool:
        return not self.loop and self.position >= self.samples.size

    def __call__(self) -> Frame | None:
        if self.samples.size == 0 or self.finished:
            return None
        if self.loop and self.position >= self.samples.size:
            self.position = 0
        frame = self.samples[self.position : self.position + FRAME_SAMPLES]
        self.position += FRAME_SAMPLES
        return _fit(frame)


class FrameRecorder:
    """A sink keeping what was heard in memory (bounded to `max_seconds`)."""

    def __init__(self, max_seconds: float = 600.0) -> None:
        self.frames: list[Frame] = []
        self._limit = int(max_seconds * RATE / FRAME_SAMPLES)

    def __call__(self, frame: Frame) -> None:
        if len(self.frames) < self._limit:
            self.frames.append(frame.copy())

    def samples(self) -> Frame:
        if not self.frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.frames)


class WavRecorder:
    """A sink writing what is heard to an 8 kHz mono 16-bit WAV; `close()` when done."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wav: wave.Wave_write | None = wave.open(str(self.path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self.frames = 0

    def __call__(self, frame: Frame) -> None:
        if self._wav is not None:
            self._wav.writeframes(frame.astype("<i2").tobytes())
            self.frames += 1

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class TeeSink:
    """Hands each frame to several sinks (the speaker and a recorder, say)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    def __call__(self, frame: Frame) -> None:
        for sink in self.sinks:
            sink(frame)


def dominant_frequency(samples: npt.ArrayLike, rate: int = RATE) -> float:
    """The strongest frequency in `samples` (Hz), by FFT with a Hann window."""
    data = np.asarray(samples, dtype=np.float64)
    if data.size < 2:
        return 0.0
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / data.size)
