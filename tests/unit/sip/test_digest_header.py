"""Auth header grammar: RFC 3261 §25.1, RFC 7235 §2.1, RFC 7615 §3; RFC 4475 regaut01."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbx.sip.digest import (
    AuthenticationInfo,
    AuthParams,
    Challenge,
    Credentials,
    parse_auth_list,
    parse_authentication_info,
    parse_challenges,
    parse_credentials,
)
from pbx.sip.errors import ParseError

# parents[4] is the directory that contains the repository (tests/unit/sip/<file>).
RFC4475 = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "rfc4475"


def _header_from_corpus(name: str, header: str) -> str:
    path = RFC4475 / name
    if not path.is_file():
        pytest.skip(f"RFC 4475 corpus not found at {RFC4475}")
    text = path.read_bytes().decode("utf-8")
    match = re.search(rf"^{header}:[ \t]*(.*?)\r?$", text, re.MULTILINE | re.IGNORECASE)
    assert match, f"{header} missing from {name}"
    return match.group(1)


def test_regaut01_unknown_scheme_parses_generically() -> None:
    value = _header_from_corpus("regaut01.dat", "Authorization")
    assert value == "NoOneKnowsThisScheme opaque-data=here"
    parsed = parse_credentials(value)
    assert parsed == AuthParams("NoOneKnowsThisScheme", (("opaque-data", "here"),))
    assert not parsed.is_digest


def test_challenge_round_trip_is_bytes_exact() -> None:
    text = (
        'Digest realm="pbx.example", domain="sip:pbx.example", nonce="abc/+=", '
        'opaque="o\\"q", stale=true, algorithm=SHA-256, qop="auth,auth-int", userhash=true'
    )
    (challenge,) = parse_challenges(text)
    assert challenge == Challenge(
        realm="pbx.example",
        nonce="abc/+=",
        opaque='o"q',
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
        stale=True,
        domain="sip:pbx.example",
        userhash=True,
    )
    assert str(challenge) == text


def test_credentials_round_trip_is_bytes_exact() -> None:
    text = (
        'Digest username="al\\\\ice", realm="pbx", nonce="n1", uri="sip:pbx;transport=tcp", '
        'response="0123abcd", algorithm=MD5, cnonce="c1", opaque="o", qop=auth, nc=0000000a'
    )
    creds = parse_credentials(text)
    assert isinstance(creds, Credentials)
    assert creds.username == "al\\ice"
    assert creds.nc == "0000000a"
    assert str(creds) == text


def test_several_challenges_in_one_value_including_other_schemes() -> None:
    value = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", '
        'Basic realm="simple", Digest realm="pbx", nonce="n", algorithm=SHA-256, '
        "Bearer abc.def-ghi==, Digest realm=pbx, nonce=n2"
    )
    parsed = parse_challenges(value)
    assert [p.scheme if isinstance(p, AuthParams) else p.algorithm for p in parsed] == [
        "Newauth",
        "Basic",
        "SHA-256",
        "Bearer",
        "MD5",
    ]
    newauth = parsed[0]
    assert isinstance(newauth, AuthParams)
    assert newauth.get("title") == 'Login to "apps"'
    assert parsed[3] == AuthParams("Bearer", (), "abc.def-ghi==")
    assert parsed[4] == Challenge(realm="pbx", nonce="n2")


def test_names_and_scheme_are_case_insensitive_and_lws_tolerated() -> None:
    creds = parse_credentials(
        'dIgEsT  USERNAME = "bob" ,REALM="r",\r\n\tNonce="n", URI="sip:r", Response="ff",,'
    )
    assert creds == Credentials("bob", "r", "n", "sip:r", "ff")


def test_authentication_info_round_trip() -> None:
    text = 'nextnonce="n2", qop=auth, rspauth="ab12", cnonce="c", nc=00000001'
    info = parse_authentication_info(text)
    assert info == AuthenticationInfo("n2", "auth", "ab12", "c", "00000001")
    assert str(info) == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        'Digest realm="unterminated',
        'Digest realm="x", nonce',
        'Digest realm="x" nonce="y"',
        'Digest realm="x", realm="y", nonce="n"',
        '"Digest" realm="x"',
        'Digest realm="x", nonce="n", =3',
        'Digest realm="a\\',
        'Digest realm="line\r\nbreak", nonce="n"',
        "Basic abc== trailing",
    ],
)
def test_malformed_challenges_raise_parse_error(value: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_challenges(value)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('Digest username="a", realm="r", nonce="n", uri="u"', "response"),
        ('Digest realm="r", nonce="n", uri="u", response="x"', "username"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="x", nc=1', "nc"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="x", Digest', "'='"),
    ],
)
def test_malformed_credentials_say_what_is_wrong(value: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_credentials(value)
    assert reason in info.value.reason


def test_challenge_without_nonce_is_rejected() -> None:
    with pytest.raises(ParseError, match="nonce"):
        parse_challenges('Digest realm="r"')


def test_unknown_scheme_list_keeps_params_in_order() -> None:
    (auth,) = parse_auth_list('X a=1, b="2", c=3')
    assert auth.params == (("a", "1"), ("b", "2"), ("c", "3"))
