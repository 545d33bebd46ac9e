"""Sound devices for the softphone, behind an abstraction tests replace.

`SoundDeviceBackend` lists PortAudio devices through sounddevice; with no
sound card (PortAudio lists nothing, or libportaudio2 is missing) it lists
none and says why in `problem`, and the app starts anyway. `MemoryDevice`
is the in-memory device of the tests: frames written as the microphone come
out of `read_microphone`, frames played go into `speaker`.

The call side works in 8 kHz mono int16 frames of 160 samples (pbx.ua.audio);
a card runs at its native rate (often 48 kHz), so `resample` converts
between the two (linear interpolation, enough for G.711's 300-3400 Hz band).
`level_dbfs` feeds the microphone and speaker meters.

`SoundCardDevice` is the real thing: one sounddevice duplex stream at the
device's native rate. The PortAudio callback only moves arrays between two
bounded FIFOs (deque appends and pops are atomic in CPython: no locks, no
allocation beyond a copy, no resampling there); resampling happens on the
caller's side (the UA's media clock pulls `read_microphone` and pushes
`play` every 20 ms). A stream that dies (a USB headset unplugged) is noticed
on the next pull and reopened on the system default devices, so the call
goes on. `idle()` closes the stream when no call needs it (idle CPU).
Echo cancellation with noise suppression (app.echo, libspeexdsp) is on by
default and works on the 8 kHz call frames.
`Ringer` plays the ring tone on the ringing device, which may differ.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

CALL_RATE = 8000
FRAME = 160
Samples = npt.NDArray[np.int16]
NO_SOUND_CARD = "No sound card found: calls still connect, but you will not hear or be heard."


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str
    inputs: int
    outputs: int
    rate: float
    is_default_input: bool = False
    is_default_output: bool = False


class AudioBackend(Protocol):
    problem: str

    def devices(self) -> list[DeviceInfo]: ...


class SoundDeviceBackend:
    """PortAudio through sounddevice, imported lazily so a missing library is a message."""

    def __init__(self, *, rescan: bool = False) -> None:
        self.problem = ""
        self.rescan = rescan
        """Restart PortAudio so that a headset plugged in since start appears; only when
        no stream is open (it would end a call's audio)."""

    def devices(self) -> list[DeviceInfo]:
        try:
            import sounddevice as sd

            if self.rescan:
                sd._terminate()
                sd._initialize()
            found: Any = sd.query_devices()
            default_in, default_out = sd.default.device
        except Exception as exc:  # PortAudioError, OSError: no libportaudio2
            log.info("no audio devices: %s", exc)
            self.problem = f"{NO_SOUND_CARD} ({exc})"
            return []
        devices = [
            DeviceInfo(
                name=str(d["name"]),
                inputs=int(d["max_input_channels"]),
                outputs=int(d["max_output_channels"]),
                rate=float(d["default_samplerate"]),
                is_default_input=i == default_in,
                is_default_output=i == default_out,
            )
            for i, d in enumerate(found)
        ]
        self.problem = "" if devices else NO_SOUND_CARD
        return devices


class MemoryDevice:
    """An in-memory duplex device at `rate`: a test feeds the microphone, reads the speaker."""

    def __init__(self, rate: int = CALL_RATE) -> None:
        self.rate = rate
        self.problem = ""
        self._mic: deque[Samples] = deque()
        self.speaker: list[Samples] = []

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo("Memory", 1, 1, float(self.rate), True, True)]

    def feed_microphone(self, samples: npt.ArrayLike) -> None:
        data = np.asarray(samples, dtype=np.int16)
        chunk = self.rate * FRAME // CALL_RATE  # 20 ms at the device's rate
        for start in range(0, len(data), chunk):
            self._mic.append(data[start : start + chunk])

    def read_microphone(self) -> Samples | None:
        """One 20 ms call frame (8 kHz), or None when the microphone ran dry."""
        if not self._mic:
            return None
        return resample(self._mic.popleft(), self.rate, CALL_RATE)

    def play(self, frame: Samples) -> None:
        """A call frame (8 kHz) to the speaker at the device's rate."""
        self.speaker.append(resample(frame, CALL_RATE, self.rate))

    def heard(self) -> Samples:
        return np.concatenate(self.speaker) if self.speaker else np.zeros(0, dtype=np.int16)

    def idle(self) -> None:
        """Nothing to release in memory."""


