"""Framing: TCP streams (RFC 3261 18.3, RFC 5626 3.5.1 keep-alives) and truncated datagrams."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.framing import StreamParser
from pbx.sip.message import MAX_BODY, Request, Response, parse_message
from tests.conftest import rfc4475_path

REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:50123;branch=z9hG4bK-reg-1\r\n"
    b"From: <sip:201@pbx.example.com>;tag=a1\r\n"
    b"To: <sip:201@pbx.example.com>\r\n"
    b"Call-ID: reg-1@192.0.2.10\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:201@192.0.2.10:50123;transport=tcp>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
MESSAGE = (
    b"MESSAGE sip:202@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:50123;branch=z9hG4bK-msg-2\r\n"
    b"From: <sip:201@pbx.example.com>;tag=b2\r\n"
    b"To: <sip:202@pbx.example.com>\r\n"
    b"Call-ID: msg-2@192.0.2.10\r\n"
    b"CSeq: 7 MESSAGE\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 15\r\n"
    b"\r\n"
    b"hello\r\n\r\nworld!"
)
OK = b"SIP/2.0 200 OK\r\nCall-ID: reg-1@192.0.2.10\r\nCSeq: 1 REGISTER\r\nl: 3\r\n\r\nabc"
STREAM = REGISTER + b"\r\n\r\n" + MESSAGE + b"\r\n" + OK


def summary(msgs: list[Request | Response]) -> list[tuple[str, bytes]]:
    return [(m.call_id + "/" + str(m.cseq), m.body) for m in msgs]


EXPECTED = [
    ("reg-1@192.0.2.10/1 REGISTER", b""),
    ("msg-2@192.0.2.10/7 MESSAGE", b"hello\r\n\r\nworld!"),
    ("reg-1@192.0.2.10/1 REGISTER", b"abc"),
]


def test_whole_stream_in_one_chunk() -> None:
    parser = StreamParser()
    assert summary(parser.feed(STREAM)) == EXPECTED
    assert parser.buffered == 0


def test_byte_at_a_time() -> None:
    parser = StreamParser()
    out: list[Request | Response] = []
    counts = []
    for i in range(len(STREAM)):
        got = parser.feed(STREAM[i : i + 1])
        counts.append(len(got))
        out.extend(got)
    assert summary(out) == EXPECTED
    # each message is delivered exactly when its last body octet arrives
    ends = [len(REGISTER) - 1, len(REGISTER) + 4 + len(MESSAGE) - 1, len(STREAM) - 1]
    assert [i for i, c in enumerate(counts) if c] == ends


def test_every_two_chunk_split() -> None:
    for cut in range(len(STREAM) + 1):
        parser = StreamParser()
        msgs = parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:])
        assert summary(msgs) == EXPECTED, cut


def test_keepalives_alone_yield_nothing() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == []
    assert parser.feed(b"\r\n") == []
    assert parser.buffered == 0
    assert len(parser.feed(REGISTER)) == 1


def test_stream_requires_content_length() -> None:
    parser = StreamParser()
    with pytest.raises(ParseError) as info:
        parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n")
    assert info.value.reason == "Missing Content-Length"


def test_stream_limits() -> None:
    with pytest.raises(ParseError) as info:
        StreamParser().feed(b"OPTIONS sip:a@b SIP/2.0\r\nl: %d\r\n\r\n" % (MAX_BODY + 1))
    assert (info.value.status, info.value.reason) == (513, "Message Too Large")
    parser = StreamParser()
    assert parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX-Pad: " + b"a" * 60000) == []
    with pytest.raises(ParseError) as info:
        parser.feed(b"a" * 10000)
    assert info.value.status == 513


def test_stream_bad_start_line() -> None:
    with pytest.raises(ParseError, match="Bad Request-Line"):
        StreamParser().feed(b"GARBAGE\r\n\r\n")


@pytest.mark.parametrize("data", [REGISTER, MESSAGE, OK])
def test_every_prefix_of_a_datagram_is_rejected(data: bytes) -> None:
    assert parse_message(data) is not None
    for cut in range(len(data)):
        with pytest.raises(ParseError) as info:
            parse_message(data[:cut])
        assert info.value.reason in (
            "Empty message", "Incomplete message", "Bad Content-Length"
        ), cut  # fmt: skip


def test_every_prefix_of_the_torture_messages() -> None:
    folder = rfc4475_path()
    if folder is None:
        pytest.skip("RFC 4475 torture messages not available")
    for name in ("wsinv", "esc01", "mpart01", "longreq"):
        data = (folder / f"{name}.dat").read_bytes()
        full = parse_message(data)
        for cut in range(len(data)):
            try:
                msg = parse_message(data[:cut])
            except ParseError:
                continue
            raise AssertionError(f"{name}: prefix {cut} parsed as {msg!r} ({full!r})")
