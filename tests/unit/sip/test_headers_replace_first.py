"""Headers.replace_first: the stamped top Via goes in place, indexes kept true."""

from __future__ import annotations

import pytest

from pbx.sip.errors import LocalProtocolError
from pbx.sip.headers import Headers, built_via
from pbx.sip.message import Request, parse_message


def _headers() -> Headers:
    return Headers(
        [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("To", "<sip:x@h>"),
         ("Via", "SIP/2.0/UDP b;branch=z9hG4bK2"), ("CSeq", "1 OPTIONS")]
    )  # fmt: skip


def test_first_line_replaced_later_lines_kept() -> None:
    headers = _headers()
    assert headers.first_values()["Via"].endswith("K1") and headers.count("Via") == 2
    shared = headers._items
    headers.replace_first("Via", "SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4")
    assert headers.getall("Via") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4", "SIP/2.0/UDP b;branch=z9hG4bK2"
    ]  # fmt: skip
    assert headers.first_values()["Via"].endswith("received=1.2.3.4")
    assert headers.count("Via") == 2 and headers.get("To") == "<sip:x@h>"
    assert shared[0][1] == "SIP/2.0/UDP a;branch=z9hG4bK1", (
        "a list shared with another message stays"
    )


def test_absent_header_is_appended() -> None:
    headers = _headers()
    headers.first_values()
    headers.replace_first("Contact", "<sip:x@10.0.0.1>")
    assert headers.get("Contact") == "<sip:x@10.0.0.1>" and headers.count("Contact") == 1


def test_cr_lf_refused() -> None:
    with pytest.raises(LocalProtocolError):
        _headers().replace_first("Via", "SIP/2.0/UDP a\r\nX: injected")


def test_typed_value_of_the_header_is_read_again() -> None:
    request = parse_message(
        b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1"
        b"\r\nTo: <sip:h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    assert isinstance(request, Request)
    assert request.via.received is None and request.cseq.seq == 1
    request.headers.replace_first("Via", "SIP/2.0/UDP a:5060;branch=z9hG4bK1;received=9.9.9.9")
    assert request.via.received == "9.9.9.9" and request.cseq.seq == 1


def test_built_via_is_a_via() -> None:
    via = built_via("SIP/2.0", "UDP", "a", 5062, {"branch": "z9hG4bK1", "rport": "7"})
    assert str(via) == "SIP/2.0/UDP a:5062;branch=z9hG4bK1;rport=7" and via.rport == 7
    with pytest.raises(AttributeError):
        via.host = "b"  # type: ignore[misc]
