"""A first REGISTER read from its header lines (pbx.registrar_challenge): which datagrams it
takes, and that its 401 is the bytes the parsed path writes (RFC 3261 8.2.6.2, 10.3, 22.4).
The lane-level differential test against the full path is
tests/integration/test_register_lane.py."""

from __future__ import annotations

import pytest

from pbx.registrar_challenge import challenge_bytes, first_register
from pbx.sip.message import Request, parse_message
from pbx.sip.transport import stamp_request

SOURCE = ("203.0.113.7", 40000)
CHALLENGES = ['Digest realm="pbx", nonce="n1", qop="auth", algorithm=MD5', 'Digest realm="x"']

LINES = [
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport",
    "From: <sip:1001@pbx.example>;tag=f1",
    "To: <sip:1001@pbx.example>",
    "Call-ID: c1@10.0.0.5",
    "CSeq: 1 REGISTER",
    "Contact: <sip:1001@10.0.0.5:5060>;expires=600",
    "Max-Forwards: 70",
    "Expires: 3600",
    "User-Agent: Phone/1.0",
    "Content-Length: 0",
]


def datagram(lines: list[str] = LINES, start: str = "REGISTER sip:pbx.example SIP/2.0") -> bytes:
    return ("\r\n".join([start, *lines]) + "\r\n\r\n").encode()


def replaced(old: str, new: str) -> bytes:
    return datagram([new if line.startswith(old) else line for line in LINES])


def parsed_401(data: bytes) -> bytes:
    """What the lane's parsed path sends: the request stamped, make_response(401), our tag."""
    request = parse_message(data)
    assert isinstance(request, Request)
    stamp_request(request, SOURCE)
    response = request.make_response(401, to_tag="t0")
    for value in CHALLENGES:
        response.headers.add("WWW-Authenticate", value)
    return bytes(response)


def quick_401(data: bytes) -> bytes:
    from pbx.sip.transport import stamped_via

    first = first_register(data)
    assert first is not None
    stamped = stamped_via(first.via, SOURCE)
    return challenge_bytes(first.copied, None if stamped is None else str(stamped), "t0",
                           CHALLENGES)  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        datagram(),
        replaced("Via:", "v: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport"),
        replaced("Via:", "Via: SIP/2.0/UDP 203.0.113.7:40000;branch=z9hG4bKr1"),  # no stamping
        replaced("Via:", "Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKr1"),  # received only
        replaced("From:", 'f:  "Alice Smith" <sip:1001@pbx.example>;tag=f1'),
        replaced("To:", "t:sip:1001@pbx.example"),
        replaced("Call-ID:", "i: c1"),
        replaced("Contact:", "m: <sip:1001@10.0.0.5>, <sip:1001@10.0.0.6>;q=0.5"),
        replaced("Contact:", 'Contact: <sip:1001@10.0.0.5>;+sip.instance="<urn:uuid:1-2>"'),
        replaced("Contact:", "Contact: *"),
        replaced("Expires:", "Allow: INVITE, ACK, BYE"),
        replaced("User-Agent:", "Supported: path, gruu"),
        datagram([line for line in LINES if not line.startswith(("Contact", "Max-F", "Exp"))]),
        datagram([*LINES[:6], "Contact: <sip:1001@10.0.0.9>", *LINES[6:]]),  # two Contact lines
        datagram(LINES[::-1]),  # any order: the answer keeps the request's
        datagram(start="REGISTER sip:pbx.example:5070;transport=udp SIP/2.0"),
    ],
)
def test_the_answer_is_the_parsed_paths(data: bytes) -> None:
    assert quick_401(data) == parsed_401(data)


@pytest.mark.parametrize(
    "data",
    [
        datagram([*LINES[:-1], 'Authorization: Digest username="1001"', LINES[-1]]),
        datagram([*LINES, "Require: path"]),
        datagram([*LINES, "Route: <sip:pbx.example;lr>"]),
        datagram([*LINES, "X-Custom: 1"]),
        datagram([*LINES, "To: <sip:1002@pbx.example>"]),  # a repeated single header
        datagram([*LINES, "Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKr2"]),  # two Via lines
        replaced("Via:", "Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKr1, SIP/2.0/UDP 10.1.1.1"),
        replaced("Via:", "Via: SIP/2.0/TCP 10.0.0.5;branch=z9hG4bKr1"),
        replaced("Via:", "Via: SIP/2.0/UDP 10.0.0.5;branch=r1-2543"),  # no RFC 3261 branch
        replaced("Via:", "Via: SIP/2.0/UDP 10.0.0.5;;branch=z9hG4bKr1"),
        replaced("From:", "From: <sip:1001@pbx.example;tag=f1"),
        replaced("To:", "To: <sip:1001@pbx.example>;tag=already"),
        replaced("To:", "To: <sip:pbx.example>"),  # no extension to register
        replaced("To:", "To: <tel:1001>"),
        replaced("Call-ID:", "Call-ID: c 1"),
        replaced("CSeq:", "CSeq: 1 OPTIONS"),
        replaced("CSeq:", "CSeq: one REGISTER"),
        replaced("Contact:", "Contact: <sip:1001@10.0.0.5"),
        replaced("Max-Forwards:", "Max-Forwards: 0"),
        replaced("Max-Forwards:", "Max-Forwards: 300"),
        replaced("Expires:", "Expires: soon"),
        replaced("Content-Length:", "Content-Length: 5"),
        replaced("User-Agent:", " Phone/1.0 continued"),  # folding
        replaced("User-Agent:", "User-Agent: Téléphone"),  # outside ASCII
        replaced("User-Agent:", "User-Agent: a\rb"),  # a lone CR
        datagram() + b"hello",  # a body
        datagram()[:-2],  # no blank line
        datagram([line for line in LINES if not line.startswith("CSeq")]),
        datagram(start="REGISTER sips:pbx.example SIP/2.0"),
        datagram(start="REGISTER sip:pbx.example?Route=x SIP/2.0"),
        datagram(start="REGISTER sip:pbx.example SIP/3.0"),
        datagram(start="OPTIONS sip:pbx.example SIP/2.0"),
    ],
)
def test_anything_else_is_left_to_the_parsed_path(data: bytes) -> None:
    assert first_register(data) is None


def test_a_request_with_credentials_is_not_read() -> None:
    data = datagram([*LINES[:-1], 'Authorization: Digest username="1001"', LINES[-1]])
    assert first_register(data) is None
    assert first_register(datagram()) is not None  # the same request without them is
