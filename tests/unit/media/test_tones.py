"""Call progress tones: frequencies by FFT, cadence timing, looping, per-country table."""

from __future__ import annotations

import numpy as np
import pytest

from pbx.media.tones import COUNTRIES, ToneGenerator, ToneKind, tone_for

RATE = 8000

EXPECTED = {
    ("ITU", ToneKind.RINGBACK): ((425,), (1.0, 4.0)),
    ("ITU", ToneKind.BUSY): ((425,), (0.5, 0.5)),
    ("ITU", ToneKind.CONGESTION): ((425,), (0.25, 0.25)),
    ("US", ToneKind.RINGBACK): ((440, 480), (2.0, 4.0)),
    ("US", ToneKind.BUSY): ((480, 620), (0.5, 0.5)),
    ("US", ToneKind.CONGESTION): ((480, 620), (0.25, 0.25)),
    ("UK", ToneKind.RINGBACK): ((400, 450), (0.4, 0.2, 0.4, 2.0)),
    ("UK", ToneKind.BUSY): ((400,), (0.375, 0.375)),
    ("UK", ToneKind.CONGESTION): ((400,), (0.4, 0.35, 0.225, 0.525)),
    ("CN", ToneKind.RINGBACK): ((450,), (1.0, 4.0)),
    ("CN", ToneKind.BUSY): ((450,), (0.35, 0.35)),
    ("CN", ToneKind.CONGESTION): ((450,), (0.7, 0.7)),
    ("DE", ToneKind.RINGBACK): ((425,), (1.0, 4.0)),
    ("DE", ToneKind.BUSY): ((425,), (0.48, 0.48)),
    ("DE", ToneKind.CONGESTION): ((425,), (0.24, 0.24)),
}


