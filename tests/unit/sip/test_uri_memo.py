"""The parse memos of uri.py: same text, same (immutable) value; errors and floods not kept."""

from __future__ import annotations

import pytest

from pbx.sip import uri as uri_module
from pbx.sip.errors import ParseError
from pbx.sip.uri import MEMO_SIZE, SipUri, parse_name_addr, parse_uri


def test_repeated_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = uri_module._parse_sip

    def counting(scheme: str, rest: str) -> SipUri:
        calls.append(rest)
        return real(scheme, rest)

    monkeypatch.setattr(uri_module, "_parse_sip", counting)
    text = "sip:memo-201@10.9.8.7:5062;transport=udp"
    first, second = parse_uri(text), parse_uri(text)
    assert first is second
    assert isinstance(first, SipUri) and first.port == 5062 and first.transport == "UDP"
    assert calls == ["memo-201@10.9.8.7:5062;transport=udp"]


def test_name_addr_memo_keeps_display_params_and_tag() -> None:
    text = '"Memo" <sip:memo-202@pbx.example>;tag=9fxced76sl'
    first = parse_name_addr(text)
    again = parse_name_addr(text)
    assert again is first
    assert (first.display, first.tag, str(first.uri)) == ("Memo", "9fxced76sl",
                                                          "sip:memo-202@pbx.example")  # fmt: skip
    assert str(first.with_tag("x")) == '"Memo" <sip:memo-202@pbx.example>;tag=x'
    assert first.tag == "9fxced76sl"  # with_tag made a copy


def test_malformed_text_raises_every_time_and_is_not_kept() -> None:
    for _ in range(2):
        with pytest.raises(ParseError):
            parse_uri("sip:memo@bad host")
        with pytest.raises(ParseError):
            parse_name_addr("<sip:memo@host")
    assert "sip:memo@bad host" not in uri_module._URI_MEMO
    assert "<sip:memo@host" not in uri_module._NAME_ADDR_MEMO


def test_memos_are_bounded() -> None:
    for n in range(MEMO_SIZE + 10):
        parse_name_addr(f"<sip:flood{n}@pbx.example>")
    assert len(uri_module._URI_MEMO) <= MEMO_SIZE
    assert len(uri_module._NAME_ADDR_MEMO) <= MEMO_SIZE
    assert parse_uri("sip:flood1@pbx.example").user == "flood1"  # type: ignore[union-attr]
