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
"""

from __future__ import annotations

import logging
from collections import deque
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

    def __init__(self) -> None:
        self.problem = ""

    def devices(self) -> list[DeviceInfo]:
        try:
            import sounddevice as sd

            sd._terminate()  # re-scan: a headset plugged in since start appears
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
