"""parse_credentials' one-pass fast path gives exactly what parse_auth + from_params give.

The fast path reads the params of a Digest Authorization value with one findall whose
matches must tile the text (see digest._TILED_PARAMS); every other spelling falls back to
the scanner. Differential tests: same Credentials, same AuthParams, same error wording.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip import digest
from pbx.sip.digest import AuthParams, Credentials, parse_credentials
from pbx.sip.errors import ParseError

SIPP = (
    'Digest username="1000",realm="deskpbx",cnonce="6b8b4567",nc=00000001,'
    'qop=auth,uri="sip:127.0.0.1:5060",nonce="AAAB-x_y",response="0123abcd",algorithm=MD5'
)


def _reference(value: str) -> object:
    """The scanner's reading, typed as parse_credentials types it."""
    try:
        auth = digest._scan_auth(value)
        return Credentials.from_params(auth) if auth.is_digest else auth
    except ParseError as exc:
        return ("error", exc.reason)


def _fast(value: str) -> object:
    try:
        return parse_credentials(value)
    except ParseError as exc:
        return ("error", exc.reason)


def test_sipp_credentials_parse_to_their_fields() -> None:
    creds = parse_credentials(SIPP)
    assert creds == Credentials(
        "1000", "deskpbx", "AAAB-x_y", "sip:127.0.0.1:5060", "0123abcd", "MD5",
        "6b8b4567", "00000001", "auth", None, False,
    )  # fmt: skip
    assert type(creds) is Credentials and hash(creds) == hash(dataclasses.replace(creds))
    with pytest.raises(dataclasses.FrozenInstanceError):
        creds.nc = "00000002"  # type: ignore[misc, union-attr]


@pytest.mark.parametrize(
    "value",
    [
        SIPP,
        SIPP + ",",  # trailing comma: the scanner accepts it as an empty list item
        SIPP + ", ",
        SIPP.replace(",realm", ",, realm"),  # empty list item in the middle
        SIPP.replace("username", "USERNAME"),  # names are case-insensitive
        SIPP + ",username=x",  # duplicate param: the scanner's error
        SIPP.replace('realm="deskpbx",', ""),  # missing mandatory param
        SIPP.replace("nc=00000001", "nc=1"),  # bad nc
        SIPP.replace('cnonce="6b8b4567"', 'cnonce="a\\"b\\\\c"'),  # quoted-pairs
        SIPP.replace(",qop", ", userhash=TRUE,qop"),
        SIPP + " junk",
        SIPP.replace(",uri", ",\r\n uri"),  # folded line
        "Digest",
        "Digest ",
        "NoOneKnowsThisScheme a=b",  # RFC 4475 §3.3.13: not Digest, typed as AuthParams
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        'Digest username="1000" realm="x"',  # missing comma
        "",
    ],
)
def test_fast_path_agrees_with_the_scanner(value: str) -> None:
    assert _fast(value) == _reference(value)


def test_non_digest_schemes_stay_auth_params() -> None:
    parsed = parse_credentials("NoOneKnowsThisScheme a=b")
    assert parsed == AuthParams("NoOneKnowsThisScheme", (("a", "b"),))


PIECES = st.sampled_from(
    ["Digest ", "digest ", " ", "\t", ",", ", ", "=", '"', "\\", "\r\n", "x", "==",
     'username="1"', 'realm="r"', 'nonce="n"', 'uri="sip:h"', 'response="0a"', "nc=00000001",
     "nc=1", "qop=auth", 'cnonce="c"', "algorithm=MD5", "userhash=true", '"a\\"b"']
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(PIECES, max_size=16).map("".join))
def test_random_values_agree_with_the_scanner(value: str) -> None:
    assert _fast(value) == _reference(value)


@settings(max_examples=300, deadline=None)
@given(st.permutations(SIPP.removeprefix("Digest ").split(",")), st.sampled_from([",", ", "]))
def test_any_param_order_agrees_with_the_scanner(params: list[str], comma: str) -> None:
    value = "Digest " + comma.join(params)
    assert _fast(value) == _reference(value)
    assert isinstance(_fast(value), Credentials)
