"""G.711 mu-law and A-law: encode, decode and transcode with lookup tables (ITU-T G.711).

Theory of operation
-------------------
G.711 (11/88) compands one linear sample into one octet: a sign bit, a
3-bit segment (chord) and a 4-bit step within the segment. A-law (§2,
Table 1) works on 13-bit magnitudes and toggles the even bits of the
octet on the line (XOR 0x55, §2 note "even bits inverted"); mu-law (§3,
Table 2) works on 14-bit magnitudes offset by a bias of 33 (0x84 = 132 in
16-bit units), and the whole octet is sent inverted.

Every function here is one numpy fancy-index into a table computed once at
import: decoding is a 256-entry int16 table, encoding a 65,536-entry uint8
table indexed by the 16-bit sample's bit pattern, so a 20 ms frame costs a
couple of microseconds and no Python loop runs per sample. Transcoding
between the laws follows G.711 Tables 3 and 4 (not decode-then-encode,
which differs in 88 of the 512 entries) through a 256-byte table for
`bytes.translate`, the fastest byte-to-byte map CPython has.

Which negative values fall in which interval: a two's-complement input has
one more negative value than positive ones, and G.711 only defines the
magnitude intervals. Like the ITU-T G.191 Software Tool Library (the ITU's
own reference code), negative samples take their magnitude as the one's
complement (``~x``), so ``encode(~x) == encode(x) ^ 0x80`` for every x:
the negative half is the exact mirror of the positive half, -1 encodes as
"negative zero", and -32768 is not a special case. Decoding gives the
interval midpoints of the standard's tables scaled to 16 bits (mu-law
0 .. ±32124, A-law ±8 .. ±32256), identical to the Sun g711.c decoders.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "A_TO_MU",
    "ALAW_SILENCE",
    "MU_TO_A",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "pcma_to_pcmu",
    "pcmu_to_pcma",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]

Samples = npt.NDArray[np.int16]

ULAW_SILENCE = 0xFF
"""The mu-law octet for a zero sample (positive zero)."""
ALAW_SILENCE = 0xD5
"""The A-law octet for the smallest positive sample (zero is not representable)."""

_ULAW_BIAS = 0x84  # 33 in 14-bit units (G.711 Table 2 decision values start at 0, 1, 3, ...)
_ULAW_CLIP = 0x7FFF


def _ulaw_decode_table() -> Samples:
    """G.711 Table 2 decoder outputs, 16-bit scale: ((2*step + 33) << segment) - 33, times 4."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    magnitude = (((step << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> Samples:
    """G.711 Table 1 decoder outputs, 16-bit scale: interval midpoints, even bits re-toggled."""
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    mantissa = np.where(segment > 0, step + 16, step)
    magnitude = ((mantissa << 4) + 8) << np.maximum(segment - 1, 0)
    table: Samples = np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)
    return table


def _magnitudes() -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """Every 16-bit sample in bit-pattern order: its one's-complement magnitude and sign."""
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x)
    negative = x < 0
    return np.where(negative, ~x, x), negative


def _segment_of(value: npt.NDArray[np.int32], first: int) -> npt.NDArray[np.int32]:
    """Segment 0..7 for segments that start at 0, first, 2*first, 4*first, ..., 64*first."""
    starts = first << np.arange(7, dtype=np.int32)
    return np.searchsorted(starts, value, side="right").astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """G.711 Table 2 encoder: biased magnitude -> segment and step, octet inverted (§3).

    The biased magnitude (at least 132) of segment s lies below 256 << s; clipping at
    0x7FFF maps everything beyond the last decision value to the top code.
    """
    magnitude, negative = _magnitudes()
    biased = np.minimum(magnitude + _ULAW_BIAS, _ULAW_CLIP)
    segment = _segment_of(biased, 0x100)
    step = (biased >> (segment + 3)) & 0x0F
    code = (segment << 4) | step
    table: npt.NDArray[np.uint8] = (np.where(negative, 0x7F, 0xFF) ^ code).astype(np.uint8)
    return table


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    """G.711 Table 1 encoder: 12-bit magnitude -> segment and step, even bits toggled (§2).

    Segments 0 and 1 share the finest step (16 in 16-bit units); segment
    s >= 1 covers [16 << (s-1), 32 << (s-1)) in 12-bit units.
    """
    magnitude, negative = _magnitudes()
    coarse = magnitude >> 4
    segment = _segment_of(coarse, 16)
    step = (coarse >> np.maximum(segment - 1, 0)) & 0x0F
    code = (segment << 4) | step
    table: npt.NDArray[np.uint8] = (np.where(negative, 0x00, 0x80) | (code ^ 0x55)).astype(np.uint8)
    return table


