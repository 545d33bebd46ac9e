"""SIP INFO DTMF bodies: the digits phones send, the ones the PBX sends (pbx.b2bua_dtmf)."""

from __future__ import annotations

import pytest

from pbx.b2bua_dtmf import DTMF, DTMF_RELAY, dtmf_relay_body, info_digit


@pytest.mark.parametrize(
    ("content_type", "body", "digit"),
    [
        (DTMF_RELAY, b"Signal=5\r\nDuration=160\r\n", "5"),
        (DTMF_RELAY, b"Signal= *\r\nDuration=100\r\n", "*"),
        ("Application/DTMF-Relay", b"signal=#\nduration=100\n", "#"),
        (DTMF_RELAY, b"Signal=10\r\n", "*"),
        (DTMF_RELAY, b"Signal=11\r\n", "#"),
        (DTMF_RELAY, b"Signal=a\r\n", "A"),
        (DTMF, b"7", "7"),
        (DTMF, b" 0\r\n", "0"),
    ],
)
def test_digits_phones_send_are_read(content_type: str, body: bytes, digit: str) -> None:
    assert info_digit(content_type, body) == digit


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (DTMF_RELAY, b"Duration=160\r\n"),
        (DTMF_RELAY, b"Signal=X\r\n"),
        (DTMF_RELAY, b"Signal=\xff\r\n"),
        (DTMF, b"55"),
        ("application/sdp", b"Signal=5\r\n"),
        (None, b"5"),
    ],
)
def test_other_bodies_carry_no_digit(content_type: str | None, body: bytes) -> None:
    assert info_digit(content_type, body) is None


def test_the_body_sent_round_trips() -> None:
    body = dtmf_relay_body("#", 250)
    assert body == b"Signal=#\r\nDuration=250\r\n"
    assert info_digit(DTMF_RELAY, body) == "#"


def test_a_non_digit_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        dtmf_relay_body("x", 100)
