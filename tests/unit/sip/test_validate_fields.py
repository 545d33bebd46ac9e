"""validate() parses every typed header that is present, and only those (RFC 3261 8.2):
an absent optional header has nothing to refuse, so it is not read; a present one is
parsed and a malformed value is refused naming it."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.message import Request, parse_message
from pbx.sip.validate import validate

BASE = [
    "REGISTER sip:pbx.example.com SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKval1;rport",
    "From: <sip:100@pbx.example.com>;tag=v1",
    "To: <sip:100@pbx.example.com>",
    "Call-ID: validate-1@192.0.2.1",
    "CSeq: 1 REGISTER",
]


def _message(*extra: str) -> Request:
    text = "\r\n".join([*BASE, *extra, "Content-Length: 0"]) + "\r\n\r\n"
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_absent_optional_headers_are_not_read_and_read_as_empty() -> None:
    message = _message()
    validate(message)
    cache = message.headers._cache
    for key in (("Route", "routes"), ("Record-Route", "record_routes"),
                ("Content-Type", "content_type"), ("Max-Forwards", "max_forwards"),
                ("Expires", "expires"), ("Contact", "contacts")):  # fmt: skip
        assert key not in cache
    assert message.routes == [] and message.record_routes == [] and message.contacts == []
    assert message.max_forwards is None and message.expires is None
    assert message.content_type is None


def test_present_headers_are_parsed_and_cached() -> None:
    message = _message("Contact: <sip:100@192.0.2.1>", "Expires: 600", "Max-Forwards: 70",
                       "Route: <sip:proxy.example.com;lr>")  # fmt: skip
    validate(message)
    cache = message.headers._cache
    assert cache[("Expires", "expires")] == 600
    assert cache[("Max-Forwards", "max_forwards")] == 70
    assert [str(c.uri) for c in cache[("Contact", "contacts")]] == ["sip:100@192.0.2.1"]
    assert [str(r.uri) for r in cache[("Route", "routes")]] == ["sip:proxy.example.com;lr"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Expires: soon", "Bad Expires"),
        ("Max-Forwards: many", "Max-Forwards"),
        ("Route: not a uri <", ""),
        ("Record-Route: <sip:a@b", ""),
        ("Content-Type: sdp", ""),
        ("Contact: <sip:100@192.0.2.1", ""),
        ("m: <sip:100@192.0.2.1", ""),  # the compact form of Contact is read too
    ],
)
def test_a_malformed_present_header_is_refused(line: str, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        validate(_message(line))
    assert raised.value.status == 400
    assert reason in raised.value.reason
