"""The typed-value cache of a message: each value is parsed once, and a change to one header
drops what was read from it and nothing else (the hot path of every request)."""

from __future__ import annotations

import pytest

from pbx.sip import headers as headers_module
from pbx.sip.errors import ParseError
from pbx.sip.message import parse_message
from pbx.sip.validate import validate

REGISTER = (
    b"REGISTER sip:pbx.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-1;rport, SIP/2.0/UDP proxy;branch=z9hG4bK-2\r\n"
    b"From: <sip:201@pbx.example>;tag=abc\r\n"
    b"To: <sip:201@pbx.example>\r\n"
    b"Call-ID: reg-1@10.0.0.5\r\n"
    b"CSeq: 7 REGISTER\r\n"
    b"Contact: <sip:201@10.0.0.5:5060>;expires=600\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_changing_the_via_keeps_from_to_and_cseq_parsed() -> None:
    msg = parse_message(REGISTER)
    from_, to, cseq, via = msg.from_, msg.to, msg.cseq, msg.via
    msg.headers.set("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-1;rport=5060;received=1.2.3.4")
    assert msg.from_ is from_ and msg.to is to and msg.cseq is cseq
    assert msg.via is not via
    assert msg.via.received == "1.2.3.4"
    assert [v.host for v in msg.vias] == ["10.0.0.5"]


def test_changing_a_header_drops_only_its_own_values() -> None:
    msg = parse_message(REGISTER)
    assert msg.to_tag is None and msg.from_tag == "abc" and msg.expires is None
    msg.headers.set("To", "<sip:201@pbx.example>;tag=xyz")
    msg.headers.add("Expires", "60")
    assert msg.to_tag == "xyz" and msg.to.tag == "xyz"
    assert msg.expires == 60
    msg.headers.remove("From")
    with pytest.raises(ParseError, match="Missing From"):
        _ = msg.from_tag
    assert msg.to_tag == "xyz"


def test_counts_and_membership_follow_every_change() -> None:
    msg = parse_message(REGISTER)
    headers = msg.headers
    assert headers.count("Via") == 1 and "Expires" not in headers
    headers.add("v", "SIP/2.0/UDP third;branch=z9hG4bK3")
    headers.add("Expires", "60")
    assert headers.count("Via") == 2 and "expires" in headers
    assert [v.host for v in msg.vias] == ["10.0.0.5", "proxy", "third"]
    headers.remove("Expires")
    headers.set("Via", "SIP/2.0/UDP only;branch=z9hG4bK9")
    assert "Expires" not in headers and headers.count("Via") == 1
    assert [v.host for v in msg.vias] == ["only"]
    assert headers.get("Via") == "SIP/2.0/UDP only;branch=z9hG4bK9"


def test_vias_reuse_the_parsed_top_via() -> None:
    msg = parse_message(REGISTER)
    top = msg.via
    assert msg.vias[0] is top
    assert [v.branch for v in msg.vias] == ["z9hG4bK-1", "z9hG4bK-2"]


def test_validate_parses_each_header_once(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = parse_message(REGISTER)
    calls: list[str] = []
    real = headers_module.Via.parse.__func__  # type: ignore[attr-defined]

    def counting(cls, text: str):  # type: ignore[no-untyped-def]
        calls.append(text)
        return real(cls, text)

    monkeypatch.setattr(headers_module.Via, "parse", classmethod(counting))
    _ = msg.via
    validate(msg)
    validate(msg)
    assert len(calls) == 2  # the top Via and the proxy's, once each


def test_tags_come_from_the_parsed_address_when_it_was_read() -> None:
    msg = parse_message(REGISTER.replace(b";tag=abc", b";tag=abc;x=1"))
    assert msg.from_.params == {"tag": "abc", "x": "1"}
    assert msg.from_tag == "abc"
    fresh = parse_message(REGISTER)
    assert fresh.from_tag == "abc"  # without parsing the URI first
