"""Header lines the parser's fast path drops or cannot look up go the careful way and end
the same as before (RFC 3261 7.3, 7.3.1 folding, 25.1 HCOLON)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.message import parse_message

HEAD = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x@y\r\n"


@pytest.mark.parametrize(
    "line",
    ["Via", "via", "v", "Content-Length", ":value", ": x", "Via Via", "CSeq 1 OPTIONS"],
)
def test_line_without_a_name_and_colon_is_refused(line: str) -> None:
    with pytest.raises(ParseError, match="Bad header line"):
        parse_message(f"{HEAD}{line}\r\nMax-Forwards: 70\r\n\r\n".encode())


def test_folded_lines_join_the_header_above() -> None:
    msg = parse_message(
        f"{HEAD}Subject: one\r\n two\r\n\tthree:four\r\nVia : SIP/2.0/UDP h\r\n\r\n".encode()
    )
    assert list(msg.headers) == [
        ("Call-ID", "x@y"),
        ("Subject", "one two three:four"),
        ("Via", "SIP/2.0/UDP h"),
    ]


def test_unknown_names_keep_their_spelling_and_are_remembered() -> None:
    for _ in range(2):  # the second time the spelling is a dict hit on the fast path
        msg = parse_message(f"{HEAD}X-Sign-ID: 42\r\nx-sign-id: 43\r\n\r\n".encode())
        assert list(msg.headers) == [("Call-ID", "x@y"), ("X-Sign-ID", "42"), ("X-Sign-ID", "43")]


def test_compact_and_odd_case_names_on_the_fast_path() -> None:
    via = "SIP/2.0/UDP h;branch=z9hG4bK1"
    msg = parse_message(f"{HEAD}v: {via}\r\nCSEQ: 1 OPTIONS\r\n\r\n".encode())
    assert msg.via.branch == "z9hG4bK1"
    assert list(msg.headers)[1:] == [("Via", via), ("CSeq", "1 OPTIONS")]
