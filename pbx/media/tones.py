"""Call progress tones (dial, ringback, busy, congestion) per country, as 8 kHz int16 frames.

Theory of operation
-------------------
When the PBX itself must tell a caller what is happening (the callee's
phone rings but sends no early media, the callee is busy, no route or
trunk is free), it plays the tone the caller's country expects. The
frequencies and cadences come from ITU-T E.180 (03/1998) §2-§5, which
recommends 400-450 Hz with a ringing cadence of 0.67-1.5 s on and 3-5 s
off, busy at 0.1-0.6 s on and off alike, congestion faster than busy,
and from its Supplement 2 "Various tones used in national networks",
which lists what each country actually uses (e.g. the North American
precise tone plan: ringback 440+480 Hz 2 s on 4 s off, busy 480+620 Hz
0.5/0.5, reorder 480+620 Hz 0.25/0.25).

A `Tone` is a set of frequencies summed at one level plus a cadence: the
durations in seconds of alternating on and off periods, starting with on,
repeated for as long as the tone plays (no cadence: continuous). A
`ToneGenerator` turns one into consecutive frames; the sample counter it
keeps makes the phase continuous across frames and across cadence
periods, so frames of any size concatenate into the same signal. For
whole-Hz tones one full repetition is rendered once per (tone, level) and
shared, so a frame is a copy out of it.
Levels are in dBm0 (ITU-T G.711 puts the theoretical load capacity, a
full-scale sine, at +3.14 dBm0 for A-law and +3.17 dBm0 for mu-law);
-13 dBm0 per frequency by default, set per generator.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "COUNTRIES",
    "DEFAULT_COUNTRY",
    "Tone",
    "ToneGenerator",
    "ToneKind",
    "tone_for",
]

SAMPLE_RATE = 8000
FULL_SCALE_DBM0 = 3.14
"""Level of a full-scale sine in the G.711 digital domain (A-law load capacity)."""


class ToneKind(enum.Enum):
    """The call progress situations a PBX signals with tones (ITU-T E.180 §2-§5)."""

    DIAL = "dial"
    RINGBACK = "ringback"
    BUSY = "busy"
    CONGESTION = "congestion"


@dataclass(frozen=True, slots=True)
class Tone:
    """Frequencies (Hz) played together; cadence = on, off, on, off ... seconds, looped."""

    frequencies: tuple[float, ...]
    cadence: tuple[float, ...] = ()

    @property
    def period(self) -> float:
        """Seconds before the cadence repeats; 0 for a continuous tone."""
        return sum(self.cadence)


def _t(freqs: tuple[float, ...], *cadence: float) -> Tone:
    return Tone(freqs, tuple(cadence))


DEFAULT_COUNTRY = "ITU"

COUNTRIES: dict[str, dict[ToneKind, Tone]] = {
    # E.180 §2-§5 recommended values at 425 Hz, the value most E.180 Suppl. 2 countries use.
    "ITU": {
        ToneKind.DIAL: _t((425,)),
        ToneKind.RINGBACK: _t((425,), 1.0, 4.0),
        ToneKind.BUSY: _t((425,), 0.5, 0.5),
        ToneKind.CONGESTION: _t((425,), 0.25, 0.25),
    },
    # United States: the precise tone plan (E.180 Suppl. 2 "United States").
    "US": {
        ToneKind.DIAL: _t((350, 440)),
        ToneKind.RINGBACK: _t((440, 480), 2.0, 4.0),
        ToneKind.BUSY: _t((480, 620), 0.5, 0.5),
        ToneKind.CONGESTION: _t((480, 620), 0.25, 0.25),
    },
    # United Kingdom (E.180 Suppl. 2 "United Kingdom"): double-ring ringback.
    "UK": {
        ToneKind.DIAL: _t((350, 440)),
        ToneKind.RINGBACK: _t((400, 450), 0.4, 0.2, 0.4, 2.0),
        ToneKind.BUSY: _t((400,), 0.375, 0.375),
        ToneKind.CONGESTION: _t((400,), 0.4, 0.35, 0.225, 0.525),
    },
    # China (E.180 Suppl. 2 "China").
    "CN": {
        ToneKind.DIAL: _t((450,)),
        ToneKind.RINGBACK: _t((450,), 1.0, 4.0),
        ToneKind.BUSY: _t((450,), 0.35, 0.35),
        ToneKind.CONGESTION: _t((450,), 0.7, 0.7),
    },
    # Germany (E.180 Suppl. 2 "Germany").
    "DE": {
        ToneKind.DIAL: _t((425,)),
        ToneKind.RINGBACK: _t((425,), 1.0, 4.0),
        ToneKind.BUSY: _t((425,), 0.48, 0.48),
        ToneKind.CONGESTION: _t((425,), 0.24, 0.24),
    },
}
COUNTRIES["GB"] = COUNTRIES["UK"]  # ISO 3166 code for the same table


def tone_for(country: str | None, kind: ToneKind) -> Tone:
    """The tone of `kind` for an ISO country code (any case); ITU default when unknown."""
    table = COUNTRIES.get((country or DEFAULT_COUNTRY).upper(), COUNTRIES[DEFAULT_COUNTRY])
    return table[kind]


class ToneGenerator:
    """Endless 8 kHz int16 frames of one tone, cadence looped, phase continuous."""

    def __init__(self, tone: Tone, level_dbm0: float = -13.0, rate: int = SAMPLE_RATE) -> None:
        if not tone.frequencies:
            raise ValueError("a tone needs at least one frequency")
        if any(d < 0 for d in tone.cadence) or (tone.cadence and tone.period <= 0):
            raise ValueError(f"bad cadence {tone.cadence}: durations must be >= 0, sum > 0")
        if len(tone.cadence) % 2:
            raise ValueError(f"cadence {tone.cadence} must pair every on time with an off time")
        self.tone = tone
        self.rate = rate
        self.amplitude = 32767 * 10 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20)
        if self.amplitude * len(tone.frequencies) > 32767:
            raise ValueError(f"level {level_dbm0} dBm0 per frequency would clip")
        self._position = 0

    @property
    def position(self) -> int:
        """Samples produced so far."""
        return self._position

    def frame(self, samples: int = 160) -> npt.NDArray[np.int16]:
        """The next `samples` samples (160 = one 20 ms packet at 8 kHz)."""
        start = self._position
        self._position += samples
        cycle = _cycle(self.tone, self.amplitude, self.rate)
        if cycle is None:
            return _render(self.tone, self.amplitude, self.rate, start, samples)
        index = np.arange(start, start + samples, dtype=np.int64) % cycle.size
        return cycle.take(index)

    def reset(self) -> None:
        """Start again at the beginning of the first on period."""
        self._position = 0


_MAX_CYCLE_S = 12


@functools.lru_cache(maxsize=64)
def _cycle(tone: Tone, amplitude: float, rate: int) -> npt.NDArray[np.int16] | None:
    """One full repetition of the tone, shared by every generator of it, or None.

    Whole-Hz frequencies repeat every second and the cadence every period, so
    the signal repeats after lcm(rate, period samples), at most 12 s (US
    ringback: 6 s). Copying from it costs a slice instead of a sine per sample.
    """
    if any(f != int(f) for f in tone.frequencies):
        return None
    period = round(tone.period * rate) if tone.cadence else 1
    size = math.lcm(rate, period)
    if size > _MAX_CYCLE_S * rate:
        return None
    cycle = _render(tone, amplitude, rate, 0, size)
    cycle.flags.writeable = False
    return cycle


def _render(tone: Tone, amplitude: float, rate: int, start: int, count: int) -> np.ndarray:
    """Samples start .. start+count of the tone, computed from the formula."""
    index = np.arange(start, start + count, dtype=np.int64)
    signal = np.zeros(count, dtype=np.float64)
    for freq in tone.frequencies:
        # (f * n) mod rate keeps the phase argument small and exact for whole-Hz tones.
        signal += np.sin(2 * np.pi * np.mod(freq * index, rate) / rate)
    signal *= amplitude
    if tone.cadence:
        edges = np.cumsum([round(d * rate) for d in tone.cadence])
        slot = np.searchsorted(edges, index % int(edges[-1]), side="right")
        signal[slot % 2 == 1] = 0.0  # odd slots are the off periods
    return np.round(signal).astype(np.int16)
