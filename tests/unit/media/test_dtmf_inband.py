"""In-band DTMF detection (Goertzel, ITU-T Q.24 rules) on generated tones, noise and decoys."""

from __future__ import annotations

import numpy as np
import pytest

from pbx.media.dtmf import COLUMNS, DIGITS, KEYPAD, ROWS, InbandDetector

RATE = 8000
RNG_SEED = 4733


def position(digit: str) -> tuple[int, int]:
    return next((r, row.index(digit)) for r, row in enumerate(KEYPAD) if digit in row)


def tone(
    digit: str, ms: float, level: float = 8000.0, twist_db: float = 0.0, detune: float = 0.0
) -> np.ndarray:
    """Row at `level`, column `twist_db` below it (negative: above, i.e. reverse twist)."""
    r, c = position(digit)
    t = np.arange(round(RATE * ms / 1000)) / RATE
    column = level * 10 ** (-twist_db / 20)
    return level * np.sin(2 * np.pi * ROWS[r] * (1 + detune) * t) + column * np.sin(
        2 * np.pi * COLUMNS[c] * (1 + detune) * t + 0.7
    )


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(RATE * ms / 1000))


def detect(signal: np.ndarray, frame: int = 160) -> str:
    """Feed in 20 ms frames as the relay would, return the digits in order."""
    samples = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    detector = InbandDetector()
    digits = []
    for start in range(0, len(samples), frame):
        digits += [d.digit for d in detector.feed(samples[start : start + frame])]
    return "".join(digits)


def with_noise(signal: np.ndarray, snr_db: float, tone_power: float) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    sigma = np.sqrt(tone_power / 10 ** (snr_db / 10))
    return signal + rng.normal(0.0, sigma, signal.size)


def keypad_sequence(on_ms: float = 50, off_ms: float = 50, **kw) -> np.ndarray:
    parts = [silence(20)]
    for digit in DIGITS:
        parts += [tone(digit, on_ms, **kw), silence(off_ms)]
    return np.concatenate(parts)


def test_all_16_digits_detected_once_each_in_order() -> None:
    assert detect(keypad_sequence()) == DIGITS


@pytest.mark.parametrize("snr_db", [30, 20, 15, 12])
def test_all_digits_survive_white_noise(snr_db: float) -> None:
    tone_power = 8000.0**2  # two sines of amplitude 8000: 2 * A^2 / 2
    assert detect(with_noise(keypad_sequence(), snr_db, tone_power)) == DIGITS


def test_noise_alone_never_triggers() -> None:
    assert detect(with_noise(silence(3000), 0, 8000.0**2)) == ""


def test_detection_position_is_the_tone_start_within_one_block() -> None:
    detector = InbandDetector()
    signal = np.concatenate((silence(100), tone("6", 60), silence(60)))
    found = detector.feed(np.round(signal).astype(np.int16))
    assert [d.digit for d in found] == ["6"]
    assert 800 - 102 <= found[0].sample <= 800 + 102


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_40_ms_tone_accepted_at_any_alignment(offset: int) -> None:
    signal = np.concatenate((np.zeros(offset), tone("5", 40), silence(60)))
    assert detect(signal) == "5"


@pytest.mark.parametrize("ms", [10, 15, 20])
@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_tones_of_20_ms_or_less_rejected(ms: float, offset: int) -> None:
    signal = np.concatenate((np.zeros(offset), tone("5", ms), silence(60)))
    assert detect(signal) == ""


def test_long_press_is_one_digit_and_short_pause_does_not_split_it() -> None:
    assert detect(np.concatenate((tone("9", 1000), silence(60)))) == "9"
    # a 10 ms drop-out is below the Q.24 interdigit pause: still one press
    assert detect(np.concatenate((tone("9", 200), silence(10), tone("9", 200)))) == "9"
    # a 60 ms pause separates two presses of the same key
    assert detect(np.concatenate((tone("9", 80), silence(60), tone("9", 80), silence(40)))) == "99"


@pytest.mark.parametrize(
    ("twist_db", "accepted"),
    [
        (0.0, True),
        (7.0, True),
        (-3.0, True),
        (10.0, False),
        (-6.0, False),
    ],
)
def test_twist_limits_normal_8_db_reverse_4_db(twist_db: float, accepted: bool) -> None:
    signal = np.concatenate((tone("8", 100, level=10000, twist_db=twist_db), silence(60)))
    assert detect(signal) == ("8" if accepted else "")