def resample(samples: npt.ArrayLike, from_rate: float, to_rate: float) -> Samples:
    """Linear-interpolation resampling of mono int16 audio (clipped to int16)."""
    data = np.asarray(samples, dtype=np.float64)
    if from_rate == to_rate or data.size == 0:
        return np.asarray(samples, dtype=np.int16)
    count = max(1, int(round(data.size * to_rate / from_rate)))
    positions = np.arange(count) * (from_rate / to_rate)
    out = np.interp(positions, np.arange(data.size), data)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def level_dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dB relative to full scale; -120 for silence (the meters' floor)."""
    data = np.asarray(samples, dtype=np.float64)
    if data.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(data / 32768.0))))
    return max(-120.0, 20.0 * np.log10(rms)) if rms > 0 else -120.0


class SampleFifo:
    """A bounded FIFO of int16 chunks between one producer and one consumer thread."""

    def __init__(self, max_chunks: int) -> None:
        self._chunks: deque[Samples] = deque()
        self._head: Samples = np.zeros(0, dtype=np.int16)
        self.max_chunks = max_chunks
        self.dropped = 0

    def push(self, chunk: Samples) -> None:
        self._chunks.append(chunk)
        while len(self._chunks) > self.max_chunks:  # the consumer fell behind: drop the oldest
            try:
                self._chunks.popleft()
                self.dropped += 1
            except IndexError:
                break

    def pull(self, count: int) -> Samples | None:
        """Exactly `count` samples, or None when fewer are buffered (nothing consumed)."""
        parts, have = [self._head], self._head.size
        while have < count:
            try:
                chunk = self._chunks.popleft()
            except IndexError:
                self._head = np.concatenate(parts)
                return None
            parts.append(chunk)
            have += chunk.size
        data = np.concatenate(parts)
        self._head = data[count:]
        return data[:count]

    def clear(self) -> None:
        self._chunks.clear()
        self._head = np.zeros(0, dtype=np.int16)


def _sounddevice() -> Any:
    import sounddevice

    return sounddevice


class SoundCardDevice:
    """The sound card for calls: read_microphone() / play() in 8 kHz call frames."""

    def __init__(
        self,
        input_device: str | None = None,
        output_device: str | None = None,
        *,
        buffer_ms: int = 200,
        echo_cancellation: bool = True,
        backend: Callable[[], Any] = _sounddevice,
    ) -> None:
        self.echo_cancellation = echo_cancellation
        """Speex AEC + noise suppression (app.echo) on by default, when libspeexdsp exists."""
        self.echo: Any = None
        self.input_device = input_device or None
        self.output_device = output_device or None
        self.backend = backend
        chunks = max(2, buffer_ms // 20)
        self.mic = SampleFifo(chunks)
        self.speaker = SampleFifo(chunks)
        self.rate = 0
        self.stream: Any = None
        self.lost = False
        self.problem = ""
        self.mic_level = -120.0
        self.speaker_level = -120.0

    # -- the PortAudio thread ---------------------------------------------------------

    def _callback(self, indata: Any, outdata: Any, frames: int, _time: Any, _status: Any) -> None:
        self.mic.push(indata[:, 0].copy())
        played = self.speaker.pull(frames)
        if played is None:
            outdata.fill(0)
        else:
            outdata[:, 0] = played

    def _finished(self) -> None:
        if self.stream is not None:  # not closed by us: the device went away
            self.lost = True

    # -- the caller's side ------------------------------------------------------------

    def start(self) -> bool:
        """Open the duplex stream at the output device's native rate; False with `problem`."""
        sd = self.backend()
        try:
            device = sd.query_devices(self.output_device, "output")
            self.rate = int(device["default_samplerate"])
            stream = sd.Stream(
                samplerate=self.rate, channels=1, dtype="int16",
                blocksize=self.rate * FRAME // CALL_RATE,
                device=(self.input_device, self.output_device),
                callback=self._callback, finished_callback=self._finished,
            )  # fmt: skip
            self.stream = stream
            stream.start()
        except Exception as exc:  # PortAudioError, ValueError: no such device
            self.stream = None
            self.problem = f"cannot open the sound device: {exc}"
            log.warning("%s", self.problem)
            return False
        self.lost = False
        self.problem = ""
        if self.echo_cancellation and self.echo is None:
            from app.echo import EchoCanceller

            if EchoCanceller.available():
                self.echo = EchoCanceller()
        return True

    def _ensure(self) -> bool:
        if self.lost:
            log.warning("sound device lost; falling back to the system default")
            self.close()
            self.input_device = self.output_device = None
        if self.stream is None:
            return self.start()
        return True

    def read_microphone(self) -> Samples | None:
        if not self._ensure():
            return None
        block = self.mic.pull(self.rate * FRAME // CALL_RATE)
        if block is None:
            return None
        frame = resample(block, self.rate, CALL_RATE)
        if self.echo is not None:
            frame = self.echo.capture(frame)
        self.mic_level = level_dbfs(frame)
        return frame

    def play(self, frame: Samples) -> None:
        if not self._ensure():
            return
        self.speaker_level = level_dbfs(frame)
        if self.echo is not None:
            self.echo.playback(frame)
        self.speaker.push(resample(frame, CALL_RATE, self.rate))

    def switch(self, input_device: str | None, output_device: str | None) -> bool:
        """Change devices, during a call too: an open stream is reopened, the call goes on."""
        was_open = self.stream is not None
        self.close()
        self.input_device, self.output_device = input_device or None, output_device or None
        return self.start() if was_open else True

    def idle(self) -> None:
        """No call needs audio: close the stream (no CPU, the device is free)."""
        self.close()
        if self.echo is not None:  # the next call's room may differ: start afresh
            self.echo.close()
            self.echo = None

    def close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:  # a device already gone
                log.info("closing the sound stream: %s", exc)
        self.mic.clear()
        self.speaker.clear()


def ring_tone(rate: int, seconds: float = 6.0) -> Samples:
    """North American ringing (ANSI T1.401): 440+480 Hz, 2 s on, 4 s off."""
    t = np.arange(int(rate * seconds)) / rate
    tone = 6000 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)) / 2
    tone[t >= 2.0] = 0
    return tone.astype(np.int16)


