"""Stream framing rules (RFC 3261 18.3, RFC 5626 3.5.1) of pbx.net.tcp.StreamFramer.

The framer has no I/O: bytes in, whole messages (or a FrameError) out.
"""

from __future__ import annotations

import pytest

from pbx.net.tcp import (
    FrameError,
    StreamFramer,
    address_key,
    content_length,
    head_without_length,
)


def make_request(body: bytes = b"", *, branch: str = "z9hG4bK1", compact: bool = False) -> bytes:
    length_name = "l" if compact else "Content-Length"
    return (
        f"OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5070;branch={branch}\r\n"
        f"From: <sip:a@127.0.0.1>;tag=1\r\n"
        f"To: <sip:pbx@127.0.0.1>\r\n"
        f"Call-ID: c1\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"{length_name}: {len(body)}\r\n"
        f"\r\n"
    ).encode() + body


def test_two_messages_in_one_chunk() -> None:
    first, second = make_request(b"hello"), make_request(branch="z9hG4bK2")
    framer = StreamFramer(4096)
    assert framer.feed(first + second) == [first, second]
    assert framer.buffered == 0


def test_byte_at_a_time() -> None:
    message = make_request(b"v=0\r\n")
    framer = StreamFramer(4096)
    out: list[bytes | FrameError] = []
    for i in range(len(message)):
        out += framer.feed(message[i : i + 1])
        if i < len(message) - 1:
            assert out == []
    assert out == [message]


def test_split_inside_the_body_and_compact_length() -> None:
    message = make_request(b"0123456789", compact=True)
    framer = StreamFramer(4096)
    assert framer.feed(message[:-4]) == []
    assert framer.feed(message[-4:] + b"\r\n") == [message]


def test_keepalives_between_messages_and_pings() -> None:
    message = make_request()
    framer = StreamFramer(4096)
    assert framer.feed(b"\r\n\r\n" + message) == [message]
    assert framer.take_pings() == 1
    # a lone CRLF keep-alive is no ping
    assert framer.feed(b"\r\n" + message) == [message]
    assert framer.take_pings() == 0
    # a double CRLF split across two reads is still one ping
    assert framer.feed(b"\r\n") == []
    assert framer.take_pings() == 0
    assert framer.feed(b"\r\n") == []
    assert framer.take_pings() == 1


def test_oversized_body_is_refused_before_it_arrives() -> None:
    message = make_request(b"x" * 500)
    framer = StreamFramer(300)
    head_end = message.index(b"\r\n\r\n") + 2
    out = framer.feed(message[: head_end + 2])
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert out[0].status == 413
    assert out[0].head == message[:head_end]
    assert framer.feed(message[head_end + 2 :]) == []  # the stream is dead


def test_oversized_headers_without_end() -> None:
    framer = StreamFramer(100)
    out = framer.feed(b"OPTIONS sip:x SIP/2.0\r\nX-Junk: " + b"a" * 200)
    assert out == [FrameError(413, "Message Too Large", None)]


def test_message_before_an_oversized_one_is_delivered() -> None:
    good = make_request()
    bad = make_request(b"y" * 1000)
    out = StreamFramer(600).feed(good + bad)
    assert out[0] == good
    assert isinstance(out[1], FrameError) and out[1].status == 413


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"X: 1\r\nContent-Length: 12\r\n", 12),
        (b"X: 1\r\nl:7\r\n", 7),
        (b"X: 1\r\ncontent-length  :  0  \r\n", 0),
        (b"X: 1\r\n", FrameError(400, "Missing Content-Length", b"X: 1\r\n")),
        (b"l: 1x\r\n", FrameError(400, "Bad Content-Length", b"l: 1x\r\n")),
        (
            b"Content-Length: 1\r\nl: 2\r\n",
            FrameError(400, "Bad Content-Length", b"Content-Length: 1\r\nl: 2\r\n"),
        ),
        # any case; other headers that start with "l" are not the compact form
        (b"X: 1\r\nLines: 4\r\nCONTENT-LENGTH: 2\r\n", 2),
        (b"X-L: 9\r\nL : 5\r\nlength: 6\r\n", 5),
        # the same value twice is not a conflict
        (b"Content-Length: 3\r\nl: 3\r\n", 3),
    ],
)
def test_content_length(head: bytes, expected: int | FrameError) -> None:
    assert content_length(head) == expected


def test_missing_content_length_on_a_stream_is_an_error() -> None:
    message = make_request().replace(b"Content-Length: 0\r\n", b"")
    out = StreamFramer(4096).feed(message)
    assert len(out) == 1 and isinstance(out[0], FrameError)
    assert (out[0].status, out[0].reason) == (400, "Missing Content-Length")


def test_head_without_length_parses_alone() -> None:
    from pbx.sip.message import parse_message

    message = make_request(b"z" * 50)
    head = message[: message.index(b"\r\n\r\n") + 2]
    request = parse_message(head_without_length(head))
    assert request.call_id == "c1"
    assert request.body == b""
    assert b"Content-Length" not in head_without_length(head)


@pytest.mark.parametrize(
    ("host", "port", "key"),
    [
        ("[::1]", 5060, ("::1", 5060)),
        ("0:0::1", 5060, ("::1", 5060)),
        ("127.0.0.1", 5070, ("127.0.0.1", 5070)),
        ("PBX.Example.com", 5060, ("pbx.example.com", 5060)),
    ],
)
def test_address_key(host: str, port: int, key: tuple[str, int]) -> None:
    assert address_key(host, port) == key