def test_long_press_with_7_db_twist_stays_one_digit() -> None:
    signal = np.concatenate((tone("2", 500, twist_db=7.0), silence(60)))
    assert detect(with_noise(signal, 20, 8000.0**2)) == "2"


def test_level_threshold() -> None:
    assert detect(np.concatenate((tone("1", 100, level=600), silence(50)))) == "1"
    assert detect(np.concatenate((tone("1", 100, level=300), silence(50)))) == ""


@pytest.mark.parametrize(
    ("detune", "accepted"),
    [
        (0.015, True),
        (-0.015, True),
        (0.035, False),
        (-0.035, False),
    ],
)
def test_frequency_tolerance(detune: float, accepted: bool) -> None:
    signal = np.concatenate((tone("3", 100, detune=detune), silence(50)))
    assert detect(signal) == ("3" if accepted else "")


def test_sweep_through_the_dtmf_band_does_not_trigger() -> None:
    t = np.arange(2 * RATE) / RATE
    f0, f1 = 500.0, 1800.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / 4)  # linear chirp over 2 s
    assert detect(10000 * np.sin(phase)) == ""


def test_two_unrelated_sines_do_not_trigger() -> None:
    t = np.arange(RATE) / RATE
    for low, high in ((500, 1100), (650, 1250), (1000, 1400), (440, 880)):
        signal = 8000 * np.sin(2 * np.pi * low * t) + 8000 * np.sin(2 * np.pi * high * t)
        assert detect(signal) == "", (low, high)


def test_voiced_speech_like_harmonics_on_dtmf_frequencies_do_not_trigger() -> None:
    # 174.25 Hz: 4th harmonic on 697 Hz, 7th within 1 % of 1209 Hz, plus the rest.
    t = np.arange(RATE) / RATE
    signal = sum(3000 / k**0.5 * np.sin(2 * np.pi * 174.25 * k * t + k) for k in range(1, 13))
    assert detect(signal) == ""


def test_dtmf_with_strong_second_harmonic_is_rejected() -> None:
    r, c = position("5")
    t = np.arange(round(RATE * 0.1)) / RATE
    base = tone("5", 100)
    harmonics = 7000 * np.sin(2 * np.pi * 2 * ROWS[r] * t) + 7000 * np.sin(
        2 * np.pi * 2 * COLUMNS[c] * t
    )
    assert detect(np.concatenate((base + harmonics, silence(50)))) == ""
    assert detect(np.concatenate((base + 0.05 * harmonics, silence(50)))) == "5"


def test_feeding_sample_by_odd_sizes_gives_the_same_result() -> None:
    signal = keypad_sequence(on_ms=45, off_ms=45)
    assert detect(signal, frame=37) == detect(signal, frame=1000) == DIGITS


def test_goertzel_closed_form_equals_the_recurrence() -> None:
    from pbx.media.dtmf import goertzel_states

    freqs = np.array(ROWS + COLUMNS)
    coeff = 2 * np.cos(2 * np.pi * freqs / RATE)
    x = np.random.default_rng(1).normal(0, 1000, 102)
    s1 = np.zeros(8)
    s2 = np.zeros(8)
    for sample in x:
        s1, s2 = sample + coeff * s1 - s2, s1
    last, before = goertzel_states(freqs, 102)
    np.testing.assert_allclose(x @ last, s1, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(x @ before, s2, rtol=1e-9, atol=1e-6)


def test_generated_key_presses_are_detected_and_levels_are_set() -> None:
    from pbx.media.dtmf import inband_samples

    audio = np.concatenate([np.concatenate((inband_samples(d, 0.06), silence(60))) for d in DIGITS])
    assert inband_samples("5", 0.02).dtype == np.int16
    assert len(inband_samples("5", 0.02)) == 160
    assert detect(audio) == DIGITS
    press = inband_samples("1", 1.0, level_dbm0=-10.0, high_boost_db=2.0).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(press)) / (len(press) / 2)
    low_db = 20 * np.log10(spectrum[697] / 32767) + 3.14
    high_db = 20 * np.log10(spectrum[1209] / 32767) + 3.14
    assert low_db == pytest.approx(-10.0, abs=0.1)
    assert high_db == pytest.approx(-8.0, abs=0.1)