def render(generator: ToneGenerator, seconds: float, frame: int = 160) -> np.ndarray:
    total = round(seconds * RATE)
    frames = [generator.frame(frame) for _ in range(-(-total // frame))]
    return np.concatenate(frames)[:total]


def peaks(signal: np.ndarray, count: int) -> list[float]:
    """The `count` strongest frequencies (1 Hz bins on a 1 s window)."""
    window = signal[:RATE].astype(np.float64) * np.hanning(RATE)
    spectrum = np.abs(np.fft.rfft(window))
    found: list[float] = []
    for _ in range(count):
        k = int(np.argmax(spectrum))
        found.append(float(k))
        spectrum[max(0, k - 10) : k + 11] = 0
    return sorted(found)


def transitions(signal: np.ndarray) -> list[float]:
    """Times (s) where the tone switches on or off, from a 1 ms energy envelope."""
    ms = RATE // 1000
    envelope = np.abs(signal[: len(signal) // ms * ms]).reshape(-1, ms).max(axis=1) > 0
    flips = np.flatnonzero(np.diff(envelope.astype(np.int8))) + 1
    return [round(float(f) / 1000, 3) for f in flips]


@pytest.mark.parametrize(("country", "kind"), list(EXPECTED))
def test_table_matches_e180_supplement_values(country: str, kind: ToneKind) -> None:
    freqs, cadence = EXPECTED[(country, kind)]
    tone = tone_for(country, kind)
    assert tone.frequencies == freqs and tone.cadence == cadence


@pytest.mark.parametrize(("country", "kind"), list(EXPECTED))
def test_frequencies_measured_by_fft(country: str, kind: ToneKind) -> None:
    freqs, cadence = EXPECTED[(country, kind)]
    generator = ToneGenerator(tone_for(country, kind))
    signal = render(generator, 1.0, frame=RATE)  # first on period
    if cadence[0] < 1.0:  # measure inside the first on period only
        on = signal[: round(cadence[0] * RATE)]
        signal = np.concatenate([on] * (RATE // len(on) + 1))[:RATE]
    assert peaks(signal, len(freqs)) == pytest.approx(sorted(freqs), abs=1.0)


@pytest.mark.parametrize(("country", "kind"), list(EXPECTED))
def test_cadence_timing_over_two_periods(country: str, kind: ToneKind) -> None:
    _, cadence = EXPECTED[(country, kind)]
    period = sum(cadence)
    signal = render(ToneGenerator(tone_for(country, kind)), 2 * period + 0.05)
    edges = np.cumsum(cadence * 2)  # the last one is where the third period begins
    assert transitions(signal) == pytest.approx(list(edges), abs=0.0011)


def test_cadence_loops_sample_exactly_and_frame_size_does_not_matter() -> None:
    tone = tone_for("UK", ToneKind.RINGBACK)
    period = round(tone.period * RATE)
    a = render(ToneGenerator(tone), 2 * tone.period, frame=160)
    b = render(ToneGenerator(tone), 2 * tone.period, frame=37)
    np.testing.assert_array_equal(a, b)
    # whole-Hz tones repeat after a whole number of seconds; UK period is 3 s
    np.testing.assert_array_equal(a[:period], a[period : 2 * period])


def test_level_in_dbm0_sets_the_amplitude() -> None:
    signal = render(ToneGenerator(tone_for("DE", ToneKind.DIAL), level_dbm0=-10.0), 1.0)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(signal.astype(np.float64) ** 2)) / 32767)
    # a sine's RMS is 3.01 dB below its peak; 0 dBm0 is 3.14 dB below full scale
    assert rms_dbfs == pytest.approx(-10.0 - 3.14 - 3.01, abs=0.05)
    assert signal.dtype == np.int16 and len(signal) == RATE


def test_dial_tone_is_continuous() -> None:
    signal = render(ToneGenerator(tone_for("US", ToneKind.DIAL)), 3.0)
    assert transitions(signal) == []
    assert peaks(signal, 2) == pytest.approx([350, 440], abs=1.0)


def test_unknown_country_falls_back_to_itu_and_codes_ignore_case() -> None:
    assert tone_for("ZZ", ToneKind.BUSY) == COUNTRIES["ITU"][ToneKind.BUSY]
    assert tone_for(None, ToneKind.RINGBACK) == COUNTRIES["ITU"][ToneKind.RINGBACK]
    assert tone_for("us", ToneKind.BUSY).frequencies == (480, 620)
    assert tone_for("GB", ToneKind.BUSY) == tone_for("UK", ToneKind.BUSY)


def test_every_country_has_every_kind() -> None:
    for country in ("ITU", "US", "UK", "CN", "DE"):
        assert set(COUNTRIES[country]) == set(ToneKind)


def test_generator_refuses_bad_tones() -> None:
    from pbx.media.tones import Tone

    with pytest.raises(ValueError, match="at least one frequency"):
        ToneGenerator(Tone(()))
    with pytest.raises(ValueError, match="pair every on time"):
        ToneGenerator(Tone((400,), (0.5,)))
    with pytest.raises(ValueError, match="would clip"):
        ToneGenerator(Tone((400, 450)), level_dbm0=3.0)


def test_reset_restarts_the_cadence() -> None:
    generator = ToneGenerator(tone_for("ITU", ToneKind.BUSY))
    first = generator.frame(400)
    generator.frame(1234)
    assert generator.position == 1634
    generator.reset()
    np.testing.assert_array_equal(generator.frame(400), first)


def test_shared_cycle_equals_the_formula_far_into_the_call() -> None:
    from pbx.media.tones import _render

    tone = tone_for("US", ToneKind.RINGBACK)
    generator = ToneGenerator(tone)
    generator.frame(1_008_003)  # 21 periods and 3 samples: two minutes into the call
    late = generator.frame(800)
    np.testing.assert_array_equal(late, _render(tone, generator.amplitude, RATE, 1_008_003, 800))
    assert np.any(late != 0)


def test_fractional_frequency_tone_renders_directly_and_stays_continuous() -> None:
    from pbx.media.tones import Tone

    tone = Tone((425.5,), (0.2, 0.1))
    a = render(ToneGenerator(tone), 0.9, frame=160)
    b = render(ToneGenerator(tone), 0.9, frame=53)
    np.testing.assert_array_equal(a, b)
    assert transitions(a) == pytest.approx([0.2, 0.3, 0.5, 0.6, 0.8], abs=0.0011)
