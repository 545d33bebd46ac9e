"""The one-regex fast path of parse_auth gives exactly what the scanner gives.

Authorization values as phones write them take the fast path; everything else (folded
lines, empty list items, token68, duplicates, errors) falls back to the scanner, so the
two must agree on every input the fast path accepts (differential fuzzing).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip import digest
from pbx.sip.digest import parse_auth, parse_credentials
from pbx.sip.errors import ParseError

PHONE = (
    'Digest username="2000", realm="deskpbx", nonce="AAABk2x-cFsm1yA7pA", '
    'uri="sip:127.0.0.1:5060", response="0123456789abcdef0123456789abcdef", '
    'algorithm=MD5, cnonce="b3Mxa", qop=auth, nc=00000001'
)


def _scanned(value: str) -> object:
    try:
        return digest._scan_auth(value)
    except ParseError as exc:
        return ("error", exc.reason)


def _parsed(value: str) -> object:
    try:
        return parse_auth(value)
    except ParseError as exc:
        return ("error", exc.reason)


def test_a_phones_credentials_take_the_fast_path() -> None:
    fast = digest._parse_simple_auth(PHONE)
    assert fast is not None and fast == digest._scan_auth(PHONE)
    creds = parse_credentials(PHONE)
    assert creds.username == "2000" and creds.nc == "00000001" and creds.qop == "auth"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "fast"),
    [
        ('Digest a="x\\"y\\\\z", b=tok', True),
        ('Digest  a = "" ,b=c  ', True),
        ("Digest a=b, a=c", False),  # duplicate: the scanner words the error
        ("Digest a=b,, c=d", False),  # empty list item
        ("Digest a=b,", False),
        ("Digest abc==", False),  # token68
        ("Digest a=\r\n b", False),  # folded
        ("Digest", False),
        ('Digest a="unterminated', False),
    ],
)
def test_fast_path_scope_and_agreement(value: str, fast: bool) -> None:
    assert (digest._parse_simple_auth(value) is not None) is fast
    assert _parsed(value) == _scanned(value)


PIECES = st.sampled_from(
    ["Digest", " ", "  ", "\t", ",", "=", '"', "\\", "a", "b", "nc", "uri", "x-y", "1",
     "sip:h", "\r\n", ";", "==", '"q"', '"a\\"b"', "username", "MD5"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=14).map("".join))
def test_fast_path_agrees_with_the_scanner(value: str) -> None:
    assert _parsed(value) == _scanned(value)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["username", "realm", "nonce", "uri", "qop", "nc", "X"]),
            st.sampled_from(["", " ", "\t "]),
            st.one_of(
                st.from_regex(r'"(?:[a-z :@;,=]|\\[a-z"\\])*"', fullmatch=True),
                st.from_regex(r"[A-Za-z0-9.\-]+", fullmatch=True),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_well_formed_values_agree(params: list[tuple[str, str, str]]) -> None:
    value = "Digest " + ",".join(
        f"{blank}{name}{blank}={blank}{val}" for name, blank, val in params
    )
    assert _parsed(value) == _scanned(value)


# -- challenges are built from a per-(algorithm, stale) template around the nonce ----------


def test_challenge_text_is_what_challenge_str_gives() -> None:
    from pbx.sip.digest import Challenge, parse_challenges
    from pbx.sip.digest_server import DigestServer

    server = DigestServer('odd "realm" \\ here', "s" * 32, algorithms=("SHA-256", "MD5"))
    for stale in (False, True, False):
        values = server.challenge(1000.0, stale=stale)
        nonce = parse_challenges(values[0])[0].nonce  # type: ignore[union-attr]
        assert values == [
            str(Challenge(server.realm, nonce, algorithm=a, qop=("auth",), stale=stale))
            for a in ("SHA-256", "MD5")
        ]
        assert server.nonce_issued(nonce) == 1000.0
    only_md5 = server.challenge(5.0, algorithms=["md5"])
    nonce = parse_challenges(only_md5[0])[0].nonce  # type: ignore[union-attr]
    assert only_md5 == [str(Challenge(server.realm, nonce, algorithm="MD5", qop=("auth",)))]


def test_nonce_mac_binds_secret_realm_and_context() -> None:
    from pbx.sip.digest_server import DigestServer

    server = DigestServer("deskpbx", "k" * 32)
    nonce = server.make_nonce(42.0, context="call-1")
    assert server.nonce_issued(nonce, context="call-1") == 42.0
    assert server.nonce_issued(nonce, context="call-2") is None
    assert DigestServer("other", "k" * 32).nonce_issued(nonce, context="call-1") is None
    assert DigestServer("deskpbx", "j" * 32).nonce_issued(nonce, context="call-1") is None
    long_key = DigestServer("deskpbx", "x" * 100)  # longer than a BLAKE2b key: hashed down
    assert long_key.nonce_issued(long_key.make_nonce(7.0)) == 7.0
    assert DigestServer("deskpbx", "x" * 99 + "y").nonce_issued(long_key.make_nonce(7.0)) is None
