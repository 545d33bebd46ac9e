"""SDP parser robustness: any mutated or truncated body parses or raises ParseError, never
another exception, and whatever parses round-trips through the canonical form."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbx.sip.errors import ParseError
from pbx.sip.sdp import SessionDescription, make_answer, parse, serialize

SAMPLES = sorted((Path(__file__).parent / "sdp_samples").glob("*.sdp"))
TEXTS = [p.read_text() for p in SAMPLES]
# Characters that hit the grammar: separators, digits, line ends, NUL, non-ASCII digits/space.
ALPHABET = "0123456789 =:/-.,;\r\n\t\x00amvoctbsrkzI P4٣\u00a0é"


def parse_or_error(data: str | bytes) -> SessionDescription | None:
    try:
        return parse(data)
    except ParseError as exc:
        assert exc.status == 400
        return None


def check(data: str | bytes) -> None:
    sd = parse_or_error(data)
    if sd is not None:
        assert parse(serialize(sd)) == sd


def mutate(text: str, plan: bytes) -> str:
    """Apply edits read from `plan`, 4 bytes each: operation, position (2 bytes), character.
    Plain bytes keep hypothesis cheap and still shrink to the smallest failing edit."""
    for k in range(0, len(plan) - 3, 4):
        op, where, char = plan[k] % 3, int.from_bytes(plan[k + 1 : k + 3]), plan[k + 3]
        i = where % max(len(text), 1)
        new = ALPHABET[char % len(ALPHABET)]
        text = text[:i] + (new if op < 2 else "") + text[i + (op > 0) :]
    return text


EDITS = st.binary(min_size=4, max_size=24)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEXTS), EDITS)
def test_mutated_sdp_parses_or_raises_parse_error(text: str, plan: bytes) -> None:
    check(mutate(text, plan))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    check(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n" + data)


@pytest.mark.parametrize("index", range(len(TEXTS)), ids=[p.stem for p in SAMPLES])
def test_every_prefix_parses_or_raises(index: int) -> None:
    text = TEXTS[index]
    parsed = 0
    for end in range(len(text) + 1):
        if parse_or_error(text[:end]) is not None:
            parsed += 1
    assert parse_or_error(text) is not None
    assert parsed >= 1


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(TEXTS), EDITS)
def test_answer_to_mutated_offer_is_valid_or_typed_error(text: str, plan: bytes) -> None:
    from pbx.sip.sdp import NoCommonCodec

    offer = parse_or_error(mutate(text, plan))
    if offer is None:
        return
    try:
        answer = make_answer(offer, "192.0.2.1", 4000)
    except NoCommonCodec as exc:
        assert exc.status == 488
        return
    assert len(answer.media) == len(offer.media)
    assert parse(str(answer)) == answer
