"""Acoustic echo cancellation and noise suppression: libspeexdsp through ctypes.

What the far end says comes out of the speaker, bounces around the room and
into the microphone; without cancellation the far end hears itself. Speex's
MDF echo canceller (an adaptive filter over `tail_ms` of echo path) removes
it, and its preprocessor suppresses the residual echo and steady noise.
Frames are 8 kHz mono int16, 160 samples (the call side of app.audio).

`playback(frame)` is called with every frame sent to the speaker and
`capture(frame)` with every microphone frame; speex's own playback buffer
lines the two up (speex_echo_playback / speex_echo_capture), so they may
come from different threads' timing. The library is Debian's libspeexdsp1;
when it is missing `EchoCanceller.available()` is False and audio passes
through untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

RATE = 8000
FRAME = 160
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_SET_ECHO_STATE = 24

Samples = npt.NDArray[np.int16]
_lib: Any = None


def _load() -> Any:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            _lib = False
            return _lib
        ptr, i16 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16)
        lib.speex_echo_state_init.restype = ptr
        lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_echo_state_destroy.argtypes = [ptr]
        lib.speex_echo_ctl.argtypes = [ptr, ctypes.c_int, ctypes.c_void_p]
        lib.speex_echo_playback.argtypes = [ptr, i16]
        lib.speex_echo_capture.argtypes = [ptr, i16, i16]
        lib.speex_preprocess_state_init.restype = ptr
        lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_preprocess_state_destroy.argtypes = [ptr]
        lib.speex_preprocess_ctl.argtypes = [ptr, ctypes.c_int, ctypes.c_void_p]
        lib.speex_preprocess_run.argtypes = [ptr, i16]
        _lib = lib
    return _lib


def _i16(frame: Samples) -> Any:
    return frame.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))


class EchoCanceller:
    """One call's echo canceller with noise suppression (call `close()` when done)."""

    @staticmethod
    def available() -> bool:
        return bool(_load())

    def __init__(self, tail_ms: int = 200, *, denoise: bool = True) -> None:
        lib = _load()
        if not lib:
            raise OSError("libspeexdsp is not installed (Debian: libspeexdsp1)")
        self._lib = lib
        self._echo = lib.speex_echo_state_init(FRAME, RATE * tail_ms // 1000)
        rate = ctypes.c_int(RATE)
        lib.speex_echo_ctl(self._echo, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre = lib.speex_preprocess_state_init(FRAME, RATE)
        on = ctypes.c_int(1 if denoise else 0)
        lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(on))
        lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_ECHO_STATE, self._echo)

    def playback(self, frame: Samples) -> None:
        """A frame that is about to leave the speaker."""
        data = np.ascontiguousarray(frame, dtype=np.int16)
        self._lib.speex_echo_playback(self._echo, _i16(data))

    def capture(self, frame: Samples) -> Samples:
        """A microphone frame without the echo (and with less noise)."""
        data = np.ascontiguousarray(frame, dtype=np.int16)
        out = np.empty(FRAME, dtype=np.int16)
        self._lib.speex_echo_capture(self._echo, _i16(data), _i16(out))
        self._lib.speex_preprocess_run(self._pre, _i16(out))
        return out

    def close(self) -> None:
        if self._echo:
            self._lib.speex_echo_state_destroy(self._echo)
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._echo = self._pre = None


def erle_db(echo: npt.ArrayLike, residual: npt.ArrayLike) -> float:
    """Echo return loss enhancement: how much quieter the echo got (dB)."""
    e = np.asarray(echo, dtype=np.float64)
    r = np.asarray(residual, dtype=np.float64)
    return float(10 * np.log10(float(np.mean(e**2)) / max(float(np.mean(r**2)), 1e-9)))


def synthetic_echo_erle(seconds: float = 10.0, seed: int = 7) -> tuple[float, float]:
    """(ERLE, near-end loss) in dB on a synthetic room.

    The far end is noise played through a room-like echo path (20 ms delay,
    decaying reflections, -6 dB) into a microphone with a little noise. ERLE
    is measured over seconds 4-7, once the filter has converged, with only
    echo at the microphone. From 7 s on the near end talks too (700 Hz
    bursts, syllable-like): the second figure is how much quieter its voice
    got, proof that the canceller removes the echo, not everything.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE) // FRAME * FRAME
    far = np.clip(rng.normal(0, 3000, n), -32768, 32767)
    path = np.zeros(int(0.1 * RATE))
    path[160] = 0.5
    taps = rng.normal(0, 0.08, path.size - 161) * np.exp(-np.arange(path.size - 161) / 120)
    path[161:] += taps
    echo = np.convolve(far, path)[:n]
    t = np.arange(n) / RATE
    bursts = (np.sin(2 * np.pi * 3 * t) > 0) & (t >= 7.0)
    near = 4000 * np.sin(2 * np.pi * 700 * t) * bursts
    mic = np.clip(echo + near + rng.normal(0, 30, n), -32768, 32767).astype(np.int16)
    far16 = far.astype(np.int16)
    canceller = EchoCanceller()
    out = np.empty(n, dtype=np.int16)
    try:
        for start in range(0, n, FRAME):
            canceller.playback(far16[start : start + FRAME])
            out[start : start + FRAME] = canceller.capture(mic[start : start + FRAME])
    finally:
        canceller.close()
    echo_only = slice(4 * RATE, 7 * RATE)
    talking = slice(7 * RATE, n)
    near_loss = erle_db(near[talking], _band(out[talking], 700))
    return erle_db(mic[echo_only], out[echo_only]), near_loss


def _band(samples: npt.ArrayLike, freq: float) -> npt.NDArray[np.float64]:
    """`samples` filtered to +-50 Hz around `freq` (FFT mask): the near end's voice only."""
    data = np.asarray(samples, dtype=np.float64)
    spectrum = np.fft.rfft(data)
    bins = np.fft.rfftfreq(data.size, 1 / RATE)
    spectrum[np.abs(bins - freq) > 50] = 0
    return np.fft.irfft(spectrum, data.size)
