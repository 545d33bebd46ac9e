"""Parse or raise ParseError, never anything else; verify() never raises (h11-style fuzzing)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.digest import parse_authentication_info, parse_challenges, parse_credentials
from pbx.sip.digest_client import DigestClient
from pbx.sip.digest_server import AuthStatus, DigestServer
from pbx.sip.errors import ParseError

SERVER = DigestServer("pbx", b"fuzzing-secret-0123456789")
CHALLENGES = SERVER.challenge(0.0)
VALID_AUTH = DigestClient("alice", "pw").authorization(CHALLENGES, "REGISTER", "sip:pbx")
PARSERS = (parse_challenges, parse_credentials, parse_authentication_info)
SAMPLES = (CHALLENGES[0], VALID_AUTH, 'nextnonce="a", qop=auth, rspauth="ff", nc=00000001')


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    return None


def parse_or_parse_error(parser: object, text: str) -> None:
    try:
        parser(text)  # type: ignore[operator]
    except ParseError as exc:
        assert exc.status == 400 and exc.reason


@pytest.mark.parametrize(("parser", "sample"), list(zip(PARSERS, SAMPLES, strict=True)))
def test_every_prefix_parses_or_raises_parse_error(parser: object, sample: str) -> None:
    for end in range(len(sample) + 1):
        parse_or_parse_error(parser, sample[:end])


@pytest.mark.parametrize(("parser", "sample"), list(zip(PARSERS, SAMPLES, strict=True)))
def test_byte_flips_parse_or_raise_parse_error(parser: object, sample: str) -> None:
    rng = random.Random(4475)
    for _ in range(500):
        chars = list(sample)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = chr(
                rng.choice([0, 9, 10, 13, 32, 34, 44, 61, 92, rng.randrange(0x21, 0x7F), 0xE9])
            )
        parse_or_parse_error(parser, "".join(chars))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('Digest realm=nonce"\\, \t\r\nabc=-/+')), max_size=80))
def test_random_text_parses_or_raises_parse_error(text: str) -> None:
    for parser in PARSERS:
        parse_or_parse_error(parser, text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_verify_never_raises_and_always_rechallenges(text: str) -> None:
    result = SERVER.verify(text, "REGISTER", lookup, 1.0)
    assert result.status is not AuthStatus.OK
    assert len(result.challenges) == 2