class Ringer:
    """Rings on the ringing device while an incoming call waits (GUI thread, non-blocking)."""

    def __init__(self, device: str | None = None, backend: Callable[[], Any] = _sounddevice):
        self.device = device or None
        self.backend = backend
        self.ringing = False

    def start(self) -> None:
        if self.ringing:
            return
        self.ringing = True
        try:
            sd = self.backend()
            rate = int(sd.query_devices(self.device, "output")["default_samplerate"])
            sd.play(ring_tone(rate), rate, loop=True, device=self.device)
        except Exception as exc:  # no sound card: the dialog and the tray still show the call
            log.info("cannot ring: %s", exc)

    def stop(self) -> None:
        if not self.ringing:
            return
        self.ringing = False
        try:
            self.backend().stop()
        except Exception as exc:
            log.info("cannot stop ringing: %s", exc)


def play_test_tone(device: str | None, backend: Callable[[], Any] = _sounddevice) -> str:
    """One second of 1 kHz on `device`; returns what happened in plain words."""
    try:
        sd = backend()
        rate = int(sd.query_devices(device or None, "output")["default_samplerate"])
        t = np.arange(rate) / rate
        sd.play((6000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16), rate, device=device or None)
    except Exception as exc:
        return f"Cannot play on this device: {exc}"
    return "Playing a 1 kHz tone for one second."


class MicMeter:
    """The settings page's microphone meter: an input stream whose callback keeps the level."""

    def __init__(self, backend: Callable[[], Any] = _sounddevice) -> None:
        self.backend = backend
        self.stream: Any = None
        self.level = -120.0
        self.problem = ""

    def _callback(self, indata: Any, _frames: int, _time: Any, _status: Any) -> None:
        self.level = level_dbfs(indata[:, 0])

    def start(self, device: str | None) -> bool:
        self.stop()
        try:
            sd = self.backend()
            self.stream = sd.InputStream(device=device or None, channels=1, dtype="int16",
                                         callback=self._callback)  # fmt: skip
            self.stream.start()
        except Exception as exc:
            self.stream = None
            self.problem = f"Cannot open the microphone: {exc}"
            return False
        return True

    def stop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:
                log.info("closing the meter stream: %s", exc)
        self.level = -120.0
