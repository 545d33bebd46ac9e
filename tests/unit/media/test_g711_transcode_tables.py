"""PCMU <-> PCMA by G.711 Tables 3 and 4."""

from __future__ import annotations

import numpy as np

from pbx.media import g711

ALL_CODES = bytes(range(256))


def test_tables_are_256_bytes_and_keep_the_sign() -> None:
    assert len(g711.MU_TO_A) == len(g711.A_TO_MU) == 256
    assert all(g711.MU_TO_A[c] & 0x80 == c & 0x80 for c in range(256))
    assert all(g711.A_TO_MU[c] & 0x80 == c & 0x80 for c in range(256))


def test_conversion_is_monotonic_in_the_linear_value() -> None:
    for decode, convert, decode_out in (
        (g711.ulaw_decode, g711.pcmu_to_pcma, g711.alaw_decode),
        (g711.alaw_decode, g711.pcma_to_pcmu, g711.ulaw_decode),
    ):
        order = np.argsort(decode(ALL_CODES), kind="stable")
        out = decode_out(convert(bytes(order.astype(np.uint8))))
        assert np.all(np.diff(out.astype(np.int32)) >= 0)


def test_conversion_error_stays_within_one_target_step() -> None:
    mu = g711.ulaw_decode(ALL_CODES).astype(np.int32)
    a = g711.alaw_decode(g711.pcmu_to_pcma(ALL_CODES)).astype(np.int32)
    assert np.max(np.abs(a - mu) - np.maximum(16, np.abs(mu) // 16)) <= 0
    a = g711.alaw_decode(ALL_CODES).astype(np.int32)
    mu = g711.ulaw_decode(g711.pcma_to_pcmu(ALL_CODES)).astype(np.int32)
    assert np.max(np.abs(a - mu) - np.maximum(16, np.abs(a) // 16)) <= 0


def test_known_entries_of_tables_3_and_4() -> None:
    # Table 3: mu value 0 (+0 and -0) -> A-law number 1; mu top -> A top; corrected entry 80.
    assert g711.ulaw_to_alaw(0xFF) == 0xD5 and g711.ulaw_to_alaw(0x7F) == 0x55
    assert g711.ulaw_to_alaw(0x80) == 0xAA and g711.ulaw_to_alaw(0x00) == 0x2A
    assert g711.ulaw_to_alaw(0xFF ^ 80) == 0x80 | ((80 - 1) ^ 0x55)
    # Table 4: A-law numbers 0..7 map to mu numbers 1, 3, ..., 15; corrected entry 79 -> 80.
    assert [g711.alaw_to_ulaw(0xD5 ^ n) for n in range(8)] == [0xFF ^ m for m in range(1, 16, 2)]
    assert g711.alaw_to_ulaw(0xD5 ^ 79) == 0xFF ^ 80
    assert g711.alaw_to_ulaw(0xAA) == 0x80


def test_a_to_mu_to_a_is_transparent_where_the_standard_says() -> None:
    back = g711.pcmu_to_pcma(g711.pcma_to_pcmu(ALL_CODES))
    same = sum(1 for c in range(256) if back[c] == c)
    assert same == 240  # the 16 A-law codes that share a mu code pairwise cannot return


def test_payload_translation_matches_per_octet_function() -> None:
    payload = bytes((i * 37) & 0xFF for i in range(160))
    assert g711.pcmu_to_pcma(payload) == bytes(g711.ulaw_to_alaw(c) for c in payload)
    assert g711.pcma_to_pcmu(payload) == bytes(g711.alaw_to_ulaw(c) for c in payload)


def test_tone_survives_transcoding_with_small_error() -> None:
    t = np.arange(160) / 8000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    via_a = g711.alaw_decode(g711.pcmu_to_pcma(g711.ulaw_encode(tone))).astype(np.float64)
    error = via_a - tone
    snr = 10 * np.log10(np.sum(tone.astype(np.float64) ** 2) / np.sum(error**2))
    assert snr > 30