_ULAW_DEC = _ulaw_decode_table()
_ALAW_DEC = _alaw_decode_table()
_ULAW_ENC = _ulaw_encode_table()
_ALAW_ENC = _alaw_encode_table()


def ulaw_decode(data: bytes) -> Samples:
    """PCMU payload -> int16 samples (one per octet)."""
    return _ULAW_DEC.take(np.frombuffer(data, dtype=np.uint8))


def alaw_decode(data: bytes) -> Samples:
    """PCMA payload -> int16 samples (one per octet)."""
    return _ALAW_DEC.take(np.frombuffer(data, dtype=np.uint8))


def ulaw_encode(samples: Samples) -> bytes:
    """int16 samples -> PCMU payload. Other dtypes are clipped to int16 first."""
    return _ULAW_ENC.take(_as_index(samples)).tobytes()


def alaw_encode(samples: Samples) -> bytes:
    """int16 samples -> PCMA payload. Other dtypes are clipped to int16 first."""
    return _ALAW_ENC.take(_as_index(samples)).tobytes()


def _as_index(samples: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    """The samples' bit patterns as table indices; the common int16 case costs one view."""
    if type(samples) is np.ndarray and samples.dtype == np.int16:
        return samples.view(np.uint16)
    array = np.asarray(samples)
    if array.dtype != np.int16:
        array = np.clip(array, -32768, 32767).astype(np.int16)
    return array.view(np.uint16)


# G.711 Tables 3 and 4 (with the 1994 corrections of the two misprinted entries: mu value
# number 80 maps to A-law 80, A-law 80 to mu 80). Index = magnitude number of the source
# code counted from the smallest magnitude (0..127); value = magnitude number of the
# target code, 1-based as the standard prints it. Both tables are monotonic.
# fmt: off
_MU_TO_A_NUMBER = (
    1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
    9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    25, 27, 29, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
    80, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96,
    97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
    113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
)
_A_TO_MU_NUMBER = (
    1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49,
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64,
    65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
)
# fmt: on


def _mu_to_a_table() -> bytes:
    """256-byte translate table PCMU octet -> PCMA octet (G.711 Table 3), sign kept.

    A mu-law octet's magnitude number is its low 7 bits inverted; an A-law
    octet's is its low 7 bits with the even bits re-toggled.
    """
    out = bytearray(256)
    for code in range(256):
        positive = bool(code & 0x80)
        number = _MU_TO_A_NUMBER[(code & 0x7F) ^ 0x7F] - 1
        out[code] = (0x80 if positive else 0x00) | (number ^ 0x55)
    return bytes(out)


def _a_to_mu_table() -> bytes:
    """256-byte translate table PCMA octet -> PCMU octet (G.711 Table 4), sign kept."""
    out = bytearray(256)
    for code in range(256):
        positive = bool(code & 0x80)
        number = _A_TO_MU_NUMBER[(code & 0x7F) ^ 0x55]
        out[code] = (0x80 if positive else 0x00) | (number ^ 0x7F)
    return bytes(out)


MU_TO_A = _mu_to_a_table()
"""`bytes.translate` table PCMU -> PCMA (G.711 Table 3)."""
A_TO_MU = _a_to_mu_table()
"""`bytes.translate` table PCMA -> PCMU (G.711 Table 4)."""


def pcmu_to_pcma(payload: bytes) -> bytes:
    """Transcode a PCMU payload to PCMA octet for octet, without going through linear."""
    return payload.translate(MU_TO_A)


def pcma_to_pcmu(payload: bytes) -> bytes:
    """Transcode a PCMA payload to PCMU octet for octet, without going through linear."""
    return payload.translate(A_TO_MU)


def ulaw_to_alaw(code: int) -> int:
    """One PCMU octet -> PCMA octet."""
    return MU_TO_A[code & 0xFF]


def alaw_to_ulaw(code: int) -> int:
    """One PCMA octet -> PCMU octet."""
    return A_TO_MU[code & 0xFF]
