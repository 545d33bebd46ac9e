"""Header values seen again reuse their parsed value (pbx.sip.message PARSED_VALUES)."""

from __future__ import annotations

import pytest

from pbx.sip import message
from pbx.sip.errors import ParseError
from pbx.sip.message import Request, parse_message


def _register(cseq: int, contact: str = "<sip:1001@10.0.0.5:5062>;expires=600") -> Request:
    data = (
        "REGISTER sip:pbx.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{cseq}\r\n"
        "From: <sip:1001@pbx.example>;tag=a1\r\n"
        "To: <sip:1001@pbx.example>\r\n"
        "Call-ID: c1@10.0.0.5\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: {contact}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    request = parse_message(data)
    assert isinstance(request, Request)
    return request


def test_a_repeated_line_reuses_the_parsed_value() -> None:
    first, again = _register(1), _register(1)
    assert again.from_ is first.from_ and again.to is first.to
    assert again.cseq is first.cseq
    assert again.contacts == first.contacts and again.contacts[0] is first.contacts[0]
    assert first.contacts[0].expires == 600 and str(first.to.uri) == "sip:1001@pbx.example"
    refresh = _register(2)
    assert refresh.cseq.seq == 2 and refresh.to is first.to


def test_each_message_gets_its_own_contact_list() -> None:
    first, again = _register(1), _register(1)
    first.contacts.clear()
    assert len(again.contacts) == 1 and len(_register(1).contacts) == 1


def test_a_bad_value_raises_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ParseError):
            _register(1, contact="<sip:1001@10.0.0.5").contacts  # noqa: B018


def test_the_cache_is_bounded() -> None:
    for n in range(message.PARSED_VALUES + 50):
        assert _register(n + 10).cseq.seq == n + 10
    info = message._cseq.cache_info()  # type: ignore[attr-defined]
    assert info.currsize == message.PARSED_VALUES == info.maxsize
