"""G.711 against the standard's own tables (ITU-T G.711 Tables 1-4), every code and sample."""

from __future__ import annotations

import numpy as np
import pytest

from pbx.media import g711

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))

# G.711 Table 2 (mu-law), 14-bit magnitudes: segment end decision values; segment 0 has a
# first interval of width 1 (0..1, output 0) then 15 of width 2; segment k >= 1 has 16
# intervals of width 2**(k+1).
MU_SEGMENT_ENDS = (31, 95, 223, 479, 991, 2015, 4063, 8159)
# G.711 Table 1 (A-law), 12-bit magnitudes: segments 0 and 1 both have intervals of 2.
A_SEGMENT_ENDS = (32, 64, 128, 256, 512, 1024, 2048, 4096)


def mu_intervals() -> list[tuple[int, int]]:
    """(lower decision value, decoder output) for mu-law magnitude numbers 0..127."""
    rows = [(0, 0)] + [(1 + 2 * q, 2 + 2 * q) for q in range(15)]
    for k in range(1, 8):
        step, start = 2 ** (k + 1), MU_SEGMENT_ENDS[k - 1]
        rows += [(start + q * step, start + q * step + step // 2) for q in range(16)]
    return rows


def a_intervals() -> list[tuple[int, int]]:
    """(lower decision value, decoder output) for A-law magnitude numbers 0..127 (13-bit)."""
    rows = [(2 * q, 2 * q + 1) for q in range(32)]
    for k in range(2, 8):
        step, start = 2**k, A_SEGMENT_ENDS[k - 1]
        rows += [(start + q * step, start + q * step + step // 2) for q in range(16)]
    return rows


def mu_code(number: int, positive: bool) -> int:
    return (number ^ 0x7F) | (0x80 if positive else 0)


def a_code(number: int, positive: bool) -> int:
    return (number ^ 0x55) | (0x80 if positive else 0)


def test_mu_segment_table_is_contiguous_up_to_8159() -> None:
    rows = mu_intervals()
    assert len(rows) == 128 and rows[16] == (31, 33) and rows[-1] == (7903, 8031)


def test_ulaw_decode_gives_table2_outputs_for_all_256_codes() -> None:
    decoded = g711.ulaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    for number, (_, output) in enumerate(mu_intervals()):
        assert decoded[mu_code(number, True)] == 4 * output
        assert decoded[mu_code(number, False)] == -4 * output


def test_alaw_decode_gives_table1_outputs_for_all_256_codes() -> None:
    decoded = g711.alaw_decode(ALL_CODES)
    for number, (_, output) in enumerate(a_intervals()):
        assert decoded[a_code(number, True)] == 8 * output
        assert decoded[a_code(number, False)] == -8 * output


def expected_codes(law: str) -> np.ndarray:
    """The standard's encoder: find each sample's interval by its decision values."""
    positive = ALL_SAMPLES >= 0
    magnitude = np.where(positive, ALL_SAMPLES.astype(np.int32), ~ALL_SAMPLES.astype(np.int32))
    if law == "mu":
        lowers = np.array([lo for lo, _ in mu_intervals()])
        scaled, code = magnitude >> 2, mu_code
    else:
        lowers = np.array([lo for lo, _ in a_intervals()])
        scaled, code = magnitude >> 3, a_code
    numbers = np.searchsorted(lowers, scaled, side="right") - 1
    return np.array([code(int(n), bool(p)) for n, p in zip(numbers, positive, strict=True)])


@pytest.mark.parametrize(("law", "encode"), [("mu", g711.ulaw_encode), ("a", g711.alaw_encode)])
def test_every_16_bit_sample_encodes_into_its_decision_interval(law: str, encode) -> None:
    got = np.frombuffer(encode(ALL_SAMPLES), dtype=np.uint8)
    assert got.shape == (65536,)
    np.testing.assert_array_equal(got, expected_codes(law))


def test_alaw_round_trip_8_16_8_is_identity_for_all_256_codes() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_ulaw_round_trip_is_identity_except_negative_zero() -> None:
    back = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    assert [c for c in range(256) if back[c] != c] == [0x7F]
    assert back[0x7F] == 0xFF  # -0 decodes to 0, which encodes as +0


def test_alaw_even_bits_are_inverted_on_the_line() -> None:
    assert g711.alaw_encode(np.array([0, -1, 7, -8, 16], np.int16)) == bytes(
        [0xD5, 0x55, 0xD5, 0x55, 0xD4]
    )
    assert g711.alaw_decode(b"\x55\xd5\x2a\xaa").tolist() == [-8, 8, -32256, 32256]
    assert g711.ALAW_SILENCE == 0xD5


def test_ulaw_bias_0x84_and_inverted_octet() -> None:
    # sample + 0x84 is the biased value whose top bit picks the segment: 124 + 132 = 256.
    codes = g711.ulaw_encode(np.array([0, 123, 124, 32767, -32768, -1, 32635], np.int16))
    assert codes == bytes([0xFF, 0xF0, 0xEF, 0x80, 0x00, 0x7F, 0x80])
    assert g711.ulaw_decode(b"\xff\x7f\x80\x00\xef").tolist() == [0, 0, 32124, -32124, 132]
    assert g711.ULAW_SILENCE == 0xFF


@pytest.mark.parametrize("encode", [g711.ulaw_encode, g711.alaw_encode])
def test_negative_half_mirrors_positive_by_ones_complement(encode) -> None:
    positive = np.arange(0, 32768, dtype=np.int16)
    a = np.frombuffer(encode(positive), np.uint8)
    b = np.frombuffer(encode(~positive), np.uint8)
    np.testing.assert_array_equal(a ^ 0x80, b)


def test_encode_clips_wider_dtypes_and_takes_empty_input() -> None:
    assert g711.ulaw_encode(np.array([40000, -40000])) == bytes([0x80, 0x00])
    assert g711.alaw_encode(np.array([], np.int16)) == b""
    assert g711.ulaw_decode(b"").shape == (0,)


def test_decoders_return_writable_arrays() -> None:
    samples = g711.ulaw_decode(b"\x00\x01")
    samples[0] = 5
    assert g711.ulaw_decode(b"\x00")[0] == -32124
