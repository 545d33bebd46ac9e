"""Where a datagram's head ends (RFC 3261 7.5, 18.3): parse_message looks for the blank line
from the end and falls back to the first one when the body holds a blank line of its own;
header lines written with or without a space after the colon end the same (RFC 3261 7.3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.errors import ParseError
from pbx.sip.message import parse_message

HEAD = (
    "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
    "To: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n"
)


@pytest.mark.parametrize(
    "body",
    [b"", b"hello", b"a\r\n\r\nb", b"\r\n\r\n", b"x\r\n\r\n", b"\r\n", b"a\rb\r\n\r\nc",
     b"\r\n\r\n\r\n", b"Via: SIP/2.0/UDP evil\r\n\r\n"],
)  # fmt: skip
def test_body_with_blank_lines_is_framed_by_content_length(body: bytes) -> None:
    data = f"{HEAD}Content-Length: {len(body)}\r\n\r\n".encode() + body
    msg = parse_message(data)
    assert msg.body == body
    assert msg.headers.count("Via") == 1 and msg.via.host == "h"
    assert [name for name, _ in msg.headers][-1] == "Content-Length"


def test_body_without_content_length_is_the_rest_even_with_blank_lines() -> None:
    msg = parse_message(f"{HEAD}\r\nline1\r\n\r\nline2\r\n\r\n".encode())
    assert msg.body == b"line1\r\n\r\nline2\r\n\r\n"
    assert len(msg.headers) == 5


def test_a_lone_cr_in_the_body_is_not_a_bad_line_end() -> None:
    msg = parse_message(f"{HEAD}Content-Length: 8\r\n\r\n".encode() + b"a\rb\r\n\r\nc!")
    assert msg.body == b"a\rb\r\n\r\nc"


def test_a_lone_cr_in_the_head_is_still_refused() -> None:
    with pytest.raises(ParseError, match="Bad line end"):
        parse_message(f"{HEAD}Subject: a\rb\r\n\r\nbody\r\n\r\n".encode())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([": ", ":", " : ", ":  ", ":\t", "\t:"]), min_size=6, max_size=6),
    st.binary(max_size=40),
)
def test_colon_spacing_and_bodies_end_the_same(seps: list[str], body: bytes) -> None:
    lines = [
        ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
        ("From", "<sip:x@y>;tag=1"),
        ("To", "<sip:a@b>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 MESSAGE"),
        ("Subject", "a: b"),
    ]
    head = "".join(f"{n}{sep}{v}\r\n" for (n, v), sep in zip(lines, seps, strict=True))
    data = f"MESSAGE sip:a@b SIP/2.0\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
    msg = parse_message(data + body + b"\r\n\r\ntrailing")
    assert [(n, v) for n, v in msg.headers][:6] == lines
    assert msg.body == body
    assert (msg.via.branch, msg.cseq.seq, msg.call_id, msg.from_tag) == ("z9hG4bK1", 1, "c1", "1")
